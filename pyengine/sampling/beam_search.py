"""Beam search as vLLM's server runs it, with each candidate tied to its parent.

    beams = [prompt]; finished = []
    repeat max_tokens times (no early stopping):
        every live beam proposes its 2W most likely next tokens (raw log-softmax scores,
            so temperature changes nothing): candidate = (beam, token, beam.cum_logprob + logprob)
        unless ignore_eos, an EOS candidate becomes a finished hypothesis ("stop")
        the W best remaining candidates by cumulative logprob are the new beams
    finished += beams ("length"); rank everything by
        score = cum_logprob / len(prompt + generated) ** length_penalty
    (the length counts the prompt, and not a final EOS); return the best W, best first.

W is the beam width (the request's `n`). vLLM's code attributes candidates to parent beams by
index arithmetic that breaks when a step returns 2W + 1 entries; here each candidate carries
its parent. Penalties, bias, top-k/p and stop strings do not apply (vLLM skips them too).

The model sits outside: `beam_search_steps` is a generator that yields the sequences to score
and receives their next-token logprobs, so this file is pure search over numbers. The engine
scores them with its forward pass and KV cache (pyengine/beam_requests.py), tests with toy
functions through `beam_search`.

Shapes: W live beams, V vocabulary, 2W candidates per beam.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Generator, Sequence

import numpy as np  # the search itself runs on the host over [W, 2W] candidates

from pyengine.backend import Backend, array_module
from pyengine.sampling.fast.topk import largest
from pyengine.sampling.reference import RowLogprobs, row_logprobs


@dataclasses.dataclass
class BeamSequence:
    """One hypothesis: generated tokens (the EOS only with include_stop_str_in_output) and scores."""

    token_ids: list[int]
    cum_logprob: float
    score: float = 0.0
    finish_reason: str = "length"
    stop_reason: int | None = None
    logprobs: list[RowLogprobs] = dataclasses.field(default_factory=list)  # per step: chosen + top 2W


def beam_search_steps(
    prompt_token_ids: Sequence[int],
    *,
    beam_width: int,
    max_tokens: int,
    eos_token_id: int | None,
    length_penalty: float = 1.0,
    ignore_eos: bool = False,
    include_stop_str_in_output: bool = False,
    backend: Backend | None = None,
) -> Generator[list[list[int]], Any, list[BeamSequence]]:
    """The search as a generator: it yields the live beams' token lists, receives their logprobs.

        search = beam_search_steps(prompt, beam_width=2, max_tokens=8, eos_token_id=eos)
        sequences = next(search)                       # prompt + generated, one list per live beam
        sequences = search.send(logprobs)              # [W_live, V] log-softmax rows, one per sequence
        ...                                            # until StopIteration: its value is the result
    The result is the best `beam_width` hypotheses, best first. The rows may be a host array, or
    a device array when `backend` is given (then only the [W, 2W] candidates are copied back).
    Whoever drives it decides how to score: `beam_search` with a function, the engine with
    requests (pyengine/beam_requests.py), synchronously or with `await`.
    """
    if beam_width < 1 or max_tokens < 1:
        raise ValueError(f"beam search needs beam_width >= 1 and max_tokens >= 1, got beam_width={beam_width}, "
                         f"max_tokens={max_tokens}")
    prompt = list(prompt_token_ids)
    beams = [BeamSequence([], 0.0)]
    finished: list[BeamSequence] = []
    for _ in range(max_tokens):
        logprobs = yield [prompt + beam.token_ids for beam in beams]  # [W, V]
        if len(logprobs.shape) != 2 or logprobs.shape[0] != len(beams):
            raise ValueError(f"next_token_logprobs returned shape {tuple(logprobs.shape)} for {len(beams)} beams; "
                             f"expected [{len(beams)}, V]")
        top_ids, top_values = _candidates(logprobs, 2 * beam_width, backend)  # [W, 2W] each, host
        cumulative = np.array([beam.cum_logprob for beam in beams])[:, None] + top_values  # [W, 2W]
        is_eos = (top_ids == eos_token_id) & (not ignore_eos)  # [W, 2W]
        for w, j in zip(*np.nonzero(is_eos & np.isfinite(cumulative))):  # finished hypotheses, in (beam, rank) order
            step = _step_logprobs(top_ids[w], top_values[w], j)
            tokens = beams[w].token_ids + ([int(top_ids[w, j])] if include_stop_str_in_output else [])
            finished.append(BeamSequence(tokens, float(cumulative[w, j]), finish_reason="stop",
                                         stop_reason=eos_token_id, logprobs=beams[w].logprobs + [step]))
        live = np.where(is_eos | ~np.isfinite(cumulative), -np.inf, cumulative).reshape(-1)  # [W * 2W]
        best = [i for i in np.argsort(-live, kind="stable")[:beam_width] if np.isfinite(live[i])]
        beams = [_extend(beams[i // top_ids.shape[1]], top_ids, top_values, cumulative, *divmod(i, top_ids.shape[1]))
                 for i in best]
        if not beams:
            break
    hypotheses = finished + beams
    for h in hypotheses:
        h.score = beam_score(prompt + h.token_ids, h.cum_logprob, eos_token_id, length_penalty)
    hypotheses.sort(key=lambda h: h.score, reverse=True)  # stable: earlier hypotheses win ties
    return hypotheses[:beam_width]


def beam_search(prompt_token_ids: Sequence[int], next_token_logprobs: Callable[[list[list[int]]], Any],
                **options: Any) -> list[BeamSequence]:
    """`beam_search_steps` driven by a function: `next_token_logprobs(sequences)` -> [W_live, V] rows.

    `options` are `beam_search_steps`'s keyword arguments (beam_width, max_tokens, eos_token_id, ...).
    """
    search = beam_search_steps(prompt_token_ids, **options)
    sequences = next(search)
    while True:
        try:
            sequences = search.send(next_token_logprobs(sequences))
        except StopIteration as done:
            return done.value


def beam_score(token_ids: Sequence[int], cum_logprob: float, eos_token_id: int | None,
               length_penalty: float = 1.0) -> float:
    """vLLM's ranking score: cum_logprob / length ** length_penalty (prompt included, final EOS not)."""
    length = len(token_ids)
    if token_ids and token_ids[-1] == eos_token_id:
        length -= 1
    return cum_logprob / (max(length, 1) ** length_penalty)


def _candidates(logprobs: Any, k: int, backend: Backend | None) -> tuple[Any, Any]:
    """[W, V] -> host ([W, k] token ids, [W, k] logprobs), best first (ties: lower id first)."""
    xp = array_module(logprobs)
    top_ids, top_values = largest(logprobs.astype(xp.float64), k)  # [W, k] each
    if backend is None:
        return np.asarray(top_ids), np.asarray(top_values)
    host = backend.to_host(xp.stack([top_ids.astype(xp.float64), top_values]))  # [2, W, k]: one copy
    return host[0].astype(np.int64), host[1]


def _extend(parent: BeamSequence, top_ids: Any, top_values: Any, cumulative: Any, w: int, j: int) -> BeamSequence:
    """The parent beam plus its j-th candidate token."""
    step = _step_logprobs(top_ids[w], top_values[w], j)
    return BeamSequence(parent.token_ids + [int(top_ids[w, j])], float(cumulative[w, j]),
                        logprobs=parent.logprobs + [step])


def _step_logprobs(top_ids: Any, top_values: Any, j: int) -> RowLogprobs:
    """This step's entries as vLLM reports them: the chosen token, then the beam's top 2W."""
    return row_logprobs(int(top_ids[j]), float(top_values[j]), j + 1, top_ids, top_values)
