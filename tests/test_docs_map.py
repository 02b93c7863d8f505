"""docs/00-map.md's reading budget stays true: each listed file exists, within 10% of its count."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (pyengine/\S+\.py) \| (\d+) \|$", re.MULTILINE)


def test_reading_budget_matches_the_files():
    rows = ROW.findall((ROOT / "docs" / "00-map.md").read_text())
    assert len(rows) >= 6
    for path, listed in rows:
        actual = len((ROOT / path).read_text().splitlines())
        assert abs(actual - int(listed)) <= 0.1 * actual, f"{path}: map says {listed}, file has {actual}"
