"""The k largest entries of each row, without sorting the vocabulary.

Top-k, top-p and top logprobs all need a row's largest entries in order, and a full sort of
150k logits per row would cost more than the rest of the sampler together. Instead:

    view the row as S slices of G = V / S entries; group j = entries {j, j + G, j + 2G, ...}
    group maxima   one elementwise max over the S slices            [B, G]   (one pass)
    top-k groups   a partition over the G maxima                     [B, k]
    candidates     the k x S members of those groups                 [B, k * S]
    then sort only the candidates.

This is exact: a group that holds one of the k largest entries has a maximum at least that
large, and fewer than k groups can beat it, so the k largest entries are all among the
candidates. (Ties at the k-th value: the values found are right; which of the tied tokens
past the k-th place are left out is not specified.) Groups are strided rather than contiguous so that the maxima are a
reduction over the outer axis, which numpy and cupy vectorise well. Tokens past the last
whole slice (V not a multiple of S) are always candidates.

Shapes: B rows, V vocabulary, S = GROUP_SIZE slices, G = V // S groups, M candidates.
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import array_module

GROUP_SIZE = 16


def candidate_columns(values: Any, k: int) -> Any | None:
    """[B, V] -> [B, M] token ids that surely include each row's k largest, or None if M would be V."""
    xp = array_module(values)
    batch, vocab = values.shape
    num_groups = vocab // GROUP_SIZE
    if k * GROUP_SIZE >= vocab or k >= num_groups:
        return None
    whole = num_groups * GROUP_SIZE
    maxima = values[:, :whole].reshape(batch, GROUP_SIZE, num_groups).max(axis=1)  # [B, G]
    groups = xp.argpartition(maxima, num_groups - k, axis=-1)[:, num_groups - k:]  # [B, k]
    members = groups[:, :, None] + num_groups * xp.arange(GROUP_SIZE)  # [B, k, S]
    columns = members.reshape(batch, k * GROUP_SIZE)  # [B, k * S]
    if whole == vocab:
        return columns
    rest = xp.broadcast_to(xp.arange(whole, vocab), (batch, vocab - whole))  # [B, V - whole]
    return xp.concatenate([columns, rest], axis=-1)  # [B, M]


def largest(values: Any, k: int) -> tuple[Any, Any]:
    """[B, V] -> ([B, k] token ids, [B, k] values): each row's k largest, largest first.

    Equal values come in token-id order, so the result depends on nothing but the row (and a
    row's largest entries come in the same order whatever k is).
    """
    xp = array_module(values)
    batch, vocab = values.shape
    k = min(k, vocab)
    columns = candidate_columns(values, k)
    if columns is None:
        order = xp.argsort(-values, axis=-1, kind="stable")[:, :k]  # [B, k] ties by id
        return order, xp.take_along_axis(values, order, axis=-1)
    candidates = xp.take_along_axis(values, columns, axis=-1)  # [B, M]
    num = candidates.shape[-1]
    best = xp.argpartition(candidates, num - k, axis=-1)[:, num - k:]  # [B, k] positions, unordered
    ids = xp.take_along_axis(columns, best, axis=-1)  # [B, k]
    by_id = xp.argsort(ids, axis=-1)  # [B, k]
    ids = xp.take_along_axis(ids, by_id, axis=-1)
    best_values = xp.take_along_axis(xp.take_along_axis(candidates, best, axis=-1), by_id, axis=-1)  # [B, k]
    order = xp.argsort(-best_values, axis=-1, kind="stable")  # [B, k] largest first, ties by id
    return xp.take_along_axis(ids, order, axis=-1), xp.take_along_axis(best_values, order, axis=-1)


