"""Settings from the environment, read once: which twin of each kernel runs (docs/00-map.md's table).

`PYENGINE_KERNELS`, read here and nowhere else, once per process, picks them: unset, the tuned ones;
"python" or "native", the text and grammar kernels; "reference", every readable twin;
"text=python,sampler=reference", twin by twin. `EngineConfig` fields (`kernels`, `sampler`,
`attention`) win over the environment; `check` validates both.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from typing import Any

ENVIRONMENT_VARIABLE = "PYENGINE_KERNELS"
CHOICES = {"text": ("native", "python"), "grammar": ("native", "python"),  # twin -> its implementations
           "sampler": ("fast", "reference"), "attention": ("fast", "reference")}
WORDS = ("native", "python", "reference")


@dataclasses.dataclass(frozen=True)
class Twins:
    """The implementation each twin runs (docs/00-map.md tables them)."""

    text: str
    grammar: str
    sampler: str = "fast"
    attention: str = "fast"


def native_available(twin: str) -> bool:
    """Whether the compiled extension provides the Rust kernels of `twin` ("text" or "grammar")."""
    try:
        from pyengine import _native  # noqa: PLC0415  (the extension is optional)
    except ImportError:
        return False
    return hasattr(_native, "IncrementalDetokenizer" if twin == "text" else "GrammarMatcher")


def check(twin: str, choice: str) -> str:
    """`choice` if it names an implementation of `twin` that this installation has, else ValueError."""
    if choice not in CHOICES[twin]:
        raise ValueError(f"{twin} must be {' or '.join(repr(c) for c in CHOICES[twin])}, got {choice!r}")
    if choice == "native" and not native_available(twin):
        raise ValueError(f"{twin}='native' needs the compiled extension pyengine._native; "
                         "rebuild it with `pip install -e .`, or choose 'python'")
    return choice


def parse(value: str | None) -> Twins:
    """The twins a `PYENGINE_KERNELS` value selects (None: unset). Raises ValueError naming the valid values."""
    default = Twins(*("native" if native_available(t) else "python" for t in ("text", "grammar")))
    if value is None or value == "":
        return default
    if value in WORDS:
        if value == "reference":
            return Twins("python", "python", "reference", "reference")
        return dataclasses.replace(default, text=check("text", value), grammar=check("grammar", value))
    chosen = {}
    for entry in value.split(","):
        twin, _, choice = entry.strip().partition("=")
        if twin not in CHOICES or not choice:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} must be 'native' or 'python' (text and grammar kernels), "
                             f"'reference' (every readable twin), or twin=choice pairs over {sorted(CHOICES)}; "
                             f"got {value!r}")
        chosen[twin] = check(twin, choice)
    return dataclasses.replace(default, **chosen)


def load(module: str, name: str) -> Any:
    """`name` from `module`, imported now: how a chosen twin (or a checkpoint's model family) is
    loaded only when it is chosen, so the readable core never imports the others."""
    return getattr(importlib.import_module(module), name)


@functools.cache
def from_environment() -> Twins:
    """The twins `PYENGINE_KERNELS` selects, read on first call and kept for the process."""
    return parse(os.environ.get(ENVIRONMENT_VARIABLE))
