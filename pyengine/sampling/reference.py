"""The reference sampler: logits [B, V] -> one token per row, plus the logprobs the requests asked for.

Step 7 of a request's life, vLLM V1's pipeline (7a-7f, docs/03-sampling.md) as a textbook writes it:
each sub-step a function over whole rows of the batch, per-row parameters as [B, 1] columns, and a
seeded row's uniform drawn from its own generator, so its tokens do not depend on the batch. Its tuned
twin, `Sampler` in sampling/fast/, overrides 7d-7f; tests/sampling/test_reference.py holds the two to
the same results. Shapes: B rows, V vocabulary, k the largest number of top logprobs a row asked for.

The draw (7e) is an inverse CDF: the first token whose cumulative weight exceeds u * sum(w), u ~ U[0, 1)
(vLLM's exponential race draws V numbers per row; one is all a seeded request needs). Logprobs (7f) are
`log_softmax` of the logits as they left the model (masked, not yet penalised or scaled: vLLM's default
`raw_logprobs`); a row's entries are [chosen, top-1, ..., top-k] with ranks [rank(chosen), 1, ..., k],
rank(t) the number of tokens whose logprob is >= logprob(t), duplicates kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: per-row parameter columns, random numbers, the logprobs copied back

from pyengine.backend import Backend, array_module
from pyengine.sampling.params import SamplingParams
from pyengine.sampling.truncation import apply_min_p, apply_temperature, apply_top_k, apply_top_p

BELOW_ONE = 1.0 - 2.0**-53  # the largest float64 below 1


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
class RowLogprobs:
    """One position's logprobs in vLLM's order: the chosen (or actual) token first, then the top-k."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


@dataclasses.dataclass
class SamplerOutput:
    token_ids: list[int]  # one sampled token per row
    sampled_logprobs: list[float | None]  # raw logprob of each sampled token; None where not asked
    logprobs: list[RowLogprobs | None]  # per row: chosen + top-k entries, None where not asked


