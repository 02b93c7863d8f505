"""pyengine: a small, readable, real LLM inference engine with vLLM's API. Start at `docs/00-map.md`.

The public surface is `_PUBLIC` (vLLM's names; for a server `AsyncEngine` and what it returns) and
`pyengine.generate_cli`; the server imports nothing else. Each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_MODULES = {  # module -> the public names it defines
    "pyengine.llm": ("LLM",), "pyengine.engine": ("Engine",), "pyengine.engine_config": ("EngineConfig",),
    "pyengine.sampling": ("SamplingParams", "RequestOutputKind"),
    "pyengine.sampling.nested_params": ("StructuredOutputsParams",),
    "pyengine.sampling.processors": ("tokenize_bad_words",),
    "pyengine.model.hub": ("resolve_model", "resolve_checkpoint", "is_local"),
    "pyengine.outputs": ("RequestOutput", "CompletionOutput", "Logprob"),
    "pyengine.async_engine": ("AsyncEngine", "EngineDeadError"), "pyengine.model_info": ("ModelInfo", "EngineStats"),
    "pyengine.text": ("ChatTemplateError",),
}
_PUBLIC = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pyengine' has no attribute {name!r}")
