"""Step 7 of the main loop: after a token is sampled, decide whether its sequence is done.

For each new token, in vLLM's order (api-semantics §4.7): while fewer than `min_tokens` were
generated nothing stops the sequence; then EOS (unless `ignore_eos`) -> stop_token_ids ->
length (`max_tokens` or the context is full) -> repetition; then the text is detokenized
incrementally and stop strings are searched in it. The text kernels (Rust, or their Python
twins) do the per-token text work; this module only wires them to a sequence.
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

    def __init__(self, token_table: Any, eos_token_id: int | None, max_model_len: int):
        self.token_table = token_table
        self.eos_token_id = eos_token_id
        self.max_model_len = max_model_len

    def new_text_state(self, seq: Sequence) -> TextState:
        p = seq.request.params
        detokenizer = kernels.IncrementalDetokenizer(
            self.token_table, seq.prompt_token_ids, p.skip_special_tokens, p.spaces_between_special_tokens
        )
        stop_checker = kernels.StopChecker(p.stop, p.include_stop_str_in_output) if p.stop else None
        repetition = None
        if p.repetition_detection is not None and p.repetition_detection.max_pattern_size > 0:
            r = p.repetition_detection
            repetition = kernels.RepetitionDetector(r.max_pattern_size, r.min_pattern_size, r.min_count)
        return TextState(detokenizer, stop_checker, repetition)

    def token_text(self, seq: Sequence, token_id: int) -> str:
        """The text of one token as a logprob's `decoded_token`."""
        return seq.text_state.detokenizer.token_text(token_id)

    def process_token(self, seq: Sequence, token_id: int) -> None:
        """Append `token_id`'s text to `seq.text` and set `finish_reason` if it ends the sequence."""
        p = seq.request.params
        state: TextState = seq.text_state
        num_output = len(seq.output_token_ids)
        repeated = state.repetition.push(token_id) if state.repetition else False
        finish, stop_reason = None, None
        if num_output >= p.min_tokens:
            if not p.ignore_eos and token_id == self.eos_token_id:
                finish = "stop"
            elif token_id in seq.request.stop_token_ids:
                finish, stop_reason = "stop", token_id
            elif (p.max_tokens is not None and num_output >= p.max_tokens) or seq.num_tokens >= self.max_model_len:
                finish = "length"
            elif repeated:
                finish, stop_reason = "repetition", "repetition_detected"
        # The stop token's own text is not part of the output (unless asked for).
        stopped_by_token = finish == "stop" and not p.include_stop_str_in_output
        delta = "" if stopped_by_token else state.detokenizer.push(token_id)
        if finish is not None:
            delta += state.detokenizer.flush() if not stopped_by_token else ""
        if state.stop_checker is not None:
            if num_output <= p.min_tokens:
                # Text of the first min_tokens tokens never matches a stop string (§4.3).
                delta = state.stop_checker.skip(delta)
            else:
                delta, matched = state.stop_checker.push(delta)
                if matched is not None:
                    finish, stop_reason = "stop", matched
            if finish is not None and stop_reason is None or finish == "length":
                delta += state.stop_checker.flush()
        seq.text += delta
        if finish is not None:
            seq.finish_reason, seq.stop_reason = finish, stop_reason
