"""Turn a pytest-benchmark JSON file into the tables of docs/08-performance.md.

    python -m pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json                  # rewrites the page's latest-run section
    python benchmarks/report.py bench.json --print          # or just prints the section

The section says when the run was made and on what (processor, core count, Python, numpy), then
one table per benchmark group (median, min and max time of one round, the number of rounds) and,
when `benchmarks/conftest.py` added them, the run's own measurements (tokens/s, GB/s, ...) and
the ratios it checks against their targets. It replaces whatever lies between the page's
`<!-- report:begin -->` and `<!-- report:end -->` markers; the rest of the page (the concepts,
the analyses of earlier runs) is left as written.

Nothing here names the machine beyond what a reader needs to compare runs: no host name, no
paths.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[1] / "docs" / "08-performance.md"
BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


def seconds(value: float) -> str:
    """A duration with a unit that keeps three significant figures: 1.23 s, 45.6 ms, 789 ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(value) >= scale or unit == "ns":
            return f"{value / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def machine(data: dict[str, Any]) -> str:
    """'AMD EPYC, 2 cores, Python 3.11.9' from pytest-benchmark's machine_info (no host name)."""
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    brand = cpu.get("brand_raw") or info.get("processor") or "unknown processor"
    parts = [brand, f"{cpu.get('count', '?')} cores"]
    if info.get("python_version"):
        parts.append(f"Python {info['python_version']}")
    if data.get("pyengine", {}).get("numpy"):
        parts.append(f"numpy {data['pyengine']['numpy']}")
    return ", ".join(parts)


def render(data: dict[str, Any]) -> str:
    """The markdown section for one run: a dated heading, then the tables."""
    date = str(data.get("datetime", "undated"))[:10]
    lines = [f"### Run of {date}: {machine(data)}", ""]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in data.get("benchmarks", []):
        groups[bench.get("group") or "(no group)"].append(bench)
    for group in sorted(groups):
        lines += [f"**{group}**", "", "| benchmark | median | min | max | rounds |", "| --- | --- | --- | --- | --- |"]
        for bench in sorted(groups[group], key=lambda b: b["stats"]["median"]):
            s = bench["stats"]
            lines.append(f"| `{bench['name']}` | {seconds(s['median'])} | {seconds(s['min'])} | "
                         f"{seconds(s['max'])} | {s['rounds']} |")
        lines.append("")
    extra = data.get("pyengine", {})
    if extra.get("results"):
        lines += ["**Measurements of the same run**", "", "| measurement | value |", "| --- | --- |"]
        lines += [f"| {name} | {value:.4g} |" for name, value in extra["results"].items()]
        lines.append("")
    if extra.get("ratios"):
        lines += ["**Ratios and targets**", "", "| ratio | value | target |", "| --- | --- | --- |"]
        for row in extra["ratios"]:
            target = "" if row["target"] is None else f">= {row['target']:g}: " + ("met" if row["met"] else "not met")
            lines.append(f"| {row['label']} | {row['value']:.3f} | {target} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(page: str, section: str) -> str:
    """The page with everything between the report markers replaced by `section`."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN} ... {END} section to fill")
    return page[: start + len(BEGIN)] + "\n\n" + section + "\n" + page[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the file --benchmark-json wrote")
    parser.add_argument("--page", default=str(PAGE), help="the markdown page to update")
    parser.add_argument("--print", action="store_true", help="print the section instead of writing the page")
    args = parser.parse_args(argv)
    section = render(json.loads(Path(args.json).read_text()))
    if args.print:
        sys.stdout.write(section)
    else:
        page = Path(args.page)
        page.write_text(replace_section(page.read_text(), section))
        print(f"wrote the latest run into {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
