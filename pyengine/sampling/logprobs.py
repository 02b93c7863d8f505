"""Logprobs as vLLM reports them: the chosen token with its rank, then the top-k.

Every number is `log_softmax` of the logits as they left the model (after the grammar mask, before
penalties, bias and temperature: vLLM's default `raw_logprobs`). rank(t) counts the tokens whose
logprob is >= logprob(t); a row's entries are [chosen, top-1, ..., top-k] with ranks
[rank(chosen), 1, ..., k], duplicates kept (`Engine._logprobs_dict` makes vLLM's dict of them).
The sampler computes the numbers; this module holds the row layout and their one copy to the host.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: unpacking the one copied-back array

from pyengine.backend import Backend, array_module


@dataclasses.dataclass
class RowLogprobs:
    """One position's logprobs in vLLM's order: the chosen (or actual) token first, then the top-k."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


def copy_to_host(backend: Backend, arrays: Sequence[Any]) -> list[Any]:
    """Device arrays of any shapes -> host arrays, in one copy (packed as float64: token ids are exact)."""
    xp = array_module(arrays[0])
    flat = backend.to_host(xp.concatenate([a.reshape(-1).astype(xp.float64) for a in arrays]))
    ends = np.cumsum([int(np.prod(a.shape)) for a in arrays])
    return [part.reshape(a.shape) for part, a in zip(np.split(flat, ends[:-1]), arrays)]


def row_logprobs(chosen_id: int, chosen_logprob: float, rank: int, top_ids: Any, top_values: Any) -> RowLogprobs:
    """Host: one position's entries in vLLM's order: [chosen, top-1, ..., top-k], ranks [rank, 1..k]."""
    top_ids, top_values = [int(t) for t in top_ids], [float(v) for v in top_values]
    return RowLogprobs([int(chosen_id)] + top_ids, [float(chosen_logprob)] + top_values,
                       [int(rank)] + list(range(1, len(top_ids) + 1)))
