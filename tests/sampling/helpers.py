"""Small builders for sampler tests: rows, samplers on the numpy and fake-device backends."""

from __future__ import annotations

import numpy as np

from pyengine.backend import get_backend
from pyengine.sampling import SamplingParams, SamplingRow, make_generator
from pyengine.sampling.fast import Sampler

BACKEND = get_backend("cpu")


def row(params: SamplingParams, prompt=(1, 2), output=(), seed=None, stop_ids=frozenset(), bad_words=()):
    return SamplingRow(params, list(prompt), list(output), make_generator(seed), frozenset(stop_ids), bad_words)


def sampler(vocab: int, seed: int = 0, device: str = "cpu") -> Sampler:
    return Sampler(get_backend(device), vocab, seed=seed)


def logits(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def log_softmax(x) -> np.ndarray:
    """Reference log_softmax in float64."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def lm_like(batch: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Rows shaped like a language model's: a Zipf head (p ~ rank^-1.5) at random ids over a low tail."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-4.0, 1.0, size=(batch, vocab)).astype(np.float32)
    head = (10.0 - 1.5 * np.log(np.arange(1, min(vocab, 500) + 1))).astype(np.float32)
    for r in x:
        r[rng.choice(vocab, head.size, replace=False)] = head
    return x
