"""Logprobs, tuned: the log-normalizer in one tiled pass, and the top k among candidates.

The reference twin (reference.py, `ReferenceSampler.logprob_arrays`) takes a full log_softmax
and a full sort of each row; this computes the same numbers without writing out a [B, V] array
of logprobs and without sorting the row (topk.py finds the k largest).

Shapes: B rows (or T prompt positions), V vocabulary, Vt columns per tile, k top logprobs.
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module
from pyengine.sampling.fast.draw import TILE
from pyengine.sampling.fast.topk import largest


def logsumexp(logits: Any) -> Any:
    """[B, V] -> [B, 1]: log(sum(exp(logits))), reading the logits once, a tile of columns at a time.

    The online form flash attention uses: a running max m and a running sum s of exp(x - m);
    a tile that raises the max first rescales s by exp(m_old - m_new). A row of -inf gives -inf.
    """
    xp = array_module(logits)
    batch, vocab = logits.shape
    top = xp.full((batch, 1), -xp.inf, dtype=xp.float32)  # [B, 1] running max
    total = xp.zeros((batch, 1), dtype=xp.float64)  # [B, 1] running sum of exp(x - top)
    for start in range(0, vocab, TILE):  # a loop over column tiles, never over rows
        tile = logits[:, start:start + TILE]  # [B, Vt]
        new_top = xp.maximum(top, tile.max(axis=-1, keepdims=True))  # [B, 1]
        shift = xp.where(xp.isfinite(new_top), new_top, 0.0)  # all -inf so far: any finite shift works
        weights = tile - shift  # [B, Vt]
        xp.exp(weights, out=weights)  # in place: the tile's one temporary
        total = total * xp.exp(top - shift) + weights.sum(axis=-1, keepdims=True)
        top = new_top
    shift = xp.where(xp.isfinite(top), top, 0.0)
    return (shift + xp.log(total)).astype(logits.dtype)  # [B, 1]


def chosen_and_top(logits: Any, log_normalizer: Any, chosen_ids: Any, k: int) -> list[Any]:
    """Logprobs of the chosen tokens and of each row's top k, with vLLM's ranks.

    logits [B, V] (raw), log_normalizer [B, 1] their logsumexp, chosen_ids [B] -> [chosen logprob [B],
    rank [B], top ids [B, k], top logprobs [B, k]], all on the device. A logprob is logit - log_normalizer,
    one shift per row, so ranks and the top k are found on the logits themselves (the same
    order, ties included) and only the [B, k] winners are shifted.
    """
    xp = array_module(logits)
    chosen = xp.take_along_axis(logits, chosen_ids[:, None], axis=-1)  # [B, 1]
    ranks = (logits >= chosen).sum(axis=-1)  # [B] tokens at least as likely as the chosen one
    top_ids, top_logits = largest(logits, k) if k else (chosen_ids[:, None][:, :0], chosen[:, :0])
    return [(chosen - log_normalizer)[:, 0], ranks, top_ids, top_logits - log_normalizer]
