"""The sampler: logits [B, V] -> one token per row, plus the logprobs requests asked for.

The pipeline, in vLLM V1's order (api-semantics.md §2):

    0. grammar mask (structured outputs)            -> snapshot raw logprobs = log_softmax
    1. allowed_token_ids, bad_words, min_tokens, logit_bias, penalties      (processors.py)
    2. greedy rows: argmax here
    3. temperature, min_p, top-k, top-p                                      (truncation.py)
    4. draw: inverse-CDF sampling with one uniform number per row from the row's generator

Seeded rows draw from their own generator, so their tokens do not depend on which other
requests share the batch. The draw needs one random number per row, drawn on the host and
copied to the device (host->device is free to do); everything device->host is packed into
one array: the sampled ids, their logprobs and ranks, and the top-k logprobs rows asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from pyengine.backend import Backend, array_module, host_numpy
from pyengine.sampling.params import SamplingParams
from pyengine.sampling.processors import (
    apply_allowed_token_ids,
    apply_bad_words,
    apply_logit_bias,
    apply_min_tokens,
    apply_penalties,
)
from pyengine.sampling.truncation import apply_min_p, apply_temperature, apply_top_k_top_p

np = host_numpy()  # host: random generators and per-row parameter columns


def make_generator(seed: int | None) -> Any:
    """A request's own random generator (PCG64 seeded with `seed`), or None for unseeded."""
    return None if seed is None else np.random.Generator(np.random.PCG64(seed))


@dataclasses.dataclass
class SamplingRow:
    """One row of the batch as the sampler sees it, built by the engine each step."""

    params: SamplingParams
    prompt_token_ids: Sequence[int]
    output_token_ids: Sequence[int]
    generator: Any = None  # from make_generator, or None: the engine's generator
    stop_token_ids: frozenset[int] = frozenset()  # masked while len(output) < min_tokens


@dataclasses.dataclass
class RowLogprobs:
    """vLLM's order: the chosen (or actual) token first with its rank, then the top-k."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


@dataclasses.dataclass
class SamplerOutput:
    token_ids: list[int]
    sampled_logprobs: list[float]  # raw logprob of each sampled token (cumulative_logprob)
    logprobs: list[RowLogprobs | None]  # None where the row did not ask


class Sampler:
    """Samples one token per row with each row's own parameters, in one vectorised pass."""

    def __init__(self, backend: Backend, vocab_size: int, seed: int | None = None):
        self.backend = backend
        self.xp = backend.xp
        self.vocab_size = vocab_size
        self.generator = np.random.Generator(np.random.PCG64(seed))  # for unseeded rows

    def __call__(self, logits: Any, rows: Sequence[SamplingRow], allowed_mask: Any = None) -> SamplerOutput:
        xp = self.xp
        logits = logits.astype(xp.float32, copy=False)  # [B, V]
        if allowed_mask is not None:
            logits = xp.where(allowed_mask, logits, -xp.inf)
        raw_logprobs = log_softmax(logits)  # [B, V] what `logprobs` reports (raw mode)
        token_ids = self.sample(self.process(logits, rows), rows)  # [B] device
        return self._gather(raw_logprobs, token_ids, rows)

    # -- the steps ---------------------------------------------------------------------------------

    def process(self, logits: Any, rows: Sequence[SamplingRow]) -> Any:
        """Step 1: the logits processors, in vLLM's order."""
        for processor in (apply_allowed_token_ids, apply_bad_words, apply_min_tokens,
                          apply_logit_bias, apply_penalties):
            logits = processor(logits, rows)
        return logits

    def sample(self, logits: Any, rows: Sequence[SamplingRow]) -> Any:
        """Steps 2-4: greedy argmax, or temperature, truncation and a seeded draw. -> [B]"""
        xp = self.xp
        greedy = np.array([r.params.greedy for r in rows])
        greedy_ids = xp.argmax(logits, axis=-1)  # [B]; lowest index on ties, like torch
        if greedy.all():
            return greedy_ids
        column = self._column
        temperature = column([1.0 if r.params.greedy else r.params.temperature for r in rows])
        logits = apply_temperature(logits, temperature)
        min_p = [r.params.min_p for r in rows]
        if any(min_p):
            logits = apply_min_p(logits, column(min_p))
        top_k = [min(r.params.top_k, self.vocab_size) for r in rows]
        top_p = [r.params.top_p for r in rows]
        logits = apply_top_k_top_p(logits, column(top_k, np.int64), column(top_p), max(top_k),
                                   any(p < 1 for p in top_p))
        uniforms = column([(r.generator or self.generator).random() for r in rows], np.float64)
        sampled = inverse_cdf_sample(logits, uniforms)  # [B]
        return xp.where(xp.asarray(greedy), greedy_ids, sampled)

    def _gather(self, raw_logprobs: Any, token_ids: Any, rows: Sequence[SamplingRow]) -> SamplerOutput:
        """Pack ids, their logprobs and ranks, and top-k logprobs into one device->host copy."""
        xp = self.xp
        batch = len(rows)
        index = xp.arange(batch)
        chosen = raw_logprobs[index, token_ids]  # [B]
        wanted = [r.params.num_top_logprobs(self.vocab_size) for r in rows]
        max_k = max((k for k in wanted if k is not None), default=None)
        columns = [token_ids.astype(xp.float64), chosen.astype(xp.float64)]
        if max_k is not None:
            # vLLM's rank: how many tokens are at least as likely (so ties push the rank down)
            ranks = (raw_logprobs >= chosen[:, None]).sum(axis=-1)  # [B]
            top_ids, top_values = top_k_sorted(raw_logprobs, max_k) if max_k else (None, None)
            columns.append(ranks.astype(xp.float64))
            if max_k:
                columns += [top_ids.astype(xp.float64).T[i] for i in range(max_k)]
                columns += [top_values.astype(xp.float64).T[i] for i in range(max_k)]
        host = self.backend.to_host(xp.stack(columns, axis=1))  # [B, 2 (+1 + 2k)]: one copy
        ids = host[:, 0].astype(np.int64).tolist()
        out = SamplerOutput(ids, host[:, 1].tolist(), [None] * batch)
        for b, k in enumerate(wanted):
            if k is None:
                continue
            top_ids_b = host[b, 3:3 + k].astype(np.int64).tolist()
            top_vals_b = host[b, 3 + max_k:3 + max_k + k].tolist()
            out.logprobs[b] = RowLogprobs([ids[b]] + top_ids_b, [float(host[b, 1])] + top_vals_b,
                                          [int(host[b, 2])] + list(range(1, k + 1)))
        return out

    def _column(self, values: list[Any], dtype: Any = None) -> Any:
        """Per-row values -> a [B, 1] device column."""
        return self.xp.asarray(np.array(values, dtype=dtype or np.float32).reshape(-1, 1))


