"""A sequence's output text, token by token: incremental detokenization, then stop strings.

The engine's output processor decides the token-level stops (EOS, stop token ids, length, repetition)
and hands each token here with its verdict; this turns the token into a text delta, searches the
text for stop strings (one found in the same step as a "length" finish wins) and releases what it
held back once the sequence ends. The kernels are the Rust ones or their Python twins (kernels.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from pyengine.text import kernels


@dataclasses.dataclass
class SequenceText:
    """One sequence's detokenizer and stop-string checker (None without stop strings)."""

    detokenizer: Any
    stop_checker: Any | None

    @classmethod
    def start(cls, text_kernels: kernels.Kernels, token_table: Any, prompt_token_ids: Sequence[int],
              params: Any) -> SequenceText:
        """Primed with the prompt, so the first output token is decoded in its context."""
        detokenizer = text_kernels.IncrementalDetokenizer(token_table, prompt_token_ids, params.skip_special_tokens,
                                                          params.spaces_between_special_tokens)
        return cls(detokenizer, text_kernels.StopChecker(params.stop, params.include_stop_str_in_output)
                   if params.stop else None)

    def append(self, token_id: int, num_output: int, params: Any, finish: str | None,
               stop_reason: int | str | None) -> tuple[str, str | None, int | str | None]:
        """The text `token_id` adds (the `num_output`th output token), and the finish reason and stop reason
        after stop strings: a matched one ends the sequence ("stop", the string), over a "length" finish."""
        # A stop token's own text (EOS or a stop id) is not output unless include_stop_str_in_output asks.
        stopped_by_token = finish == "stop"
        delta = "" if stopped_by_token and not params.include_stop_str_in_output else self.detokenizer.push(token_id)
        if finish is not None:
            delta += self.detokenizer.flush()
        checker = self.stop_checker
        if checker is not None:
            if num_output <= params.min_tokens:
                delta = checker.skip(delta)  # text of the first min_tokens tokens never matches
            else:
                delta, matched = checker.push(delta)
                if matched is not None:
                    finish, stop_reason = "stop", matched
            if finish is not None:
                delta += checker.flush()
        return delta, finish, stop_reason
