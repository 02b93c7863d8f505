"""Every ```python block of docs/*.md runs, in order, sharing one namespace per file.

So a walkthrough builds up state like a notebook, and a doc whose code no longer works fails
the suite with the file and line of the block that broke. A block whose info string is
`python no-run` is shown but not run.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        if "no-run" in match.group(1):
            continue
        line = text[: match.start()].count("\n") + 2  # first line of the code
        found.append((line, match.group(2)))
    return found


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_walkthrough_runs(path, monkeypatch):
    monkeypatch.chdir(DOCS.parent)  # docs refer to repo-relative paths
    namespace: dict = {"__name__": f"docs.{path.stem}"}
    for line, code in blocks(path):
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001  (report which block broke, then fail)
            pytest.fail(f"{path.name}, block at line {line}:\n{traceback.format_exc()}")


def test_every_walkthrough_has_code():
    for path in sorted(DOCS.glob("0*.md")):
        assert blocks(path), f"{path.name} has no executed python block"
