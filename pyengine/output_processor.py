"""Step 8 of a request's life (docs/00-map.md): after a token is sampled, is its sequence done?

For each new token, in vLLM's order: nothing stops a sequence before `min_tokens`; then EOS (unless
`ignore_eos`), stop_token_ids, length, repetition; then the text component detokenizes the token and
searches the text for stop strings (text/sequence_text.py). The text kernels (Rust, or their Python
twins) do the text work; this module wires them to a sequence.
"""

from __future__ import annotations

from typing import Any

from pyengine.sequence import Sequence
from pyengine.text import kernels
from pyengine.text.sequence_text import SequenceText


class OutputProcessor:
    """Turns sampled tokens into text deltas and finish/stop reasons."""

    def __init__(self, text_kernels: kernels.Kernels, token_table: Any, eos_token_id: int | None, max_model_len: int):
        self.kernels = text_kernels
        self.token_table = token_table  # None without a tokenizer: no text at all
        self.eos_token_id = eos_token_id
        self.max_model_len = max_model_len

    def start(self, seq: Sequence) -> None:
        """Give a new sequence its text state and repetition detector (as its parameters ask)."""
        p = seq.request.params
        if self.token_table is not None:
            seq.text_state = SequenceText.start(self.kernels, self.token_table, seq.prompt_token_ids, p)
        r = p.repetition_detection
        if r is not None and r.max_pattern_size > 0:
            seq.repetition = self.kernels.RepetitionDetector(r.max_pattern_size, r.min_pattern_size, r.min_count)

    def token_text(self, seq: Sequence, token_id: int) -> str | None:
        """The text of one token as a logprob's `decoded_token` (None without a tokenizer)."""
        return None if seq.text_state is None else seq.text_state.detokenizer.token_text(token_id)

    def process_token(self, seq: Sequence, token_id: int) -> None:
        """Append `token_id`'s text to `seq.text` and set `finish_reason` if it ends the sequence."""
        repeated = seq.repetition.push(token_id) if seq.repetition is not None else False
        finish, stop_reason = self._check_stop(seq, token_id, repeated)
        if seq.text_state is not None:
            delta, finish, stop_reason = seq.text_state.append(token_id, len(seq.output_token_ids),
                                                               seq.request.params, finish, stop_reason)
            seq.text += delta
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
