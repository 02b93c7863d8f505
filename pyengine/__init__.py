"""pyengine: a small, readable, real LLM inference engine with vLLM's API.

Public surface (vLLM's names): `LLM`, `SamplingParams`, `RequestOutput`, `CompletionOutput`,
`Logprob`, `Engine`, `EngineConfig`. Start reading at `docs/00-map.md`.

The names are imported on first use, so `import pyengine.text` (say) does not load the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "LLM": "pyengine.llm",
    "Engine": "pyengine.engine",
    "EngineConfig": "pyengine.config",
    "SamplingParams": "pyengine.sampling",
    "StructuredOutputsParams": "pyengine.sampling",
    "RequestOutputKind": "pyengine.sampling",
    "RequestOutput": "pyengine.outputs",
    "CompletionOutput": "pyengine.outputs",
    "Logprob": "pyengine.outputs",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pyengine' has no attribute {name!r}")
