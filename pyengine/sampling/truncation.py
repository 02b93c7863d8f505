"""Temperature and the truncation filters: min_p, then top-k, then top-p (vLLM V1's order).

All take and return logits [B, V]; a filtered token becomes -inf. Per-row parameters are [B, 1]
columns, so rows with different settings share one pass.

    temperature  logits / T
    min_p        drop t when p_t < min_p * max_j p_j      (p = softmax(logits / T))
    top_k        keep t when logit_t >= the k-th largest logit (ties at the threshold all stay)
    top_p        keep t when the probability of the tokens ranked strictly above it is < p

Top-k and top-p need each row's largest logits in order. A full sort of a 150k vocabulary per
row would dominate the step, so we sort only the `num_candidates` largest (found with a
partition, O(V)) and fall back to a full sort only for rows whose top-p cut lies beyond them.
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module

NUM_CANDIDATES = 1024


def apply_temperature(logits: Any, temperature: Any) -> Any:
    """[B, V] / [B, 1]; greedy rows pass 1.0 (they are decided before this step)."""
    return logits / temperature


def apply_min_p(logits: Any, min_p: Any) -> Any:
    """Drop tokens whose probability is below min_p times the row's top probability."""
    xp = array_module(logits)
    top = logits.max(axis=-1, keepdims=True)  # [B, 1]
    # p_t < min_p * p_max  <=>  logit_t - logit_max < log(min_p)
    with_floor = xp.where(min_p > 0, xp.log(xp.maximum(min_p, 1e-30)), -xp.inf)  # [B, 1]
    return xp.where(logits - top < with_floor, -xp.inf, logits)


def apply_top_k_top_p(logits: Any, top_k: Any, top_p: Any, max_k: int, any_top_p: bool) -> Any:
    """Top-k (k = 0: off) then top-p (p = 1: off) on the same ranking of each row.

    `top_k` is an int [B, 1] column, `top_p` a float [B, 1] column; `max_k` is the largest k in
    the batch and `any_top_p` whether some row has p < 1 (both known on the host).
    """
    xp = array_module(logits)
    vocab = logits.shape[-1]
    if max_k == 0 and not any_top_p:
        return logits
    num = min(vocab, max(max_k, NUM_CANDIDATES))
    ranked = _largest_sorted(logits, num)  # [B, num], descending
    if max_k:
        kth = xp.take_along_axis(ranked, xp.clip(top_k - 1, 0, num - 1), axis=-1)  # [B, 1]
        threshold = xp.where(top_k > 0, kth, -xp.inf)
        logits = xp.where(logits < threshold, -xp.inf, logits)
        ranked = xp.where(ranked < threshold, -xp.inf, ranked)
    if not any_top_p:
        return logits
    # Probability mass of the candidates, relative to the whole (top-k filtered) row.
    row_max = ranked[:, :1]  # [B, 1]
    log_total = xp.log(xp.exp(logits - row_max).sum(axis=-1, keepdims=True))  # [B, 1]
    probs = xp.exp(ranked - row_max - log_total)  # [B, num]
    mass_above = xp.cumsum(probs, axis=-1) - probs  # [B, num]: mass ranked strictly above
    survives = mass_above < top_p  # [B, num]
    last_kept = survives.sum(axis=-1, keepdims=True)  # [B, 1] candidates kept (>= 1)
    if num < vocab:
        # A row whose cut lies past the candidates: redo it on its full sorted row.
        needs_all = (last_kept == num) & (top_p < 1)  # [B, 1]
        if bool(needs_all.any()):
            return _top_p_full(logits, top_p, needs_all, ranked, last_kept)
    cutoff = xp.take_along_axis(ranked, last_kept - 1, axis=-1)  # [B, 1] smallest kept logit
    cutoff = xp.where(top_p < 1, cutoff, -xp.inf)
    return xp.where(logits < cutoff, -xp.inf, logits)


def _largest_sorted(logits: Any, num: int) -> Any:
    """The `num` largest logits of each row, sorted descending: [B, V] -> [B, num]."""
    xp = array_module(logits)
    vocab = logits.shape[-1]
    part = logits if num == vocab else xp.partition(logits, vocab - num, axis=-1)[:, vocab - num:]
    return -xp.sort(-part, axis=-1)


def _top_p_full(logits: Any, top_p: Any, needs_all: Any, ranked: Any, last_kept: Any) -> Any:
    """Top-p with a full sort for every row (used only when the candidate shortcut is not enough)."""
    xp = array_module(logits)
    full = -xp.sort(-logits, axis=-1)  # [B, V]
    row_max = full[:, :1]
    probs = xp.exp(full - row_max)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    mass_above = xp.cumsum(probs, axis=-1) - probs
    kept = (mass_above < top_p).sum(axis=-1, keepdims=True)  # [B, 1]
    cutoff = xp.take_along_axis(full, kept - 1, axis=-1)
    cutoff = xp.where(top_p < 1, cutoff, -xp.inf)
    return xp.where(logits < cutoff, -xp.inf, logits)
