"""Temperature and the truncation filters: min_p, then top-k, then top-p (vLLM V1's order, §2).

Every filter keeps the tokens whose logit is at least some per-row threshold, so each one is
written as a function that returns that threshold, a [B, 1] column:

    temperature  x / T
    min_p        keep t when p_t >= min_p * max_j p_j,  i.e.  x_t >= max_j x_j + ln(min_p)
    top_k        keep t when x_t >= the k-th largest x   (ties at the threshold all stay)
    top_p        keep t when the probability of the tokens ranked strictly above t is < p

(p = softmax(x), x the temperature-scaled logits.) Each filter sees the row as the filters
before it left it, so the thresholds are applied in turn: top-p's probabilities are those of
the min_p- and top-k-filtered row. `apply_min_p`, `apply_top_k` and `apply_top_p` show each step
on its own (logits in, logits with -inf out); `truncation_threshold` chains all three for the
sampler, which never has to write the filtered [B, V] logits out.

Top-k and top-p need each row's largest logits in order. A full sort of 150k logits per row is
the most expensive thing here on a CPU, so `num_candidates` lets the caller sort only that many
(found with a partition, O(V)) and fall back to the full sort for rows whose top-p cut lies
beyond them. That fallback needs to look at the data (a device->host sync on a GPU), so the
sampler uses candidates on the CPU only and sorts the whole row on a device.

Shapes: B rows, V vocabulary, C candidates per row (the C largest logits, sorted descending).
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module

NUM_CANDIDATES = 1024


def apply_temperature(logits: Any, temperature: Any) -> Any:
    """[B, V] / [B, 1] -> [B, V]. Greedy rows pass 1.0 (they are decided before this step)."""
    return logits / temperature


def min_p_threshold(logits: Any, min_p: Any) -> Any:
    """[B, V] logits, [B, 1] min_p -> [B, 1]: max + ln(min_p), or -inf where min_p is 0."""
    xp = array_module(logits)
    top = logits.max(axis=-1, keepdims=True)  # [B, 1]
    return xp.where(min_p > 0, top + xp.log(xp.maximum(min_p, 1e-30)), -xp.inf)  # [B, 1]


def top_k_threshold(ranked: Any, top_k: Any) -> Any:
    """[B, C] sorted logits, [B, 1] int k -> [B, 1]: the k-th largest logit, or -inf where k is 0."""
    xp = array_module(ranked)
    kth = xp.take_along_axis(ranked, xp.clip(top_k - 1, 0, ranked.shape[-1] - 1), axis=-1)  # [B, 1]
    return xp.where(top_k > 0, kth, -xp.inf)


def top_p_threshold(logits: Any, weights: Any, ranked: Any, lower: Any, top_p: Any) -> tuple[Any, Any]:
    """The smallest logit top-p keeps, on the row as the earlier filters left it.

    logits [B, V]; weights [B, V] = exp(logits - row max); ranked [B, C] the largest logits,
    sorted; lower [B, 1] the threshold of the earlier filters; top_p [B, 1].
    Returns (threshold [B, 1], complete [B, 1]): `complete` is False for rows whose cut lies
    beyond the C candidates (the candidates hold less than p of the mass); their threshold
    must come from `top_p_threshold_sorted`.
    """
    xp = array_module(logits)
    kept_mass = xp.where(logits >= lower, weights, 0.0).sum(axis=-1, keepdims=True)  # [B, 1]
    probs = xp.where(ranked >= lower, xp.exp(ranked - ranked[:, :1]), 0.0) / kept_mass  # [B, C]
    mass_above = xp.cumsum(probs, axis=-1) - probs  # [B, C] mass ranked strictly above each
    num_kept = (mass_above < top_p).sum(axis=-1, keepdims=True)  # [B, 1], >= 1
    cutoff = xp.take_along_axis(ranked, num_kept - 1, axis=-1)  # [B, 1] smallest kept logit
    complete = (top_p >= 1) | (probs.sum(axis=-1, keepdims=True) >= top_p) | (ranked.shape[-1] == logits.shape[-1])
    return xp.where(top_p < 1, cutoff, -xp.inf), complete


def top_p_threshold_sorted(logits: Any, lower: Any, top_p: Any) -> Any:
    """`top_p_threshold` over each whole row, fully sorted: [B, V] -> [B, 1]."""
    xp = array_module(logits)
    ranked = sort_descending(logits)  # [B, V]
    weights = xp.exp(logits - ranked[:, :1])  # [B, V]
    threshold, _ = top_p_threshold(logits, weights, ranked, lower, top_p)
    return threshold


def truncation_threshold(logits: Any, weights: Any, min_p: Any, top_k: Any, top_p: Any,
                         num_candidates: int | None = NUM_CANDIDATES) -> Any:
    """min_p, then top-k, then top-p, as one [B, 1] threshold: keep t where logits_t >= it.

    logits [B, V] (temperature already applied); weights [B, V] = exp(logits - row max);
    min_p [B, 1] or None (no row uses it); top_k [B, 1] int or None; top_p [B, 1] or None.
    `num_candidates` must be at least the largest k; None sorts whole rows (no data-dependent
    fallback: what a device wants).
    """
    xp = array_module(logits)
    batch, vocab = logits.shape
    threshold = xp.full((batch, 1), -xp.inf, dtype=logits.dtype)  # [B, 1] keep everything
    if min_p is not None:
        threshold = xp.maximum(threshold, min_p_threshold(logits, min_p))
    if top_k is None and top_p is None:
        return threshold
    num = vocab if num_candidates is None else min(vocab, num_candidates)
    ranked = largest_sorted(logits, num)  # [B, C]
    if top_k is not None:
        threshold = xp.maximum(threshold, top_k_threshold(ranked, top_k))
    if top_p is None:
        return threshold
    cutoff, complete = top_p_threshold(logits, weights, ranked, threshold, top_p)
    if num < vocab and not bool(complete.all()):  # CPU only (num < vocab): a host check
        incomplete = xp.flatnonzero(~complete[:, 0])
        cutoff[incomplete] = top_p_threshold_sorted(logits[incomplete], threshold[incomplete], top_p[incomplete])
    return xp.maximum(threshold, cutoff)


def mask_below(logits: Any, threshold: Any) -> Any:
    """[B, V], [B, 1] -> [B, V]: tokens below the row's threshold become -inf."""
    xp = array_module(logits)
    return xp.where(logits < threshold, -xp.inf, logits)


