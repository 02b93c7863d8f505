"""The sampler: logits [B, V] -> one token per row, plus the logprobs the requests asked for.

Step 7 of a request's life (docs/00-map.md). vLLM V1's pipeline, each sub-step a pure function
over the whole batch:

    7a. grammar mask (structured outputs), then the raw-logprobs snapshot     (logprobs.py)
    7b. allowed_token_ids, bad_words, min_tokens, logit_bias, penalties      (processors.py)
    7c. greedy rows: argmax here (they see 7b, nothing after it)
    7d. temperature, then min_p, top-k, top-p as one per-row threshold        (truncation.py)
    7e. the draw: inverse CDF with one uniform number per row                  (draw.py)
    7f. gather: each sampled token's raw logprob, and the ranks and top-k rows asked for

Rows with different parameters share every step: per-row parameters travel as [B, 1] columns.
A seeded row draws its uniform from its own generator, so its tokens do not depend on which
other requests share the batch or where it sits in it; unseeded rows draw from the sampler's.
The uniforms and a few small index arrays go host->device; device->host there is exactly one
copy per step, one flat array holding the sampled ids, their logprobs and any requested
logprobs rows.

Shapes: B rows, V vocabulary, k the largest number of top logprobs a row asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: per-row parameter columns and random numbers

from pyengine.backend import Backend
from pyengine.sampling.draw import make_generator, sample_truncated
from pyengine.sampling.logprobs import (
    RowLogprobs,
    chosen_and_top,
    compute_prompt_logprobs,
    logsumexp,
    pack,
    row_logprobs,
    unpack,
)
from pyengine.sampling.params import SamplingParams
from pyengine.sampling.processors import (
    apply_allowed_token_ids,
    apply_bad_words,
    apply_logit_bias,
    apply_min_tokens,
    apply_penalties,
)
from pyengine.sampling.truncation import NUM_CANDIDATES, apply_temperature, mask_below, truncate


__all__ = ["RowLogprobs", "Sampler", "SamplerOutput", "SamplingRow", "compute_prompt_logprobs", "make_generator"]

PROCESSORS = (apply_allowed_token_ids, apply_bad_words, apply_min_tokens, apply_logit_bias, apply_penalties)


@dataclasses.dataclass
class SamplingRow:
    """One row of the batch as the sampler sees it, built by the engine each step."""

    params: SamplingParams
    prompt_token_ids: Sequence[int]
    output_token_ids: Sequence[int]
    generator: Any = None  # make_generator(seed), or None: draw from the sampler's generator
    stop_token_ids: frozenset[int] = frozenset()  # masked while len(output) < min_tokens
    bad_words_token_ids: Sequence[Sequence[int]] = ()  # params.bad_words, tokenized (tokenize_bad_words)


@dataclasses.dataclass
class SamplerOutput:
    token_ids: list[int]  # one sampled token per row
    sampled_logprobs: list[float | None]  # raw logprob of each sampled token; None where not asked
    logprobs: list[RowLogprobs | None]  # per row: chosen + top-k entries, None where not asked


class Sampler:
    """Samples one token per row, each row with its own parameters, in one vectorised pass."""

    def __init__(self, backend: Backend, vocab_size: int, seed: int | None = None):
        self.backend = backend
        self.xp = backend.xp
        self.vocab_size = vocab_size
        self.generator = np.random.Generator(np.random.PCG64(seed))  # for unseeded rows
        # A partial sort with a data-dependent fallback suits the CPU; a device sorts whole rows.
        self.num_candidates = NUM_CANDIDATES if backend.name == "cpu" else None
        self._buffers: dict[str, Any] = {}  # reusable [B, V] scratch arrays (see _scratch)

    def __call__(self, logits: Any, rows: Sequence[SamplingRow], allowed_mask: Any = None) -> SamplerOutput:
        """logits [B, V] float (device), one SamplingRow per row, optional grammar mask [B, V] bool."""
        self._check_shapes(logits, rows, allowed_mask)
        if not rows:
            return SamplerOutput([], [], [])
        xp = self.xp
        logits = logits.astype(xp.float32, copy=False)  # [B, V]
        if allowed_mask is not None:  # 7a. the grammar mask comes first: even raw logprobs see it
            logits = xp.where(allowed_mask, logits, -xp.inf)
        raw = logits  # the raw-logprobs snapshot: the steps below never write into their input
        processed = self.process(logits, rows, out=self._scratch("processed", logits.shape))  # 7b.
        token_ids = self.sample(processed, rows)  # 7c-7e. [B]
        return self.gather(raw, token_ids, rows)  # 7f.

    # -- the steps ---------------------------------------------------------------------------------

    def process(self, logits: Any, rows: Sequence[SamplingRow], out: Any = None) -> Any:
        """Step 7b: the logits processors, in vLLM's order. [B, V] -> [B, V]

        Returns `logits` itself when no processor applies; otherwise the first one that does
        copies the logits into `out` (or a new array) and the rest rewrite entries of that copy.
        """
        current = logits
        for processor in PROCESSORS:
            current = processor(current, rows, out=out if current is logits else current)
        return current

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

    def gather(self, raw: Any, token_ids: Any, rows: Sequence[SamplingRow]) -> SamplerOutput:
        """Step 7f: for the rows that asked for logprobs, the sampled token's and the top-k; one copy.

        Rows that did not ask get None (their requests report no `cumulative_logprob`, as in
        vLLM), and when no row asked, no log-softmax is computed: over a [32, 49,152] batch that
        is ~2% of a decode step.
        """
        batch = len(rows)
        wanted = [row.params.num_top_logprobs(self.vocab_size) for row in rows]
        asking = [b for b, k in enumerate(wanted) if k is not None]
        arrays, shapes = [token_ids], [(batch,)]
        if asking:
            k = max(wanted[b] for b in asking)
            index = self.backend.to_device(np.array(asking, dtype=np.int64))  # [Bq]
            asking_raw = raw[index]  # [Bq, V]
            arrays += self.logprob_arrays(asking_raw, token_ids[index], k)
            shapes += [(len(asking),), (len(asking),), (len(asking), k), (len(asking), k)]
        host = unpack(self.backend.to_host(pack(arrays)), shapes)  # the one device->host copy
        ids = host[0].astype(np.int64).tolist()
        out = SamplerOutput(ids, [None] * batch, [None] * batch)
        if asking:
            chosen, ranks, top_ids, top_values = host[1:]
            for i, b in enumerate(asking):
                out.sampled_logprobs[b] = float(chosen[i])
                out.logprobs[b] = row_logprobs(ids[b], chosen[i], ranks[i], top_ids[i, :wanted[b]].astype(np.int64),
                                               top_values[i, :wanted[b]])
        return out

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

    def _top_k(self, params: SamplingParams) -> int:
        """The row's k, 0 when off (k >= V keeps everything: off too, as vLLM normalises it)."""
        return params.top_k if params.top_k < self.vocab_size else 0

    def _uniforms(self, rows: Sequence[SamplingRow]) -> Any:
        """One uniform number per sampling row, a seeded row's from its own generator. -> [B, 1] float64"""
        drawing = [not row.params.greedy for row in rows]  # greedy rows draw nothing (seed ignored)
        shared = iter(self.generator.random(sum(d and row.generator is None for d, row in zip(drawing, rows))))
        return self._column([0.0 if not d else next(shared) if row.generator is None else row.generator.random()
                             for d, row in zip(drawing, rows)], np.float64)

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

    def _column(self, values: Sequence[Any], dtype: Any = np.float32) -> Any:
        """Per-row values -> a [B, 1] device column."""
        return self.backend.to_device(np.array(values, dtype=dtype).reshape(-1, 1))

    def _check_shapes(self, logits: Any, rows: Sequence[SamplingRow], allowed_mask: Any) -> None:
        expected = (len(rows), self.vocab_size)
        if tuple(logits.shape) != expected:
            raise ValueError(f"sampler: logits have shape {tuple(logits.shape)}, expected [B, V] = {list(expected)} "
                             f"({len(rows)} rows, vocabulary {self.vocab_size})")
        if allowed_mask is not None and tuple(allowed_mask.shape) != expected:
            raise ValueError(f"sampler: allowed_mask has shape {tuple(allowed_mask.shape)}, "
                             f"expected {list(expected)} like the logits")


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
