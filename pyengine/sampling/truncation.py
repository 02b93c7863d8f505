"""Temperature and the truncation filters: min_p, then top-k, then top-p (vLLM V1's order).

Every filter keeps the tokens whose logit is at least some per-row threshold, so each one is
written as a function that returns that threshold, a [B, 1] column:

    temperature  x / T
    min_p        keep t when p_t >= min_p * max_j p_j,  i.e.  x_t >= max_j x_j + ln(min_p)
    top_k        keep t when x_t >= the k-th largest x   (ties at the threshold all stay)
    top_p        keep t when the probability of the tokens ranked strictly above t is < p
                 (ties with the last kept token all stay, as in top-k)

(p = softmax(x), x the temperature-scaled logits.) Each filter sees the row as the filters
before it left it, so top-p's probabilities are those of the min_p- and top-k-filtered row.
`apply_min_p`, `apply_top_k` and `apply_top_p` run each step on its own (logits in, logits
with -inf out), sorting whole rows: the reference sampler's steps. The tuned twin
(fast/truncation.py) chains all three into one threshold per row found among candidates, and
never writes the filtered [B, V] logits out; both use the threshold functions here.

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


def top_p_threshold(ranked: Any, kept_mass: Any, lower: Any, top_p: Any) -> tuple[Any, Any]:
    """The smallest logit top-p keeps, on the row as the earlier filters left it.

    ranked [B, C]: the row's largest logits, sorted; kept_mass [B, 1]: sum of exp(x - max) over
    the tokens the earlier filters kept; lower [B, 1]: their threshold; top_p [B, 1].
    Returns (threshold [B, 1], complete [B, 1]). `complete` is False for rows whose cut lies
    beyond the C candidates (they hold less than p of the mass): their threshold is not final.
    """
    xp = array_module(ranked)
    weights = xp.where(ranked >= lower, xp.exp(ranked - ranked[:, :1]), 0.0)  # [B, C]
    probs = weights.astype(xp.float64) / kept_mass  # [B, C] in float64: a deep cut sums many tiny masses
    cumulative = xp.cumsum(probs, axis=-1)  # [B, C]
    mass_above = cumulative - probs  # [B, C] mass ranked strictly above each
    num_kept = (mass_above < top_p).sum(axis=-1, keepdims=True)  # [B, 1], >= 1
    cutoff = xp.take_along_axis(ranked, num_kept - 1, axis=-1)  # [B, 1] smallest kept logit
    complete = (top_p >= 1) | (cumulative[:, -1:] >= top_p)  # [B, 1] the cut lies among the candidates
    return xp.where(top_p < 1, cutoff, -xp.inf), complete


def top_p_threshold_sorted(logits: Any, lower: Any, top_p: Any) -> Any:
    """`top_p_threshold` with each whole row sorted (always complete): [B, V] -> [B, 1]."""
    ranked = sort_descending(logits)  # [B, V]
    threshold, _ = top_p_threshold(ranked, sorted_mass(ranked, lower), lower, top_p)
    return threshold


def sorted_mass(ranked: Any, lower: Any) -> Any:
    """[B, C] sorted logits -> [B, 1] float64: sum of exp(x - max) over those >= lower.

    A running sum in float64, so trailing candidates below `lower` (a larger C) change nothing.
    """
    xp = array_module(ranked)
    kept = xp.where(ranked >= lower, xp.exp(ranked - ranked[:, :1]), 0.0).astype(xp.float64)  # [B, C]
    return xp.cumsum(kept, axis=-1)[:, -1:]


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


def sort_descending(values: Any) -> Any:
    """[B, N] -> [B, N]: each row sorted, largest first."""
    xp = array_module(values)
    return xp.flip(xp.sort(values, axis=-1), axis=-1)
