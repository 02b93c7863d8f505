"""Truncation, tuned: min_p, top-k and top-p chained into one threshold per row, among candidates.

`truncate` looks only at each row's C largest logits, found without sorting the row (topk.py);
dividing by T changes no ranking, so only those C are divided. A cut can lie deeper than C
tokens on a flat row: `num_candidates=None` avoids the question by sorting whole rows (what a
device wants: no data-dependent branch), while on the CPU the sampler uses C candidates and
re-does the rare deep rows with a full sort, which needs a look at the data (free on the CPU,
a device->host sync on a GPU). Top-p's probabilities are summed in float64, so both ways give
the same cut.

Shapes: B rows, V vocabulary, C candidates per row (the C largest logits, sorted descending).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pyengine.backend import array_module
from pyengine.sampling.fast.draw import exp_block_sums
from pyengine.sampling.fast.topk import largest
from pyengine.sampling.truncation import apply_temperature, min_p_threshold, sort_descending, top_k_threshold

NUM_CANDIDATES = 256


class Truncation(NamedTuple):
    """What the filters decided for each row: keep token t where logits_t / T >= threshold.

    `candidate_ids` / `candidate_logits` [B, C]: the row's C largest logits, divided by T and
    sorted (None when no row filters). A row whose threshold lies above its smallest candidate
    keeps candidates only, so it can draw among them without touching the rest of the row.
    """

    threshold: Any  # [B, 1], in temperature-scaled units
    candidate_ids: Any  # [B, C] or None
    candidate_logits: Any  # [B, C] or None


def truncate(logits: Any, temperature: Any, min_p: Any, top_k: Any, top_p: Any,
             num_candidates: int | None = NUM_CANDIDATES) -> Truncation:
    """Temperature, then min_p, top-k and top-p, chained into one [B, 1] threshold per row.

    logits [B, V] (before temperature); temperature [B, 1]; min_p [B, 1] or None (no row uses
    it); top_k [B, 1] int or None; top_p [B, 1] or None. Dividing by T changes no ranking, so
    the candidates are found on the logits and only they, [B, C], are divided. `num_candidates`
    must be at least the largest k; None makes the candidates whole sorted rows.
    """
    xp = array_module(logits)
    batch, vocab = logits.shape
    threshold = xp.full((batch, 1), -xp.inf, dtype=logits.dtype)  # [B, 1] keep everything
    if min_p is None and top_k is None and top_p is None:
        return Truncation(threshold, None, None)
    num = vocab if num_candidates is None else min(vocab, num_candidates)
    ids, ranked = largest(logits, num)  # [B, C] each
    ranked = apply_temperature(ranked, temperature)  # [B, C]
    if min_p is not None:
        threshold = xp.maximum(threshold, min_p_threshold(ranked, min_p))  # ranked[:, :1] is the row max
    if top_k is not None:
        threshold = xp.maximum(threshold, top_k_threshold(ranked, top_k))
    if top_p is not None:
        mass = kept_mass(logits, temperature, ranked, threshold, top_p)  # [B, 1]
        cutoff, complete = top_p_threshold(ranked, mass, threshold, top_p)
        if num < vocab and not bool(complete.all()):  # CPU only (num < vocab): a host check
            deep = xp.flatnonzero(~complete[:, 0])  # the cut lies past the candidates: sort these rows
            scaled = apply_temperature(logits[deep], temperature[deep])  # [B_deep, V]
            cutoff[deep] = top_p_threshold_sorted(scaled, threshold[deep], top_p[deep])
        threshold = xp.maximum(threshold, cutoff)
    return Truncation(threshold, ids, ranked)


def truncation_threshold(logits: Any, min_p: Any, top_k: Any, top_p: Any) -> Any:
    """The [B, 1] threshold of `truncate` for logits already divided by T (whole rows sorted)."""
    xp = array_module(logits)
    ones = xp.ones((logits.shape[0], 1), dtype=logits.dtype)  # [B, 1] temperature 1
    return truncate(logits, ones, min_p, top_k, top_p, num_candidates=None).threshold


def kept_mass(logits: Any, temperature: Any, ranked: Any, lower: Any, top_p: Any) -> Any:
    """[B, 1] float64: sum of exp(x / T - max) over the tokens at or above `lower`; top-p divides by it.

    The candidates alone hold it when every kept token is one (lower above the smallest
    candidate, or candidates that are whole rows); the other top-p rows (those no earlier
    filter cut, say) sum over their whole row.
    """
    xp = array_module(logits)
    mass = sorted_mass(ranked, lower)  # [B, 1]
    if ranked.shape[-1] == logits.shape[-1]:
        return mass
    beyond = (lower <= ranked[:, -1:]) & (top_p < 1)  # [B, 1] kept tokens beyond the candidates
    if bool(beyond.any()):  # CPU only (candidates are not whole rows): a host check
        rows = xp.flatnonzero(beyond[:, 0])
        sums = exp_block_sums(logits, temperature[rows], ranked[rows, :1], lower[rows], rows)  # [B_beyond, G]
        mass[rows] = sums.sum(axis=-1, keepdims=True)
    return mass


def top_p_threshold(ranked: Any, mass: Any, lower: Any, top_p: Any) -> tuple[Any, Any]:
    """The smallest logit top-p keeps, on the row as the earlier filters left it.

    ranked [B, C]: the row's largest logits, sorted; mass [B, 1]: sum of exp(x - max) over
    the tokens the earlier filters kept; lower [B, 1]: their threshold; top_p [B, 1].
    Returns (threshold [B, 1], complete [B, 1]). `complete` is False for rows whose cut lies
    beyond the C candidates (they hold less than p of the mass): their threshold is not final.
    """
    xp = array_module(ranked)
    weights = xp.where(ranked >= lower, xp.exp(ranked - ranked[:, :1]), 0.0)  # [B, C]
    probs = weights.astype(xp.float64) / mass  # [B, C] in float64: a deep cut sums many tiny masses
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
