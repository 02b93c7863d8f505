"""Small builders for sampler tests: rows and the numpy backend."""

from __future__ import annotations

import numpy as np

from pyengine.backend import get_backend
from pyengine.sampling import Sampler, SamplingParams, SamplingRow, make_generator

BACKEND = get_backend("cpu")


def row(params: SamplingParams, prompt=(1, 2), output=(), seed=None, stop_ids=frozenset()):
    return SamplingRow(params, list(prompt), list(output), make_generator(seed), frozenset(stop_ids))


def sampler(vocab: int, seed: int = 0) -> Sampler:
    return Sampler(BACKEND, vocab, seed=seed)


def logits(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float32)
