"""The draw, tuned: among a row's candidates, or in two levels over its blocks, never [B, V] at once.

The same inverse-CDF draw as reference.py's, one uniform number per row, arranged for speed.

Most rows keep a handful of tokens (top-k, top-p, min_p): they draw among their C candidates,
the row's largest logits (fast/truncation.py). A row that keeps more (no filter, or a deep cut)
draws over the whole vocabulary, in two levels, so nothing of size [B, V] is ever written:

    blocks   [ ..1024.. | ..1024.. | ..1024.. | ..rest.. ]    exp-sum of each block, computed
    sums         s0         s1         s2        s3           a tile of columns at a time
    u * sum(s) falls in block 2 -> recompute block 2's 1024 weights -> cumsum -> token 2*1024 + j

The leftover of the uniform inside the chosen block is again uniform, so one number decides
both levels. Tiles keep each temporary small enough to stay in cache.

Shapes: B rows (R of them on the whole-row path), V vocabulary, C candidates, G blocks of
Bk = BLOCK tokens, Vt columns per tile.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np  # host: the indices of the rows without a filter

from pyengine.backend import array_module
from pyengine.sampling.reference import BELOW_ONE, inverse_cdf_sample

BLOCK = 1024
TILE = 8192  # columns per tile: at batch 32 a tile's temporaries (1 MiB of float32) stay in cache;
# a fixed width (not one that depends on the batch) keeps every row's sums the same in any batch


def sample_truncated(logits: Any, temperature: Any, threshold: Any, candidate_ids: Any, candidate_logits: Any,
                     uniforms: Any, unfiltered: Sequence[int] = ()) -> Any:
    """Draw each row from softmax(logits / T) restricted to logits / T >= threshold. -> [B] ids

    logits [B, V]; temperature, threshold, uniforms [B, 1]; candidate_ids, candidate_logits
    [B, C]: each row's C largest logits divided by T, largest first, ties by id (None when no
    row filters); `unfiltered`: the rows no filter applies to (known from their parameters).

    Two orders, the choice a function of the row alone, so a seeded row draws the same token in
    any batch: a row with a filter draws in sorted order among its candidates; a row without one
    draws over its whole row in token-id order, and so does, on the CPU, a filtered row that
    keeps more tokens than its candidates (a look at the data finds those; a device has whole
    sorted rows as candidates, so its seeded streams map to other tokens there).
    """
    xp = array_module(logits)
    if candidate_ids is None:  # no row filters
        row_max = logits.max(axis=-1, keepdims=True) / temperature  # [B, 1] = max(logits / T)
        return sample_whole_rows(logits, temperature, row_max, None, uniforms)
    tokens = sample_sorted(candidate_ids, candidate_logits, threshold, uniforms)  # [B]
    if unfiltered:
        rows = xp.asarray(np.asarray(unfiltered, dtype=np.int64))  # [R]
        tokens[rows] = sample_whole_rows(logits, temperature, candidate_logits[:, :1], None, uniforms, rows)
    if candidate_ids.shape[-1] < logits.shape[-1]:
        beyond = (threshold > -xp.inf) & (threshold <= candidate_logits[:, -1:])  # [B, 1] keeps more than C
        if bool(beyond.any()):  # CPU only (candidates are not whole rows): a host check
            rows = xp.flatnonzero(beyond[:, 0])
            tokens[rows] = sample_whole_rows(logits, temperature, candidate_logits[:, :1], threshold, uniforms, rows)
    return tokens


def sample_sorted(ids: Any, ranked: Any, threshold: Any, uniforms: Any) -> Any:
    """Inverse CDF in sorted order: [B, C] ids and scaled logits (largest first), [B, 1] -> [B] ids."""
    xp = array_module(ranked)
    weights = xp.where(ranked >= threshold, xp.exp(ranked - ranked[:, :1]), 0.0)  # [B, C]
    return xp.take_along_axis(ids, inverse_cdf_sample(weights, uniforms)[:, None], axis=-1)[:, 0]


def sample_whole_rows(logits: Any, temperature: Any, row_max: Any, threshold: Any, uniforms: Any,
                      rows: Any = None) -> Any:
    """Two-level inverse CDF over whole rows. -> [R] token ids

    logits [B, V]; temperature, row_max (of logits / T), uniforms [B, 1]; threshold [B, 1], or
    None where no row filters; `rows` (device int array) picks the rows to draw for, None: all.
    """
    xp = array_module(logits)
    if rows is not None:
        temperature, row_max, uniforms = temperature[rows], row_max[rows], uniforms[rows]
        threshold = None if threshold is None else threshold[rows]
    vocab = logits.shape[-1]
    block = min(BLOCK, vocab)
    sums = exp_block_sums(logits, temperature, row_max, threshold, rows, block)  # [R, G]
    cdf = xp.cumsum(sums, axis=-1)  # [R, G]
    target = xp.clip(uniforms, 0.0, BELOW_ONE) * cdf[:, -1:]  # [R, 1]
    chosen = (cdf <= target).sum(axis=-1, keepdims=True)  # [R, 1] the block the target falls in
    before = xp.take_along_axis(cdf, chosen, axis=-1) - xp.take_along_axis(sums, chosen, axis=-1)  # [R, 1]
    inner_uniforms = (target - before) / xp.take_along_axis(sums, chosen, axis=-1)  # [R, 1] uniform again
    columns = chosen * block + xp.arange(block)  # [R, Bk] the block's token ids
    columns_in_range = xp.minimum(columns, vocab - 1)  # [R, Bk]
    block_logits = (xp.take_along_axis(logits, columns_in_range, axis=-1) if rows is None
                    else logits[rows[:, None], columns_in_range])  # [R, Bk]
    weights = kept_weights(block_logits, temperature, row_max, threshold)  # [R, Bk]
    weights = xp.where(columns < vocab, weights, 0.0)  # the last block may be short
    return chosen[:, 0] * block + inverse_cdf_sample(weights, inner_uniforms)


def exp_block_sums(logits: Any, temperature: Any, row_max: Any, threshold: Any, rows: Any = None,
                   block: int = BLOCK) -> Any:
    """[B, V] -> [R, G] float64: each block's sum of kept weights, computed tile by tile.

    temperature, row_max, threshold are [R, 1], for the rows `rows` picks (None: all B).
    """
    xp = array_module(logits)
    vocab = logits.shape[-1]
    width = max(block, TILE // block * block)  # Vt, a multiple of the block
    sums = []
    for start in range(0, vocab, width):  # a loop over column tiles, never over rows
        tile = logits[:, start:start + width] if rows is None else logits[rows, start:start + width]  # [R, Vt]
        weights = kept_weights(tile, temperature, row_max, threshold)  # [R, Vt]
        sums.append(block_sums(weights, block).astype(xp.float64))  # [R, Vt / Bk]
    return xp.concatenate(sums, axis=-1)  # [R, G]


def kept_weights(logits: Any, temperature: Any, row_max: Any, threshold: Any) -> Any:
    """[R, N] logits -> [R, N] weights exp(x / T - max), 0 where x / T < threshold (if not None)."""
    xp = array_module(logits)
    scaled = logits / temperature  # [R, N]
    weights = xp.exp(scaled - row_max)  # [R, N]
    return weights if threshold is None else xp.where(scaled >= threshold, weights, 0.0)


def block_sums(weights: Any, block: int) -> Any:
    """[R, N] -> [R, ceil(N / block)]: the sum of each run of `block` columns (the last may be shorter)."""
    xp = array_module(weights)
    rows, width = weights.shape
    whole = width // block * block
    sums = weights[:, :whole].reshape(rows, -1, block).sum(axis=-1)  # [R, N // block]
    if whole == width:
        return sums
    return xp.concatenate([sums, weights[:, whole:].sum(axis=-1, keepdims=True)], axis=-1)
