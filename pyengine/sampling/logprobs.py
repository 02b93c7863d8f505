"""Logprobs as vLLM reports them: the chosen token with its rank, then the top-k.

In vLLM's default mode (`raw_logprobs`) every number is `log_softmax` of the model's logits as
they left the model (after the grammar mask, before penalties, bias and temperature).

    rank(t)  = the number of tokens whose logprob is >= logprob(t)   (ties push the rank down)
    entries  = [chosen token, top-1, ..., top-k]; ranks [rank(chosen), 1, ..., k]

`RowLogprobs` keeps that list as is, duplicates included (a chosen token that is also in the
top-k appears twice); `Engine._logprobs_dict` turns it into vLLM's `{token_id: Logprob}` dict.

The sampler computes the numbers (`logprob_arrays`: reference.py, or the tiled twin in fast/);
this module holds the row layout and the one copy they take to the host.

Shapes: B rows (or T prompt positions), V vocabulary, k top logprobs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: unpacking the one copied-back array

from pyengine.backend import array_module


@dataclasses.dataclass
class RowLogprobs:
    """One position's logprobs in vLLM's order: the chosen (or actual) token first, then the top-k."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


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
