"""Step 8 of a request's life (docs/00-map.md): after a token is sampled, is its sequence done?

For each new token, in vLLM's order: nothing stops a sequence before `min_tokens`; then EOS (unless
`ignore_eos`), stop_token_ids, length, repetition; then the text is detokenized incrementally and stop
strings are searched in it (one found in the same step as a "length" finish wins). The text kernels
(Rust, or their Python twins) do the text work; this module wires them to a sequence.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyengine.sequence import Sequence
from pyengine.text import kernels


@dataclasses.dataclass
class TextState:
    """A sequence's detokenizer, stop-string checker and repetition detector."""

    detokenizer: Any
    stop_checker: Any | None
    repetition: Any | None


class OutputProcessor:
    """Turns sampled tokens into text deltas and finish/stop reasons."""

    def __init__(self, text_kernels: kernels.Kernels, token_table: Any, eos_token_id: int | None,
                 max_model_len: int):
        self.kernels = text_kernels
        self.token_table = token_table
        self.eos_token_id = eos_token_id
        self.max_model_len = max_model_len

    def new_text_state(self, seq: Sequence) -> TextState:
        p = seq.request.params
        detokenizer = None
        if self.token_table is not None:
            detokenizer = self.kernels.IncrementalDetokenizer(
                self.token_table, seq.prompt_token_ids, p.skip_special_tokens, p.spaces_between_special_tokens)
        stop_checker = None
        if p.stop and detokenizer is not None:
            stop_checker = self.kernels.StopChecker(p.stop, p.include_stop_str_in_output)
        repetition = None
        if p.repetition_detection is not None and p.repetition_detection.max_pattern_size > 0:
            r = p.repetition_detection
            repetition = self.kernels.RepetitionDetector(r.max_pattern_size, r.min_pattern_size, r.min_count)
        return TextState(detokenizer, stop_checker, repetition)

    def token_text(self, seq: Sequence, token_id: int) -> str | None:
        """The text of one token as a logprob's `decoded_token` (None without a tokenizer)."""
        detokenizer = seq.text_state.detokenizer
        return None if detokenizer is None else detokenizer.token_text(token_id)

    def process_token(self, seq: Sequence, token_id: int) -> None:
        """Append `token_id`'s text to `seq.text` and set `finish_reason` if it ends the sequence."""
        state: TextState = seq.text_state
        repeated = state.repetition.push(token_id) if state.repetition else False
        finish, stop_reason = self._check_stop(seq, token_id, repeated)
        if state.detokenizer is not None:
            finish, stop_reason = self._append_text(seq, token_id, finish, stop_reason)
        if finish is not None:
            seq.finish_reason, seq.stop_reason = finish, stop_reason

    def _check_stop(self, seq: Sequence, token_id: int, repeated: bool) -> tuple[str | None, int | str | None]:
        """vLLM's check_stop order: EOS -> stop_token_ids -> length -> repetition (none before min_tokens)."""
        p = seq.request.params
        num_output = len(seq.output_token_ids)
        if num_output < p.min_tokens:
            return None, None
        if not p.ignore_eos and token_id == self.eos_token_id:
            return "stop", None
        if token_id in seq.request.stop_token_ids:
            return "stop", token_id
        if (p.max_tokens is not None and num_output >= p.max_tokens) or seq.num_tokens >= self.max_model_len:
            return "length", None
        if repeated:
            return "repetition", "repetition_detected"
        return None, None

    def _append_text(self, seq: Sequence, token_id: int, finish: str | None,
                     stop_reason: int | str | None) -> tuple[str | None, int | str | None]:
        p = seq.request.params
        state: TextState = seq.text_state
        stopped_by_token = finish == "stop"  # EOS or a stop token id
        # A stop token's own text (EOS or a stop id) is not part of the output unless
        # include_stop_str_in_output asks for it.
        delta = "" if stopped_by_token and not p.include_stop_str_in_output else state.detokenizer.push(token_id)
        if finish is not None:
            delta += state.detokenizer.flush()
        checker = state.stop_checker
        if checker is not None:
            if len(seq.output_token_ids) <= p.min_tokens:
                delta = checker.skip(delta)  # text of the first min_tokens tokens never matches
            else:
                delta, matched = checker.push(delta)
                if matched is not None:  # a stop string also overrides "length" in the same step
                    finish, stop_reason = "stop", matched
            if finish is not None:
                delta += checker.flush()
        seq.text += delta
        return finish, stop_reason
