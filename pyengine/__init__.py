"""pyengine: a small, readable, real LLM inference engine with vLLM's API.

Public surface (vLLM's names): `LLM`, `SamplingParams`, `StructuredOutputsParams`,
`RequestOutput`, `CompletionOutput`, `Logprob`, `RequestOutputKind`, `Engine`, `EngineConfig`;
for a server: `AsyncEngine` (its `model_info`, a `ModelInfo`; its `stats()`, an `EngineStats`;
`compile_structured_outputs`, which checks a constraint once and keeps the compiled grammar for
the engine), `EngineDeadError`, `ChatTemplateError`, `tokenize_bad_words`, and the hub helpers
(`resolve_model`, `resolve_checkpoint`, `is_local`); `pyengine.generate_cli` is the `pyengine
generate` command. The server imports nothing else (tests/test_architecture.py). Start reading
at `docs/00-map.md`.

The names are imported on first use, so `import pyengine.text` (say) does not load the engine.
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
