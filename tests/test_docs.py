"""Every ```python block of docs/*.md runs, in order, sharing one namespace per file.

So a walkthrough builds up state like a notebook, and a doc whose code no longer works fails
the suite with the file and line of the block that broke. A block whose info string is
`python no-run` is shown but not run.

A block that shows an error must also fail when the error does not come: every `try` with an
`except` has an `else:` that raises (or asserts False), and nothing swallows errors with
`contextlib.suppress`. `unchecked_handlers` finds the blocks that break this rule.
"""

from __future__ import annotations

import ast
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


# -- a block that shows an error fails when the error does not come ------------------------------


def _fails(statement: ast.stmt) -> bool:
    """True for `raise ...` and `assert False[, message]`."""
    if isinstance(statement, ast.Raise):
        return True
    return isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Constant) \
        and not statement.test.value


def unchecked_handlers(code: str) -> list[int]:
    """Lines (1-based, within `code`) of each `try` whose expected error is never checked.

    A `try` with `except` clauses must end its `else:` with a failing statement, so that the
    block fails when the call it guards stops raising; `contextlib.suppress(...)` is reported
    too, since it can only hide an error.
    """
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Try, ast.TryStar)) and node.handlers:
            if not node.orelse or not _fails(node.orelse[-1]):
                found.append(node.lineno)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name == "suppress":
                found.append(node.lineno)
    return sorted(found)


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_expected_error_is_checked(path):
    for line, code in blocks(path):
        bad = unchecked_handlers(code)
        assert not bad, (f"{path.name}, block at line {line}: a try/except at line(s) "
                         f"{[line + n - 1 for n in bad]} passes even when no error comes; "
                         "add `else: raise AssertionError(...)`")


def test_the_checker_catches_an_unchecked_error():
    planted = """
try:
    SamplingParams(top_p=1.5)
except ValueError as error:
    assert "top_p" in str(error)
"""
    assert unchecked_handlers(planted) == [2]
    swallowed = planted.replace('assert "top_p" in str(error)', "pass") + "else:\n    print('accepted')\n"
    assert unchecked_handlers(swallowed) == [2]  # an else that does not fail is no check
    suppressed = "import contextlib\nwith contextlib.suppress(ValueError):\n    int('x')\n"
    assert unchecked_handlers(suppressed) == [2]


def test_the_checker_accepts_a_checked_error():
    checked = """
try:
    SamplingParams(top_p=1.5)
except ValueError as error:
    assert "top_p" in str(error)
else:
    raise AssertionError("top_p=1.5 was accepted")
try:
    int("x")
except ValueError:
    pass
else:
    assert False, "int('x') parsed"
"""
    assert unchecked_handlers(checked) == []
    assert unchecked_handlers("try:\n    x = 1\nfinally:\n    x = 2\n") == []  # no except: nothing caught


def test_a_checked_block_fails_when_its_error_does_not_come():
    block = """
from pyengine import SamplingParams
try:
    SamplingParams(top_p=TOP_P)
except ValueError as error:
    assert "top_p" in str(error)
else:
    raise AssertionError("top_p=TOP_P was accepted")
"""
    exec(compile(block.replace("TOP_P", "1.5"), "planted", "exec"), {})  # the error comes: passes
    with pytest.raises(AssertionError, match="top_p=0.5 was accepted"):
        exec(compile(block.replace("TOP_P", "0.5"), "planted", "exec"), {})  # a valid value: fails
