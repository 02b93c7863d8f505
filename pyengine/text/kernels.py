"""The one place that picks the text kernels: native (Rust, `pyengine._native`) or the Python twins.

`PYENGINE_KERNELS=python` selects the twins (to step through them in a debugger); `native`
selects the Rust kernels; unset, the native kernels are used when the extension provides them
(`pyengine.settings` reads the variable, once). Both sets expose the same classes:

    TokenTable.from_tokenizer(backend, special_ids, vocab_size=None)     once per tokenizer
    IncrementalDetokenizer(table, prompt_token_ids, skip_special_tokens, spaces_between_special_tokens)
        .push(token_id) -> str, .flush() -> str, .token_text(token_id) -> str, .text
    StopChecker(stop_strings, include_stop_str_in_output)
        .push(delta) -> (emit, stop string or None), .skip(delta) -> str, .flush() -> str, .stopped
    RepetitionDetector(max_pattern_size, min_pattern_size, min_count).push(token_id) -> bool

`PYTHON` and `NATIVE` hold each set by name, for the parity tests and the benchmarks;
`select(name)` returns one of them (the engine's `EngineConfig.kernels`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from tokenizers import Tokenizer as BackendTokenizer

from pyengine import settings
from pyengine.text import detokenizer, repetition, stop
from pyengine.text.token_bytes import token_pieces

try:
    from pyengine import _native
except ImportError:  # an environment without the compiled extension: the twins still work
    _native = None  # type: ignore[assignment]


class TextKernelError(RuntimeError):
    """A Rust text kernel failed by a bug: its panic, caught at the boundary, raised as an exception
    that `except Exception` stops (PyO3's own `PanicException` is a `BaseException`)."""


@dataclasses.dataclass(frozen=True)
class Kernels:
    """One implementation of the four text kernels."""

    name: str
    TokenTable: Any
    IncrementalDetokenizer: Any
    StopChecker: Any
    RepetitionDetector: Any


PYTHON = Kernels("python", detokenizer.TokenTable, detokenizer.IncrementalDetokenizer, stop.StopChecker,
                 repetition.RepetitionDetector)

NATIVE: Kernels | None = None
if _native is not None and hasattr(_native, "IncrementalDetokenizer"):

    class NativeTokenTable(_native.TokenTable):
        """The Rust table, built from the same `TokenPieces` as the Python twin's."""

        __slots__ = ()

        @classmethod
        def from_tokenizer(cls, backend: BackendTokenizer, special_ids: Iterable[int] = (),
                           vocab_size: int | None = None) -> "NativeTokenTable":
            """Build the table from a `tokenizers.Tokenizer` (once per tokenizer, not per request)."""
            return cls(token_pieces(backend, special_ids, vocab_size))

    NATIVE = Kernels("native", NativeTokenTable, _native.IncrementalDetokenizer, _native.StopChecker,
                     _native.RepetitionDetector)

KERNELS = settings.from_environment().text  # "native" or "python"
SELECTED: Kernels = NATIVE if KERNELS == "native" and NATIVE is not None else PYTHON


def select(name: str | None = None) -> Kernels:
    """The kernels named "native" or "python"; None: the ones PYENGINE_KERNELS selected."""
    if name is None:
        return SELECTED
    if name == "python":
        return PYTHON
    if name == "native" and NATIVE is not None:
        return NATIVE
    raise ValueError(f"kernels must be 'native' or 'python' (native needs the compiled extension), got {name!r}")


TokenTable = SELECTED.TokenTable
IncrementalDetokenizer = SELECTED.IncrementalDetokenizer
StopChecker = SELECTED.StopChecker
RepetitionDetector = SELECTED.RepetitionDetector

__all__ = ["KERNELS", "NATIVE", "PYTHON", "SELECTED", "IncrementalDetokenizer", "Kernels", "RepetitionDetector",
           "StopChecker", "TokenTable", "select"]
