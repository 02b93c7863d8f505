"""The sampler, tuned: the reference pipeline with its costly steps arranged for speed.

`Sampler` runs reference.py's pipeline (7a-7f, the same rows and columns, the same one
device->host copy) and overrides three steps:

    7b. processors   into a [B, V] buffer kept between steps (fresh ones cost page faults)
    7d. truncation   min_p, top-k, top-p as one per-row threshold, found among each row's C
                     largest logits instead of a sort of the row          (fast/truncation.py)
    7e. draw         among the candidates, or in two levels over blocks   (fast/draw.py)
    7f. logprobs     one tiled pass for the logsumexp, the top k among candidates
                                                                         (fast/logprobs.py, topk.py)

tests/sampling/test_reference.py holds it to the reference's tokens and logprobs. A seeded row gets
the same token from both twins, in any batch, except in two cases, where each twin is still
reproducible on its own: (1) on the CPU, a filtered row that keeps more tokens than the candidates
is walked here in token-id order; (2) an unfiltered row whose uniform falls within rounding (about
1e-7) of a boundary between two tokens, since this twin sums the row in blocks.

Shapes: B rows, V vocabulary, C candidates per row, k top logprobs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np  # host: per-row parameter columns

from pyengine.backend import Backend
from pyengine.sampling.fast.draw import sample_truncated
from pyengine.sampling.fast.logprobs import chosen_and_top, logsumexp
from pyengine.sampling.fast.truncation import NUM_CANDIDATES, truncate
from pyengine.sampling.params import SamplingParams
from pyengine.sampling.reference import ReferenceSampler, SamplingRow
from pyengine.sampling.truncation import apply_temperature, mask_below


class Sampler(ReferenceSampler):
    """The reference sampler with candidates, tiles and a two-level draw in steps 7b-7f."""

    def __init__(self, backend: Backend, vocab_size: int, seed: int | None = None):
        super().__init__(backend, vocab_size, seed)
        # A partial sort with a data-dependent fallback suits the CPU; a device sorts whole rows.
        self.num_candidates = NUM_CANDIDATES if backend.name == "cpu" else None
        self._buffers: dict[str, Any] = {}  # reusable [B, V] scratch arrays (see _scratch)

    def process(self, logits: Any, rows: Sequence[SamplingRow], out: Any = None) -> Any:
        """Step 7b, writing into a kept buffer (see _scratch). [B, V] -> [B, V]"""
        return super().process(logits, rows, self._scratch("processed", logits.shape) if out is None else out)

    def sample(self, logits: Any, rows: Sequence[SamplingRow]) -> Any:
        """Steps 7c-7e: argmax for greedy rows; temperature, truncation and a draw for the rest. -> [B]"""
        xp = self.xp
        params = [row.params for row in rows]
        greedy = [p.greedy for p in params]
        greedy_ids = xp.argmax(logits, axis=-1) if any(greedy) else None  # [B], lowest index on ties
        if all(greedy):
            return greedy_ids
        temperature = self._column([1.0 if p.greedy else p.temperature for p in params])  # [B, 1]
        cut = truncate(logits, temperature, *self._truncation_columns(params))  # threshold [B, 1] & candidates
        unfiltered = [b for b, p in enumerate(params) if not (p.greedy or p.min_p > 0 or self._top_k(p) or p.top_p < 1)]
        sampled = sample_truncated(logits, temperature, *cut, self._uniforms(rows), unfiltered)  # [B]
        if greedy_ids is None:
            return sampled
        return xp.where(self.backend.to_device(np.array(greedy)), greedy_ids, sampled)

    def logprob_arrays(self, raw: Any, chosen_ids: Any, k: int) -> list[Any]:
        """[Bq, V] raw logits, [Bq] sampled ids -> [chosen logprob [Bq], rank [Bq], top ids [Bq, k], top [Bq, k]].

        One tiled pass for the logsumexp, and the top k found among candidates (topk.py).
        """
        return chosen_and_top(raw, logsumexp(raw), chosen_ids, k)

    # -- per-row columns (host -> device) ----------------------------------------------------------

    def _truncation_columns(self, params: Sequence[SamplingParams]) -> tuple[Any, Any, Any, int | None]:
        """min_p, top_k, top_p as [B, 1] columns (None where no row uses one), and the candidates.

        Greedy rows get top_k = 1: their draw is discarded (they take the argmax), and k = 1
        sends them down the cheapest path.
        """
        min_p = [p.min_p for p in params]
        top_k = [1 if p.greedy else self._top_k(p) for p in params]
        top_p = [p.top_p for p in params]
        num_candidates = None if self.num_candidates is None else max(self.num_candidates, *top_k)
        return (self._column(min_p) if any(min_p) else None,
                self._column(top_k, np.int64) if any(top_k) else None,
                self._column(top_p) if any(p < 1 for p in top_p) else None,
                num_candidates)

    def _scratch(self, name: str, shape: tuple[int, int]) -> Any:
        """A float32 device array of `shape` to overwrite, kept between steps.

        Each [B, V] temporary a step allocates afresh costs page faults (the allocator hands
        large blocks back to the system), as much as the arithmetic on it; reusing a handful of
        buffers avoids that. Grows to the largest batch seen.
        """
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[0] < shape[0] or buffer.shape[1:] != tuple(shape[1:]):
            buffer = self.xp.empty((max(shape[0], 0 if buffer is None else buffer.shape[0]),) + tuple(shape[1:]),
                                   dtype=self.xp.float32)
            self._buffers[name] = buffer
        return buffer[:shape[0]]


def filtered_logits(logits: Any, rows: Sequence[SamplingRow], sampler: Sampler) -> Any:
    """The logits a row actually samples from, -inf outside its truncation: [B, V] -> [B, V].

    Not on the hot path (the sampler never writes this array out); for tests, docs and vLLM's
    `processed_logprobs` mode.
    """
    xp = sampler.xp
    params = [row.params for row in rows]
    processed = sampler.process(logits.astype(xp.float32, copy=False), rows)
    temperature = sampler._column([1.0 if p.greedy else p.temperature for p in params])
    cut = truncate(processed, temperature, *sampler._truncation_columns(params))
    return mask_below(apply_temperature(processed, temperature), cut.threshold)
