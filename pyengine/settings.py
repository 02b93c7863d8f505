"""Settings from the environment, read once: which twin of each kernel runs.

Every tuned piece of pyengine has a readable twin that computes the same thing:

    twin       readable choice                          tuned choice
    text       "python": detokenizer, stop strings,    "native": the Rust kernels (pyengine._native)
               repetition in text/
    grammar    "python": token trie and matcher in      "native": the Rust kernels
               structured/
    sampler    "reference": sampling/reference.py,      "fast": sampling/fast/ (candidates,
               the textbook pipeline with full sorts    tiles, the two-level draw)
    attention  "reference": model/layers.py, one        "fast": model/fast_path.py (decode groups,
               paged attention per sequence             padded batched decode, operand order)

`PYENGINE_KERNELS` picks them, read here and nowhere else, once per process:

    unset                          tuned everywhere (text and grammar "native" when the
                                   extension is built, else "python")
    python | native                the text and grammar kernels (sampler and attention stay fast)
    reference                      every twin's readable choice
    text=python,sampler=reference  twin by twin (any of the four names; the others stay default)

`EngineConfig` takes the same choices as fields (`kernels`, `sampler`, `attention`); a field it
is given wins over the environment. `check` is the one validation both go through.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from typing import Any

ENVIRONMENT_VARIABLE = "PYENGINE_KERNELS"
CHOICES = {
    "text": ("native", "python"),
    "grammar": ("native", "python"),
    "sampler": ("fast", "reference"),
    "attention": ("fast", "reference"),
}
WORDS = ("native", "python", "reference")


@dataclasses.dataclass(frozen=True)
class Twins:
    """The implementation each twin runs: see the table at the top of this module."""

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
