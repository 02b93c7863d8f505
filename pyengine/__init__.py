"""pyengine: a small, readable, real LLM inference engine with vLLM's API. Start at `docs/00-map.md`.

The public surface is `_PUBLIC` (vLLM's names; for a server `AsyncEngine` and what it returns) and
`pyengine.generate_cli`; the server imports nothing else. Each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "LLM": "pyengine.llm",
    "Engine": "pyengine.engine",
    "EngineConfig": "pyengine.engine_config",
    "SamplingParams": "pyengine.sampling",
    "StructuredOutputsParams": "pyengine.sampling.nested_params",
    "RequestOutputKind": "pyengine.sampling",
    "tokenize_bad_words": "pyengine.sampling.processors",
    "resolve_model": "pyengine.model.hub",
    "resolve_checkpoint": "pyengine.model.hub",
    "is_local": "pyengine.model.hub",
    "RequestOutput": "pyengine.outputs",
    "CompletionOutput": "pyengine.outputs",
    "Logprob": "pyengine.outputs",
    "AsyncEngine": "pyengine.async_engine",
    "EngineDeadError": "pyengine.async_engine",
    "ModelInfo": "pyengine.model_info",
    "EngineStats": "pyengine.model_info",
    "ChatTemplateError": "pyengine.text",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pyengine' has no attribute {name!r}")
