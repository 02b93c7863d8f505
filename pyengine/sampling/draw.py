"""The draw: one token per row from its truncated distribution, with one random number per row.

Inverse CDF: with w the row's weights (0 for filtered tokens) and u ~ U[0, 1), the token is the first
whose cumulative weight exceeds u * sum(w). vLLM's exponential race draws V numbers per row instead;
one is all a seeded request needs, drawn on the host from its own generator, so its tokens never
depend on the batch around it. Shapes: B rows, N positions walked per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host: the random generators

from pyengine.backend import array_module

BELOW_ONE = 1.0 - 2.0**-53  # the largest float64 below 1


def make_generator(seed: int | None) -> Any:
    """A request's own random generator (PCG64 seeded with `seed`, a negative one read as its unsigned
    64-bit pattern), or None for unseeded."""
    return None if seed is None else np.random.Generator(np.random.PCG64(seed % 2**64))


def inverse_cdf_sample(weights: Any, uniforms: Any) -> Any:
    """[B, N] weights >= 0 (some > 0 per row), [B, 1] uniforms in [0, 1) -> [B] positions in 0..N-1."""
    xp = array_module(weights)
    cdf = xp.cumsum(weights.astype(xp.float64), axis=-1)  # [B, N]
    target = xp.clip(uniforms, 0.0, BELOW_ONE) * cdf[:, -1:]  # [B, 1], below the row's total
    return (cdf <= target).sum(axis=-1)  # [B] the first position whose cdf exceeds the target
