"""docs/00-map.md's reading path is the core's import closure, and the closure stays within budget.

The core is what `Engine.step()` runs: the engine, the scheduler, the model runner, the model, the
KV cache and the reference sampler. Its closure follows every module-level import inside pyengine
(an import inside a function runs only when a feature asks for it: structured outputs load their
grammar compilers with the first constrained request), except into text/ and structured/, the
components that turn text into ids and back and constraints into masks, each walked through on its
own (docs 04 and 06). The map's reading-path table lists exactly the closure's files, each with its
line count (within 10%), and their total stays within BUDGET.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_architecture import module_level_imports

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (pyengine/\S+\.py) \| (\d+) \|$", re.MULTILINE)
CORE = ("pyengine.engine", "pyengine.scheduler", "pyengine.model_runner", "pyengine.model", "pyengine.cache",
        "pyengine.sampling.reference")
OUTSIDE = ("pyengine.text", "pyengine.structured")
BUDGET = 5_200  # lines


def _path(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def core_closure() -> dict[str, int]:
    """Each file the core imports, directly or not (its packages' __init__ files included) -> its lines."""
    files: dict[str, int] = {}
    todo = list(CORE)
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or not module.startswith("pyengine") or module.startswith(OUTSIDE):
            continue
        seen.add(module)
        path = _path(module)
        if path is None:
            continue
        files[str(path.relative_to(ROOT))] = len(path.read_text().splitlines())
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # a module runs its packages first
        for base, names in module_level_imports(path, module):
            todo += [base] + [f"{base}.{name}" for name in names]  # `from package import module` too
    return files


def test_the_reading_path_is_the_core_closure_with_true_counts():
    rows = ROW.findall((ROOT / "docs" / "00-map.md").read_text())
    closure = core_closure()
    assert sorted(path for path, _ in rows) == sorted(closure)
    for path, listed in rows:
        actual = closure[path]
        assert abs(actual - int(listed)) <= 0.1 * actual, f"{path}: map says {listed}, file has {actual}"


def test_the_core_stays_within_its_budget():
    total = sum(core_closure().values())
    assert total <= BUDGET, f"the core's import closure is {total} lines, over its budget of {BUDGET}"
    stated = re.search(r"in all,\s+([\d,]+) lines", (ROOT / "docs" / "00-map.md").read_text())
    assert stated and abs(int(stated.group(1).replace(",", "")) - total) <= 0.05 * total


def test_the_closure_follows_imports_and_stops_at_text_and_structured():
    closure = core_closure()
    assert "pyengine/model/llama.py" in closure and "pyengine/sampling/truncation.py" in closure
    assert "pyengine/backend/arrays.py" in closure  # through the model and the cache
    assert not any(path.startswith(("pyengine/text/", "pyengine/structured/")) for path in closure)
    assert "pyengine/llm.py" not in closure and "pyengine/async_engine.py" not in closure  # above the core
