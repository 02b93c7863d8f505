"""Beam search as vLLM's server runs it (api-semantics.md §6), the intended algorithm (D8).

Each step every live beam proposes its 2W most likely next tokens (raw log-softmax, so
temperature does not change scores); unless `ignore_eos`, candidates ending in EOS become
finished hypotheses; the W best remaining candidates by cumulative logprob are the new beams.
After `max_tokens` steps, live beams join the finished ones and all are ranked by

    score = cum_logprob / (len(prompt + generated) ** length_penalty)

(the EOS, if last, does not count in the length), best first; the best W are returned.
The model is behind `next_token_logprobs`, so this file is pure search over numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from pyengine.backend import host_numpy

np = host_numpy()  # the search runs on the host over the W x V logprob rows it is given


@dataclasses.dataclass
class BeamSequence:
    token_ids: list[int]  # generated tokens (prompt excluded)
    cum_logprob: float
    finish_reason: str = "length"
    stop_reason: int | None = None
    score: float = 0.0


def beam_search(
    prompt_token_ids: Sequence[int],
    next_token_logprobs: Callable[[list[list[int]]], Any],
    *,
    beam_width: int,
    max_tokens: int,
    eos_token_id: int | None,
    length_penalty: float = 1.0,
    ignore_eos: bool = False,
    include_stop_str_in_output: bool = False,
) -> list[BeamSequence]:
    """Return the best `beam_width` hypotheses, best first.

    `next_token_logprobs(sequences)` gets the full token lists (prompt + generated) of the live
    beams and returns their next-token log-softmax rows, a host array [W_live, V].
    """
    if beam_width < 1 or max_tokens < 1:
        raise ValueError(f"beam search needs beam_width >= 1 and max_tokens >= 1, got {beam_width}, {max_tokens}")
    prompt = list(prompt_token_ids)
    beams = [BeamSequence([], 0.0)]
    finished: list[BeamSequence] = []
    for _ in range(max_tokens):
        rows = np.asarray(next_token_logprobs([prompt + b.token_ids for b in beams]), dtype=np.float64)
        candidates = []
        for beam, row in zip(beams, rows):
            top = np.argsort(-row, kind="stable")[: 2 * beam_width]
            candidates += [(beam, int(t), beam.cum_logprob + float(row[t])) for t in top]
        live = []
        for beam, token, cum in candidates:
            if token == eos_token_id and not ignore_eos:
                tokens = beam.token_ids + ([token] if include_stop_str_in_output else [])
                finished.append(BeamSequence(tokens, cum, "stop", token))
            else:
                live.append((beam, token, cum))
        live.sort(key=lambda c: c[2], reverse=True)  # stable: earlier candidates win ties
        beams = [BeamSequence(beam.token_ids + [token], cum) for beam, token, cum in live[:beam_width]]
        if not beams:
            break
    hypotheses = finished + beams
    for h in hypotheses:
        length = len(prompt) + len(h.token_ids)
        if h.token_ids and h.token_ids[-1] == eos_token_id:
            length -= 1
        h.score = h.cum_logprob / (max(length, 1) ** length_penalty)
    hypotheses.sort(key=lambda h: h.score, reverse=True)
    return hypotheses[:beam_width]