class ReferenceSampler:
    """Samples one token per row, each row with its own parameters, in one pass over the batch."""

    def __init__(self, backend: Backend, vocab_size: int, seed: int | None = None):
        self.backend = backend
        self.xp = backend.xp
        self.vocab_size = vocab_size
        self.generator = np.random.Generator(np.random.PCG64(seed))  # for unseeded rows

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
        processed = self.process(logits, rows)  # 7b.
        token_ids = self.sample(processed, rows)  # 7c-7e. [B]
        return self.gather(raw, token_ids, rows)  # 7f.

    # -- the steps ---------------------------------------------------------------------------------
    def process(self, logits: Any, rows: Sequence[SamplingRow], out: Any = None) -> Any:
        """Step 7b: the logits processors, in vLLM's order. [B, V] -> [B, V]: `logits` itself when none
        applies; else the first that does copies them into `out` (or a new array), the rest edit that."""
        if not any(row.params.uses_processors for row in rows):
            return logits
        from pyengine.sampling.processors import PROCESSORS  # noqa: PLC0415  (the first row that uses one loads them)
        current = logits
        for processor in PROCESSORS:
            current = processor(current, rows, out=out if current is logits else current)
        return current

    def sample(self, logits: Any, rows: Sequence[SamplingRow]) -> Any:
        """Steps 7c-7e: argmax for greedy rows; temperature, the three filters and a draw for the rest. -> [B]"""
        xp = self.xp
        params = [row.params for row in rows]
        greedy = [p.greedy for p in params]
        greedy_ids = xp.argmax(logits, axis=-1)  # [B], lowest index on ties
        if all(greedy):
            return greedy_ids
        scaled = apply_temperature(logits, self._column([1.0 if p.greedy else p.temperature for p in params]))
        scaled = apply_min_p(scaled, self._column([p.min_p for p in params]))  # [B, V], -inf where cut
        scaled = apply_top_k(scaled, self._column([self._top_k(p) for p in params], xp.int64))
        scaled = apply_top_p(scaled, self._column([p.top_p for p in params]))
        filtered = self._column([p.min_p > 0 or self._top_k(p) > 0 or p.top_p < 1 for p in params], bool)
        sampled = draw(scaled, self._uniforms(rows), filtered)  # [B]
        return xp.where(self._column(greedy, bool)[:, 0], greedy_ids, sampled)

    def gather(self, raw: Any, token_ids: Any, rows: Sequence[SamplingRow]) -> SamplerOutput:
        """Step 7f: for the rows that asked for logprobs, the sampled token's and the top-k; one copy.

        Rows that did not ask get None (no `cumulative_logprob`, as in vLLM); when none asked, no
        log-softmax runs (over a [32, 49,152] batch, ~2% of a decode step).
        """
        batch = len(rows)
        wanted = [row.params.num_top_logprobs(self.vocab_size) for row in rows]
        asking = [b for b, k in enumerate(wanted) if k is not None]
        arrays = [token_ids]
        if asking:
            index = self.backend.to_device(np.array(asking, dtype=np.int64))  # [Bq]
            arrays += self.logprob_arrays(raw[index], token_ids[index], max(wanted[b] for b in asking))
        host = copy_to_host(self.backend, arrays)  # the one device->host copy
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
        """[Bq, V] raw logits, [Bq] chosen ids -> [chosen logprob [Bq], rank [Bq], top ids [Bq, k], top [Bq, k]]."""
        xp = self.xp
        logprobs = log_softmax(raw)  # [Bq, V]
        chosen_logit = xp.take_along_axis(raw, chosen_ids[:, None], axis=-1)  # [Bq, 1]
        ranks = (raw >= chosen_logit).sum(axis=-1)  # [Bq]: ranked on the logits, which log_softmax only shifts
        order = xp.argsort(-raw, axis=-1, kind="stable")[:, :k]  # [Bq, k] most likely first, ties by id
        chosen = xp.take_along_axis(logprobs, chosen_ids[:, None], axis=-1)[:, 0]  # [Bq]
        return [chosen, ranks, order, xp.take_along_axis(logprobs, order, axis=-1)]

    def prompt_logprobs(self, logits: Any, prompt_token_ids: Sequence[int], num_top: int) -> list[RowLogprobs | None]:
        """Prompt logprobs: the logits at position p score prompt token p + 1.

        `logits` is [T - 1, V] or [T, V] (the last row, predicting the first generated token, is
        ignored) for the T prompt tokens; `num_top` top logprobs per position (-1: all). Returns
        vLLM's layout: `None` for the first token, then per position the actual token and the top.
        """
        num_scored = len(prompt_token_ids) - 1
        if logits.ndim != 2 or logits.shape[0] not in (num_scored, num_scored + 1):
            raise ValueError(f"prompt logprobs: logits of shape {tuple(logits.shape)} do not match "
                             f"{len(prompt_token_ids)} prompt tokens (expected [{num_scored}, V] or "
                             f"[{num_scored + 1}, V])")
        if num_scored <= 0:
            return [None]
        k = logits.shape[-1] if num_top == -1 else num_top
        scored = logits[:num_scored].astype(self.xp.float32)  # [T-1, V]
        targets = self.backend.to_device(np.asarray(prompt_token_ids[1:], dtype=np.int64))  # [T-1]
        actual, ranks, top_ids, top_values = copy_to_host(self.backend, self.logprob_arrays(scored, targets, k))
        return [None] + [row_logprobs(prompt_token_ids[t + 1], actual[t], ranks[t], top_ids[t].astype(np.int64),
                                      top_values[t]) for t in range(num_scored)]

    # -- per-row columns (host -> device) ----------------------------------------------------------
    def _top_k(self, params: SamplingParams) -> int:
        """The row's k, 0 when off (k >= V keeps everything: off too, as vLLM normalises it)."""
        return params.top_k if params.top_k < self.vocab_size else 0

    def _uniforms(self, rows: Sequence[SamplingRow]) -> Any:
        """One uniform number per sampling row, a seeded row's from its own generator. -> [B, 1] float64"""
        drawing = [not row.params.greedy for row in rows]  # greedy rows draw nothing (seed ignored)
        shared = iter(self.generator.random(sum(d and row.generator is None for d, row in zip(drawing, rows))))
        return self._column([0.0 if not d else next(shared) if row.generator is None else row.generator.random()
                             for d, row in zip(drawing, rows)], np.float64)

    def _column(self, values: Sequence[Any], dtype: Any = np.float32) -> Any:
        """Per-row values -> a [B, 1] device column."""
        return self.backend.to_device(np.array(values, dtype=dtype).reshape(-1, 1))

    def _check_shapes(self, logits: Any, rows: Sequence[SamplingRow], allowed_mask: Any) -> None:
        expected = (len(rows), self.vocab_size)
        for name, array in (("logits have", logits), ("allowed_mask has", allowed_mask)):
            if array is not None and tuple(array.shape) != expected:
                raise ValueError(f"sampler: {name} shape {tuple(array.shape)}, expected [B, V] = "
                                 f"{list(expected)} ({len(rows)} rows, vocabulary {self.vocab_size})")