# ------------------------------------------------------------------------------------------------
# Leaf functions
# ------------------------------------------------------------------------------------------------


def log_softmax(logits: Any) -> Any:
    """[B, V] -> [B, V]: logits - logsumexp(logits), stable in float32."""
    xp = array_module(logits)
    top = logits.max(axis=-1, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    return logits - top - xp.log(xp.exp(logits - top).sum(axis=-1, keepdims=True))


def inverse_cdf_sample(logits: Any, uniforms: Any) -> Any:
    """[B, V] logits, [B, 1] uniforms in [0, 1) -> [B] tokens drawn from softmax(logits).

    Token t is chosen when cdf[t-1] <= u * total < cdf[t]: the number of cdf entries <= u * total.
    Tokens at -inf have zero probability and can never be chosen.
    """
    xp = array_module(logits)
    weights = xp.exp((logits - logits.max(axis=-1, keepdims=True)).astype(xp.float64))  # [B, V]
    cdf = xp.cumsum(weights, axis=-1)  # [B, V]
    target = uniforms * cdf[:, -1:]  # [B, 1]
    return (cdf <= target).sum(axis=-1)  # [B]


def top_k_sorted(values: Any, k: int) -> tuple[Any, Any]:
    """The k largest entries of each row, descending: ([B, k] ids, [B, k] values).

    Ties are broken by the lower token id, so ranks are deterministic.
    """
    xp = array_module(values)
    vocab = values.shape[-1]
    k = min(k, vocab)
    if k < vocab:
        candidates = xp.sort(xp.argpartition(-values, k - 1, axis=-1)[:, :k], axis=-1)  # [B, k] by id
    else:
        candidates = xp.broadcast_to(xp.arange(vocab), values.shape)
    cand_values = xp.take_along_axis(values, candidates, axis=-1)  # [B, k]
    order = xp.argsort(-cand_values, axis=-1, kind="stable")  # equal values keep id order
    ids = xp.take_along_axis(candidates, order, axis=-1)
    return ids, xp.take_along_axis(cand_values, order, axis=-1)


def compute_prompt_logprobs(logits: Any, token_ids: Sequence[int], num_top: int,
                            backend: Backend) -> list[RowLogprobs | None]:
    """Prompt logprobs: logits [T-1, V] at positions 0..T-2 score token_ids[1..T-1].

    Returns vLLM's layout: `None` for the first token (no context), then per position the
    actual token with its logprob and rank, followed by the top `num_top` (-1: all).
    """
    xp = backend.xp
    count = logits.shape[0]
    if len(token_ids) != count + 1:
        raise ValueError(f"prompt logprobs: {count} logits rows need {count + 1} tokens, got {len(token_ids)}")
    if count == 0:
        return [None]
    raw = log_softmax(logits.astype(xp.float32, copy=False))  # [T-1, V]
    targets = xp.asarray(np.asarray(token_ids[1:], dtype=np.int64))
    actual = raw[xp.arange(count), targets]  # [T-1]
    ranks = (raw >= actual[:, None]).sum(axis=-1)  # [T-1]
    k = raw.shape[-1] if num_top == -1 else num_top
    columns = [actual.astype(xp.float64), ranks.astype(xp.float64)]
    if k:
        top_ids, top_values = top_k_sorted(raw, k)
        columns += [top_ids.astype(xp.float64), top_values.astype(xp.float64)]
    host = backend.to_host(xp.concatenate([c.reshape(count, -1) for c in columns], axis=1))
    out: list[RowLogprobs | None] = [None]
    for t in range(count):
        ids = [int(token_ids[t + 1])] + host[t, 2:2 + k].astype(np.int64).tolist()
        values = [float(host[t, 0])] + host[t, 2 + k:2 + 2 * k].tolist()
        out.append(RowLogprobs(ids, values, [int(host[t, 1])] + list(range(1, k + 1))))
    return out