def apply_min_p(logits: Any, min_p: Any) -> Any:
    """[B, V] -> [B, V]: drop tokens less likely than min_p times the row's most likely one."""
    return mask_below(logits, min_p_threshold(logits, min_p))


def apply_top_k(logits: Any, top_k: Any) -> Any:
    """[B, V] -> [B, V]: keep the k largest logits of each row (and any tied with the k-th)."""
    return mask_below(logits, top_k_threshold(sort_descending(logits), top_k))


def apply_top_p(logits: Any, top_p: Any) -> Any:
    """[B, V] -> [B, V]: keep the most likely tokens until their mass reaches p (nucleus)."""
    xp = array_module(logits)
    lower = xp.full((logits.shape[0], 1), -xp.inf, dtype=logits.dtype)  # [B, 1]
    return mask_below(logits, top_p_threshold_sorted(logits, lower, top_p))


def sort_descending(logits: Any) -> Any:
    """[B, V] -> [B, V]: each row sorted, largest first."""
    xp = array_module(logits)
    return xp.flip(xp.sort(logits, axis=-1), axis=-1)


def largest_sorted(logits: Any, num: int) -> Any:
    """[B, V] -> [B, C]: the C largest logits of each row, largest first (a partition, then a sort)."""
    xp = array_module(logits)
    vocab = logits.shape[-1]
    if num >= vocab:
        return sort_descending(logits)
    largest = xp.partition(logits, vocab - num, axis=-1)[:, vocab - num:]  # [B, C] unordered
    return sort_descending(largest)