def log_softmax(logits: Any) -> Any:
    """[B, V] -> [B, V]: x - max - log(sum(exp(x - max))), each row's log-probabilities."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # [B, V], the largest at 0
    return shifted - xp.log(xp.exp(shifted.astype(xp.float64)).sum(axis=-1, keepdims=True)).astype(logits.dtype)


def draw(scaled: Any, uniforms: Any, filtered: Any) -> Any:
    """[B, V] scaled logits (-inf where cut), [B, 1] uniforms, [B, 1] bool -> [B] token ids.

    Inverse CDF: walk the row, summing probabilities, and stop at the first token whose running
    sum passes the uniform. A filtered row is walked from its most likely token down (ties by id),
    any other in token-id order: the orders the fast twin walks, so a seed gives both one token.
    """
    xp = array_module(scaled)
    batch, vocab = scaled.shape
    by_likelihood = xp.argsort(-scaled, axis=-1, kind="stable")  # [B, V] most likely first, ties by id
    by_id = xp.broadcast_to(xp.arange(vocab), (batch, vocab))  # [B, V]
    order = xp.where(filtered, by_likelihood, by_id)  # [B, V] the order each row is walked in
    walked = xp.take_along_axis(scaled, order, axis=-1)  # [B, V]
    weights = xp.exp(walked - walked.max(axis=-1, keepdims=True))  # [B, V] unnormalised p, 0 where cut
    return xp.take_along_axis(order, inverse_cdf_sample(weights, uniforms)[:, None], axis=-1)[:, 0]


def inverse_cdf_sample(weights: Any, uniforms: Any) -> Any:
    """[B, N] weights >= 0 (some > 0 per row), [B, 1] uniforms in [0, 1) -> [B] positions in 0..N-1."""
    xp = array_module(weights)
    cdf = xp.cumsum(weights.astype(xp.float64), axis=-1)  # [B, N]
    target = xp.clip(uniforms, 0.0, BELOW_ONE) * cdf[:, -1:]  # [B, 1], below the row's total
    return (cdf <= target).sum(axis=-1)  # [B] the first position whose cdf exceeds the target


def make_generator(seed: int | None) -> Any:
    """A request's own random generator (PCG64 seeded with `seed`, a negative one read as its unsigned
    64-bit pattern), or None for unseeded."""
    return None if seed is None else np.random.Generator(np.random.PCG64(seed % 2**64))


def copy_to_host(backend: Backend, arrays: Sequence[Any]) -> list[Any]:
    """Device arrays of any shapes -> host arrays, in one copy (packed as float64: token ids are exact)."""
    xp = array_module(arrays[0])
    flat = backend.to_host(xp.concatenate([a.reshape(-1).astype(xp.float64) for a in arrays]))
    ends = np.cumsum([int(np.prod(a.shape)) for a in arrays])
    return [part.reshape(a.shape) for part, a in zip(np.split(flat, ends[:-1]), arrays)]


def row_logprobs(chosen_id: int, chosen_logprob: float, rank: int, top_ids: Any, top_values: Any) -> RowLogprobs:
    """Host: one position's entries in vLLM's order: [chosen, top-1, ..., top-k], ranks [rank, 1..k]."""
    top_ids, top_values = [int(t) for t in top_ids], [float(v) for v in top_values]
    return RowLogprobs([int(chosen_id)] + top_ids, [float(chosen_logprob)] + top_values,
                       [int(rank)] + list(range(1, len(top_ids) + 1)))
