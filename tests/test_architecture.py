"""The layering, enforced: server -> engine -> components -> backend.

The server imports only pyengine's public API (the names `pyengine` exports, and the
`pyengine generate` command module), and never reaches through an `AsyncEngine` to the `Engine`
inside it (`engine.engine`): what it needs of the model and the engine's load is public
(`model_info`, `stats()`, `compile_structured_outputs`). No module-level import circles, found by walking the
import graph of pyengine and server (imports under `if TYPE_CHECKING:` do not run, so they
do not count). Components (model, cache, sampling, text, structured) never import each other; nothing in
pyengine imports server; device code (model, cache, sampling) never imports numpy directly,
so it cannot bypass the `xp` backend. The modules there that handle host arrays on purpose
import numpy by name and are listed in HOST_NUMPY with what they use it for; any other fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = "pyengine_server"  # the HTTP server's package (the folder pyengine_server/)
COMPONENTS = {"model", "cache", "sampling", "text", "structured"}
ENGINE_MODULES = {"engine", "llm", "scheduler", "sequence", "output_processor", "outputs", "engine_config",
                  "generate_cli", "async_engine", "model_runner", "model_info", "beam_requests", "constrained",
                  "single_sequence", "priority_scheduler"}
PUBLIC_MODULES = {"generate_cli"}  # `from pyengine import generate_cli`: the `pyengine generate` command
NUMPY_FREE = {"model", "cache", "sampling"}
HOST_NUMPY = {  # device-code modules that import numpy by name, and what for
    "pyengine/model/loader.py": "safetensors files read into host arrays",
    "pyengine/model/checkpoint_formats.py": "bfloat16 tensors widened into float32 host arrays",
    "pyengine/model/llama.py": "weights fused and transposed on the host before their copy to the device",
    "pyengine/model/gpt2.py": "weights transposed on the host before their copy to the device",
    "pyengine/model/fast_path.py": "decode groups: padded block tables built on the host",
    "pyengine/sampling/processors.py": "per-row token lists turned into (row, token) index arrays",
    "pyengine/sampling/reference.py": "per-row parameter columns, the seeded generators, the logprobs copied back",
    "pyengine/sampling/fast/sampler.py": "per-row parameter columns",
    "pyengine/sampling/fast/draw.py": "the indices of the rows without a filter",
    "pyengine/sampling/beam_search.py": "the search over [W, 2W] candidates on the host",
}
# The scheduler owns block allocation (style.md: "The scheduler may import cache").
ALLOWED_EXTRA = {("scheduler", "cache")}


def _layer(module: str) -> tuple[str, str | None]:
    """'pyengine.model.llama' -> ('component', 'model'); 'pyengine_server.app' -> ('server', None)."""
    parts = module.split(".")
    if parts[0] == SERVER:
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
    for package in ("pyengine", SERVER):
        for path in sorted((ROOT / package).rglob("*.py")):
            here_layer, here_name = _layer(_module_name(path))
            relative = str(path.relative_to(ROOT))
            for imported in _imports(path):
                if imported.split(".")[0] == "numpy" and here_name in NUMPY_FREE and relative not in HOST_NUMPY:
                    problems.append(f"{relative}: imports numpy directly (use the xp backend)")
                there_layer, there_name = _layer(imported)
                if there_layer == "other" and imported.split(".")[0] not in ("pyengine", SERVER):
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


# -- the server uses the public API ------------------------------------------------------------------


def _server_private_imports() -> list[str]:
    import pyengine

    public = set(pyengine.__all__) | PUBLIC_MODULES
    problems = []
    for path in sorted((ROOT / SERVER).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
            relative = path.relative_to(ROOT)
            if isinstance(node, ast.Import):
                problems += [f"{relative}: import {a.name}" for a in node.names if a.name.startswith("pyengine.")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyengine."):
                problems.append(f"{relative}: from {node.module} import ...")
            elif isinstance(node, ast.ImportFrom) and node.module == "pyengine":
                problems += [f"{relative}: from pyengine import {a.name}" for a in node.names if a.name not in public]
    return problems


def _server_reaches_inside_the_engine() -> list[str]:
    """`engine.engine`, `self.engine.engine`: the Engine behind an AsyncEngine, which is no public API."""
    problems = []
    for path in sorted((ROOT / SERVER).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "engine":
                inner = node.value
                if (inner.attr if isinstance(inner, ast.Attribute) else getattr(inner, "id", None)) in ("engine",
                                                                                                       "_engine"):
                    problems.append(f"{path.relative_to(ROOT)}: {ast.unparse(node)}")
    return problems


def test_the_server_imports_only_the_public_api():
    assert _server_private_imports() == []
    assert _server_reaches_inside_the_engine() == []


# -- no import circles ---------------------------------------------------------------------------------


def module_level_imports(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """What `module` (the file `path`) imports when it runs: (module, names taken from it) per import.

    Top-level imports count, those under `if` and `try` included; those under `if TYPE_CHECKING:`
    do not run, and imports inside functions run only when called. Relative imports are resolved
    against `module`'s package; `import a.b` gives ("a.b", []).
    """
    found: list[tuple[str, list[str]]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                continue
            if isinstance(node, ast.Import):
                found.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module
                found.append((base, [alias.name for alias in node.names]))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    return found


def _module_graph() -> dict[str, set[str]]:
    """Module -> the pyengine/server modules it imports when it runs (module level, not TYPE_CHECKING)."""
    modules = {_module_name(p): p for package in ("pyengine", SERVER) for p in (ROOT / package).rglob("*.py")}

    def imported(path: Path, module: str) -> set[str]:
        found: set[str] = set()
        for base, names in module_level_imports(path, module):
            submodules = [f"{base}.{name}" for name in names if f"{base}.{name}" in modules]
            found.update(submodules or [base])  # `from package import submodule`
        return {m for m in found if m in modules and m != module}

    return {module: imported(path, module) for module, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_import_circles():
    assert _circles(_module_graph()) == []


def test_the_checkers_catch_a_private_import_and_a_circle():
    """Plant a server file that reaches inside pyengine, and two modules that import each other."""
    planted = {ROOT / SERVER / "_planted_for_test.py": "from pyengine.engine import Engine\ncore = self.engine.engine\n",
               ROOT / "pyengine" / "cache" / "_planted_a.py": "from pyengine.cache import _planted_b\n",
               ROOT / "pyengine" / "cache" / "_planted_b.py": "import pyengine.cache._planted_a\n"}
    for path, text in planted.items():
        path.write_text(text)
    try:
        private, circles, inside = _server_private_imports(), _circles(_module_graph()), _server_reaches_inside_the_engine()
    finally:
        for path in planted:
            path.unlink()
    assert private == ["pyengine_server/_planted_for_test.py: from pyengine.engine import ..."]
    assert inside == ["pyengine_server/_planted_for_test.py: self.engine.engine"]
    assert circles == [["pyengine.cache._planted_a", "pyengine.cache._planted_b"]]
