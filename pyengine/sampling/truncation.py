"""Temperature and the truncation filters: min_p, then top-k, then top-p (vLLM V1's order), over whole rows.

Each filter keeps the tokens whose logit is at least a per-row threshold, and sees the row as the
filters before it left it (x the temperature-scaled logits, p = softmax(x)):

    min_p   keep t when p_t >= min_p * max_j p_j,  i.e.  x_t >= max_j x_j + ln(min_p)
    top_k   keep t when x_t >= the k-th largest x   (ties at the threshold all stay)
    top_p   keep t when the tokens ranked strictly above t hold less than p   (ties stay too)

These are the reference sampler's steps, each sorting whole rows; the tuned twin
(fast/truncation.py) chains the three thresholds into one per row, found among candidates.
Shapes: B rows, V vocabulary, C the sorted logits a threshold reads (a row's head, or all of it).
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module


def apply_temperature(logits: Any, temperature: Any, out: Any = None) -> Any:
    """[B, V] / [B, 1] -> [B, V] (into `out` if given). Greedy rows pass 1.0 (decided before this step)."""
    return array_module(logits).divide(logits, temperature, out=out)


def min_p_threshold(logits: Any, min_p: Any) -> Any:
    """[B, V] logits (or their sorted head), [B, 1] min_p -> [B, 1]: max + ln(min_p), or -inf where min_p is 0."""
    xp = array_module(logits)
    top = logits.max(axis=-1, keepdims=True)  # [B, 1]
    return xp.where(min_p > 0, top + xp.log(xp.maximum(min_p, 1e-30)), -xp.inf)  # [B, 1]


def top_k_threshold(ranked: Any, top_k: Any) -> Any:
    """[B, C] sorted logits, [B, 1] int k -> [B, 1]: the k-th largest logit, or -inf where k is 0."""
    xp = array_module(ranked)
    kth_largest = xp.take_along_axis(ranked, xp.clip(top_k - 1, 0, ranked.shape[-1] - 1), axis=-1)  # [B, 1]
    return xp.where(top_k > 0, kth_largest, -xp.inf)


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
    ranked = sort_descending(logits)  # [B, V]
    weights = xp.exp(ranked - ranked[:, :1]).astype(xp.float64)  # [B, V] unnormalised p, 0 where cut
    probs = weights / xp.cumsum(weights, axis=-1)[:, -1:]  # [B, V] in float64: a deep cut sums many tiny masses
    mass_above = xp.cumsum(probs, axis=-1) - probs  # [B, V] mass ranked strictly above each
    num_kept = (mass_above < top_p).sum(axis=-1, keepdims=True)  # [B, 1], >= 1
    cutoff = xp.take_along_axis(ranked, num_kept - 1, axis=-1)  # [B, 1] the smallest kept logit
    return mask_below(logits, xp.where(top_p < 1, cutoff, -xp.inf))


def sort_descending(values: Any) -> Any:
    """[B, N] -> [B, N]: each row sorted, largest first."""
    xp = array_module(values)
    return xp.flip(xp.sort(values, axis=-1), axis=-1)
