"""Benchmark helpers: collect numbers across tests, print the ratios the targets name, and add
them to pytest-benchmark's JSON so `benchmarks/report.py` can write docs/08-performance.md.

    python -m pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json

If your environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (some images pin an older
processor's kernels that way), unset them for that command (`env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE ...`): a current numpy's OpenBLAS then picks slower kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark helper modules

RESULTS: dict[str, float] = {}  # name -> a measured number (seconds, tok/s, GB/s)
RATIOS: list[tuple[str, str, str, float | None]] = []  # (label, numerator, denominator, target)
LIMITS: list[tuple[str, str, float]] = []  # (name, "<=" or ">=", bound): absolute targets of one number


@pytest.fixture
def record():
    """record(name, value): keep a number for the end-of-run ratio table."""
    return RESULTS.__setitem__


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("pyengine measurements (same run)")
    for name, value in RESULTS.items():
        tr.write_line(f"{name:48s} {value:12.4g}")
    for label, num, den, target in RATIOS:
        if num in RESULTS and den in RESULTS and RESULTS[den]:
            ratio = RESULTS[num] / RESULTS[den]
            verdict = "" if target is None else ("  (target >= %.2f: %s)" % (target, "met" if ratio >= target else "NOT met"))
            tr.write_line(f"{label:48s} {ratio:12.3f}{verdict}")
    for name, op, bound in LIMITS:
        if name in RESULTS:
            met = RESULTS[name] <= bound if op == "<=" else RESULTS[name] >= bound
            tr.write_line(f"{name:48s} {RESULTS[name]:12.4g}  (target {op} {bound:g}: {'met' if met else 'NOT met'})")


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Add this run's measurements and ratios to --benchmark-json's file, for `report.py`."""
    import numpy

    ratios = []
    for label, num, den, target in RATIOS:
        if num in RESULTS and den in RESULTS and RESULTS[den]:
            value = RESULTS[num] / RESULTS[den]
            ratios.append({"label": label, "value": value, "target": target,
                           "met": None if target is None else value >= target})
    output_json["pyengine"] = {"numpy": numpy.__version__, "results": dict(RESULTS), "ratios": ratios}
    output_json["machine_info"].pop("node", None)  # the host's name says nothing to a reader
