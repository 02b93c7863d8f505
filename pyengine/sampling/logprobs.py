"""Logprobs as vLLM reports them: the chosen token with its rank, then the top-k.

In vLLM's default mode (`raw_logprobs`) every number is `log_softmax` of the model's logits as
they left the model (after the grammar mask, before penalties, bias and temperature).

    rank(t)  = the number of tokens whose logprob is >= logprob(t)   (ties push the rank down)
    entries  = [chosen token, top-1, ..., top-k]; ranks [rank(chosen), 1, ..., k]

`RowLogprobs` keeps that list as is, duplicates included (a chosen token that is also in the
top-k appears twice); whoever turns it into vLLM's `{token_id: Logprob}` dict keeps a
duplicate's first position. (vLLM builds that dict with a comprehension, so the value is the
top-k entry's: the same logprob, and the top-k position as rank, which differs from the
chosen entry's rank only when ties push it down.)

Shapes: B rows (or T prompt positions), V vocabulary, k top logprobs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: unpacking the one copied-back array

from pyengine.backend import Backend, array_module
from pyengine.sampling.draw import TILE
from pyengine.sampling.topk import top_k_sorted


@dataclasses.dataclass
class RowLogprobs:
    """One position's logprobs in vLLM's order: the chosen (or actual) token first, then the top-k."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


def log_softmax(logits: Any) -> Any:
    """[B, V] -> [B, V]: logits - logsumexp(logits), in the logits' dtype."""
    return logits - logsumexp(logits)


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
    top_ids, top_logits = top_k_sorted(logits, k) if k else (chosen_ids[:, None][:, :0], chosen[:, :0])
    return [(chosen - log_normalizer)[:, 0], ranks, top_ids, top_logits - log_normalizer]


def pack(arrays: Sequence[Any]) -> Any:
    """Device arrays of any shapes -> one flat float64 device array (token ids are exact in float64)."""
    xp = array_module(arrays[0])
    return xp.concatenate([a.reshape(-1).astype(xp.float64) for a in arrays])


def unpack(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Host: the inverse of `pack`, given the arrays' shapes."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def row_logprobs(chosen_id: int, chosen_logprob: float, rank: int, top_ids: Any, top_values: Any) -> RowLogprobs:
    """Host: one position's entries in vLLM's order: [chosen, top-1, ..., top-k], ranks [rank, 1..k]."""
    top_ids, top_values = [int(t) for t in top_ids], [float(v) for v in top_values]
    return RowLogprobs([int(chosen_id)] + top_ids, [float(chosen_logprob)] + top_values,
                       [int(rank)] + list(range(1, len(top_ids) + 1)))


def compute_prompt_logprobs(logits: Any, prompt_token_ids: Sequence[int], num_top: int,
                            backend: Backend) -> list[RowLogprobs | None]:
    """Prompt logprobs: the logits at position p score prompt token p + 1.

    `logits` is [T - 1, V] (positions 0..T-2) or [T, V] (the last row, which predicts the first
    generated token, is then ignored) for the T = len(prompt_token_ids) prompt tokens.
    `num_top` is how many top logprobs to add per position (0: the actual token only; -1: all).
    Returns vLLM's layout: `None` for the first token (no context), then per later position the
    actual token with its logprob and rank, followed by the top `num_top`. One device->host copy.
    """
    xp = backend.xp
    num_scored = len(prompt_token_ids) - 1
    if logits.ndim != 2 or logits.shape[0] not in (num_scored, num_scored + 1):
        raise ValueError(f"prompt logprobs: logits of shape {tuple(logits.shape)} do not match "
                         f"{len(prompt_token_ids)} prompt tokens (expected [{num_scored}, V] or [{num_scored + 1}, V])")
    if num_scored <= 0:
        return [None]
    k = logits.shape[-1] if num_top == -1 else num_top
    scored = logits[:num_scored].astype(xp.float32)  # [T-1, V]
    targets = backend.to_device(np.asarray(prompt_token_ids[1:], dtype=np.int64))  # [T-1]
    arrays = chosen_and_top(scored, logsumexp(scored), targets, k)
    shapes = [(num_scored,), (num_scored,), (num_scored, k), (num_scored, k)]
    actual, ranks, top_ids, top_values = unpack(backend.to_host(pack(arrays)), shapes)
    out: list[RowLogprobs | None] = [None]
    for t in range(num_scored):
        out.append(row_logprobs(prompt_token_ids[t + 1], actual[t], ranks[t], top_ids[t].astype(np.int64),
                                top_values[t]))
    return out
