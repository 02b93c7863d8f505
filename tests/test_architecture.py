"""The layering of design.md, enforced: server -> engine -> components -> backend.

Components (model, cache, sampling, text, structured) never import each other; nothing in
pyengine imports server; device code (model, cache, sampling) never imports numpy directly,
so it cannot bypass the `xp` backend. The modules there that handle host arrays on purpose
import numpy by name and are listed in HOST_NUMPY with what they use it for; any other fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = {"model", "cache", "sampling", "text", "structured"}
ENGINE_MODULES = {"engine", "llm", "scheduler", "sequence", "output_processor", "outputs", "config", "cli",
                  "async_engine", "model_runner", "beam_requests", "constrained"}
NUMPY_FREE = {"model", "cache", "sampling"}
HOST_NUMPY = {  # device-code modules that import numpy by name, and what for
    "pyengine/model/loader.py": "safetensors files read into host arrays",
    "pyengine/model/llama.py": "weights fused and transposed on the host before their copy to the device",
    "pyengine/model/gpt2.py": "weights transposed on the host before their copy to the device",
    "pyengine/model/fast_path.py": "decode groups: padded block tables built on the host",
    "pyengine/sampling/processors.py": "per-row token lists turned into (row, token) index arrays",
    "pyengine/sampling/draw.py": "the seeded random generators",
    "pyengine/sampling/sampler.py": "per-row parameter columns and the uniform numbers",
    "pyengine/sampling/logprobs.py": "unpacking the one array copied back per step",
    "pyengine/sampling/beam_search.py": "the search over [W, 2W] candidates on the host",
}
# The scheduler owns block allocation (style.md: "The scheduler may import cache").
ALLOWED_EXTRA = {("scheduler", "cache")}


def _layer(module: str) -> tuple[str, str | None]:
    """'pyengine.model.llama' -> ('component', 'model'); 'server.app' -> ('server', None)."""
    parts = module.split(".")
    if parts[0] == "server":
        return "server", None
    if parts[0] != "pyengine" or len(parts) == 1:
        return "other", None
    head = parts[1]
    if head in COMPONENTS:
        return "component", head
    if head in ("backend", "_native", "settings"):
        return "backend", head
    if head in ENGINE_MODULES:
        return "engine", head
    return "other", head


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "pyengine" and node.level == 0:
            names += [f"pyengine.{alias.name}" for alias in node.names]  # `from pyengine import settings`
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _violations() -> list[str]:
    rank = {"backend": 0, "component": 1, "engine": 2, "server": 3, "other": 1}
    problems = []
    for package in ("pyengine", "server"):
        for path in sorted((ROOT / package).rglob("*.py")):
            here_layer, here_name = _layer(_module_name(path))
            relative = str(path.relative_to(ROOT))
            for imported in _imports(path):
                if imported.split(".")[0] == "numpy" and here_name in NUMPY_FREE and relative not in HOST_NUMPY:
                    problems.append(f"{relative}: imports numpy directly (use the xp backend)")
                there_layer, there_name = _layer(imported)
                if there_layer == "other" and not imported.startswith(("pyengine", "server")):
                    continue
                if (here_name, there_name) in ALLOWED_EXTRA:
                    continue
                if rank[there_layer] > rank[here_layer]:
                    problems.append(f"{relative}: upward import of {imported}")
                if here_layer == there_layer == "component" and here_name != there_name:
                    problems.append(f"{relative}: sideways import of {imported} (components are siblings)")
                if here_layer == "engine" and there_layer == "engine" and here_name == "scheduler" \
                        and there_name in ("engine", "llm"):
                    problems.append(f"{relative}: the scheduler imports {imported}")
    return problems


def test_imports_follow_the_layers():
    assert _violations() == []


def test_the_checker_catches_a_sideways_import(tmp_path, monkeypatch):
    """Guard against a checker that can never fail: plant a bad import and see it reported."""
    bad = ROOT / "pyengine" / "cache" / "_planted_for_test.py"
    bad.write_text("import numpy\nfrom pyengine.model import load_model\n")
    try:
        problems = _violations()
    finally:
        bad.unlink()
    assert any("_planted_for_test.py: imports numpy" in p for p in problems)
    assert any("_planted_for_test.py: sideways import of pyengine.model" in p for p in problems)
