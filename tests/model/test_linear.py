"""`linear`: the equation and the fast path's two product orders give the projection a checkpoint means."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.model import fast_path, layers
from pyengine.model.fast_path import SMALL_BATCH, linear
from pyengine.model.layers import rms_norm


@pytest.mark.parametrize("rows", [1, 7, 32, SMALL_BATCH, SMALL_BATCH + 1, 300])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("projection", [layers.linear, fast_path.linear], ids=["reference", "fast"])
def test_linear_is_x_times_the_transposed_checkpoint_weight(rows, with_bias, projection):
    rng = np.random.default_rng(rows)
    weight = rng.standard_normal((48, 40)).astype(np.float32)  # [out, in], as nn.Linear stores it
    bias = rng.standard_normal(48).astype(np.float32) if with_bias else None
    x = rng.standard_normal((rows, 40)).astype(np.float32)
    expected = x.astype(np.float64) @ weight.T.astype(np.float64) + (0 if bias is None else bias)
    y = projection(x, weight, bias)
    assert y.shape == (rows, 48)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_a_row_gets_the_same_projection_in_a_short_batch_and_a_long_one():
    """A short batch runs as weight @ x.T, a long one as x @ weight.T: same values either way,
    and the short form's column-major result works in what follows (reshape, norms, adds)."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((96, 64)).astype(np.float32)
    x = rng.standard_normal((SMALL_BATCH + 20, 64)).astype(np.float32)
    short, long = linear(x[:8], weight), linear(x, weight)[:8]
    np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-5)
    heads = short.reshape(8, 6, 16)  # a copy where the layout needs one, as for q/k/v
    np.testing.assert_allclose(heads, long.reshape(8, 6, 16), rtol=1e-5, atol=1e-5)
    norm_weight = np.ones(96, dtype=np.float32)
    np.testing.assert_allclose(rms_norm(short + 1.0, norm_weight, 1e-6), rms_norm(long + 1.0, norm_weight, 1e-6),
                               rtol=1e-5, atol=1e-5)
