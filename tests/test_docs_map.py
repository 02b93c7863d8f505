"""docs/00-map.md's reading path is the core's import closure, and the closure stays within budget.

The core is what `Engine.step()` runs with the readable twins: the engine, the scheduler, the model
runner, the model with its reference family (Llama) and attention, the KV cache and the reference
sampler. Its closure follows every module-level import inside pyengine. An import inside a
function runs only when a feature asks for it, so it is not followed: the tuned twins (the fast
sampler, the fast-path attention) load when they are chosen, another model family (GPT-2), rope
scaling or a sharded checkpoint when a checkpoint needs it, the logits processors with the first
request that uses one, structured outputs with the first constrained request, beam search with its
driver. Nor does the closure enter text/ and structured/, the components that turn text into ids
and back and constraints into masks, each walked through on its own (docs 04 and 06). The map's
reading-path table lists exactly the closure's files, each with its line count (within 10%), and
their total stays within BUDGET. A fresh interpreter that imports the core, and one that runs a
request through an engine of readable twins, load exactly these modules: the closure is what runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.test_architecture import module_level_imports

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (pyengine/\S+\.py) \| (\d+) \|$", re.MULTILINE)
CORE = ("pyengine.engine", "pyengine.scheduler", "pyengine.model_runner", "pyengine.model", "pyengine.model.llama",
        "pyengine.cache", "pyengine.sampling.reference")
OUTSIDE = ("pyengine.text", "pyengine.structured", "pyengine._native")
BUDGET = 2_600  # lines


def _path(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def core_closure() -> dict[str, int]:
    """Each file the core imports, directly or not (its packages' __init__ files included) -> its lines."""
    return {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in core_modules().values()}


def core_modules() -> dict[str, Path]:
    """Each module the core imports, directly or not (its packages included) -> its file."""
    files: dict[str, Path] = {}
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
        files[module] = path
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
    loaded_when_chosen = ("pyengine/sampling/fast/sampler.py", "pyengine/model/fast_path.py", "pyengine/model/gpt2.py",
                          "pyengine/constrained.py", "pyengine/sampling/beam_search.py", "pyengine/backend/cpu_tuning.py",
                          "pyengine/sampling/processors.py", "pyengine/sampling/nested_params.py",
                          "pyengine/model/rope_scaling.py", "pyengine/model/family_configs.py",
                          "pyengine/model/checkpoint_formats.py", "pyengine/priority_scheduler.py")
    assert not [path for path in loaded_when_chosen if path in closure]


# -- the closure is what runs ----------------------------------------------------------------------

RUN_ENGINE = """
import json, sys
from pyengine.engine import Engine
from pyengine.engine_config import EngineConfig
from pyengine.sampling import SamplingParams
config = EngineConfig(model=sys.argv[1], num_kv_blocks=16, block_size=4, kernels="python", sampler=sys.argv[2],
                      attention=sys.argv[2])
engine = Engine(config)
engine.add_request("r", "Hello", SamplingParams(n=2, temperature=0.8, top_p=0.9, logprobs=2, prompt_logprobs=1,
                                                max_tokens=4, seed=1))
while engine.has_unfinished_requests():
    engine.step()
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_modules(code: str, *args: str) -> set[str]:
    """The pyengine modules a fresh interpreter has loaded after running `code` (text/, structured/ aside)."""
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    return {m for m in json.loads(out.splitlines()[-1]) if m.startswith("pyengine") and not m.startswith(OUTSIDE)}


def test_importing_the_core_loads_exactly_the_closure():
    code = "import json, sys\n" + "".join(f"import {m}\n" for m in CORE) + "print(json.dumps(sorted(sys.modules)))"
    assert _loaded_modules(code) == set(core_modules())


def test_an_engine_of_readable_twins_runs_only_the_closure_and_the_tuned_twins_load_when_chosen():
    llama = str(ROOT / "tests" / "fixtures" / "parity" / "llama")
    readable = _loaded_modules(RUN_ENGINE, llama, "reference")
    assert readable == set(core_modules())
    tuned = _loaded_modules(RUN_ENGINE, llama, "fast")
    assert {"pyengine.sampling.fast.sampler", "pyengine.model.fast_path"} <= tuned - readable
