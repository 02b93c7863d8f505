"""The draw: one token per row from its (truncated) distribution, with one random number per row.

Inverse-CDF sampling: with w the row's non-negative weights (unnormalised probabilities, 0 for
filtered tokens) and u ~ U[0, 1), the token is the first t whose cumulative weight exceeds
u * sum(w). Token t is then chosen with probability w_t / sum(w), and a token of weight 0 can
never be chosen. vLLM draws V exponentials per row instead (an "exponential race"); that is the
same distribution, but one number per row is all a seeded request needs to draw on the host,
so its tokens depend on its own generator only, never on the batch around it.

A cumulative sum over 150k tokens per row is slow (a sequential scan), so the search runs in
two levels: pick a block of `BLOCK` tokens by the blocks' total weights, then the token inside
the block, reusing the leftover of the same uniform. Same result, two short scans.

    weights  [ ..1024.. | ..1024.. | ..1024.. | ..rest.. ]       u * total falls in block 2
    block sums     s0         s1         s2        s3             -> cumsum -> block 2
    inside block 2: cumsum of its 1024 weights -> token 2 * 1024 + j

Shapes: B rows, V vocabulary, G blocks per row, Bk = BLOCK tokens per block.
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module, host_numpy

np = host_numpy()  # host: the random generators

BLOCK = 1024
_BELOW_ONE = 1.0 - 2.0**-53  # the largest float64 below 1


def make_generator(seed: int | None) -> Any:
    """A request's own random generator (PCG64 seeded with `seed`), or None for unseeded.

    Negative seeds are read as their unsigned 64-bit pattern. For `n > 1` the engine gives
    choice i the generator of `seed + i` (api-semantics.md §3.8).
    """
    return None if seed is None else np.random.Generator(np.random.PCG64(seed % 2**64))


def inverse_cdf_sample(weights: Any, uniforms: Any) -> Any:
    """[B, V] weights >= 0 (each row with some weight > 0), [B, 1] uniforms in [0, 1) -> [B] token ids."""
    xp = array_module(weights)
    batch, vocab = weights.shape
    block = min(BLOCK, vocab)
    sums = block_sums(weights, block).astype(xp.float64)  # [B, G]
    cdf = xp.cumsum(sums, axis=-1)  # [B, G]
    target = uniforms * cdf[:, -1:]  # [B, 1] u * total
    chosen = (cdf <= target).sum(axis=-1, keepdims=True)  # [B, 1] first block whose cdf exceeds target
    before = xp.take_along_axis(cdf, chosen, axis=-1) - xp.take_along_axis(sums, chosen, axis=-1)  # [B, 1]
    inner_u = (target - before) / xp.take_along_axis(sums, chosen, axis=-1)  # [B, 1] uniform again
    columns = chosen * block + xp.arange(block)  # [B, Bk] the chosen block's token ids
    inside = xp.take_along_axis(weights, xp.minimum(columns, vocab - 1), axis=-1)  # [B, Bk]
    inside = xp.where(columns < vocab, inside, 0).astype(xp.float64)  # the last block may be short
    inner_cdf = xp.cumsum(inside, axis=-1)  # [B, Bk]
    inner_target = xp.clip(inner_u, 0.0, _BELOW_ONE) * inner_cdf[:, -1:]  # [B, 1] < the block's total
    offset = (inner_cdf <= inner_target).sum(axis=-1)  # [B]
    return chosen[:, 0] * block + offset


def block_sums(weights: Any, block: int) -> Any:
    """[B, V] -> [B, G]: the sum of each run of `block` tokens (the last run may be shorter)."""
    xp = array_module(weights)
    batch, vocab = weights.shape
    whole = vocab // block * block
    sums = weights[:, :whole].reshape(batch, -1, block).sum(axis=-1)  # [B, V // Bk]
    if whole == vocab:
        return sums
    return xp.concatenate([sums, weights[:, whole:].sum(axis=-1, keepdims=True)], axis=-1)  # [B, G]
