"""Temperature, min_p, top-k and top-p: hand-worked cases, vLLM's order, candidates vs full sorts."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling.fast import truncation
from pyengine.sampling.fast.truncation import truncate, truncation_threshold
from pyengine.sampling.truncation import apply_min_p, apply_temperature, apply_top_k, apply_top_p

NEG_INF = -np.inf


def column(*values, dtype=np.float32):
    return np.array(values, dtype=dtype).reshape(-1, 1)


def kept(x, **kwargs):
    """The tokens truncation keeps, for logits already divided by T."""
    params = dict(min_p=None, top_k=None, top_p=None)
    params.update({k: column(v, dtype=np.int64 if k == "top_k" else np.float32) for k, v in kwargs.items()})
    threshold = truncation_threshold(np.asarray([x], dtype=np.float32), **params)
    return np.flatnonzero(np.asarray(x) >= threshold[0, 0]).tolist()


PROBS = np.log(np.array([0.5, 0.3, 0.15, 0.05]))  # logits whose softmax is exactly these


def test_top_p_keeps_tokens_whose_mass_above_is_below_p():
    """Mass strictly above each token: 0, 0.5, 0.8, 0.95."""
    assert kept(PROBS, top_p=0.5) == [0]  # token 1 has 0.5 above it: not < 0.5
    assert kept(PROBS, top_p=0.51) == [0, 1]
    assert kept(PROBS, top_p=0.799) == [0, 1]
    assert kept(PROBS, top_p=0.801) == [0, 1, 2]
    assert kept(PROBS, top_p=0.96) == [0, 1, 2, 3]
    assert kept(PROBS, top_p=1e-6) == [0]  # the most likely token always stays


def test_min_p_compares_with_the_most_likely_token():
    assert kept(PROBS, min_p=0.3) == [0, 1, 2]  # 0.15 >= 0.3 * 0.5
    assert kept(PROBS, min_p=0.31) == [0, 1]
    assert kept(PROBS, min_p=1.0) == [0]


def test_top_k_keeps_every_token_tied_with_the_kth():
    x = [3.0, 1.0, 1.0, 1.0, 0.0]
    assert kept(x, top_k=1) == [0]
    assert kept(x, top_k=2) == [0, 1, 2, 3]


def test_filters_chain_in_vllms_order():
    """min_p, then top-k, then top-p on the renormalised survivors."""
    # top_k=3 keeps 0.5, 0.3, 0.15 (sum 0.95): renormalised mass above: 0, 0.526, 0.842
    assert kept(PROBS, top_k=3, top_p=0.8) == [0, 1]
    assert kept(PROBS, top_k=3, top_p=0.85) == [0, 1, 2]
    assert kept(PROBS, top_p=0.85) == [0, 1, 2]  # without top-k: 0.8 above token 2
    # min_p=0.35 drops 0.15 and 0.05; then top_p 0.6 over (0.625, 0.375): above = 0, 0.625
    assert kept(PROBS, min_p=0.35, top_p=0.6) == [0]
    assert kept(PROBS, min_p=0.35, top_p=0.63) == [0, 1]


def test_temperature_comes_before_min_p():
    x = np.log(np.array([[0.6, 0.3, 0.1]], dtype=np.float32))
    cold = apply_temperature(x, column(0.5))  # probabilities ~ p^2: 0.78, 0.20, 0.02
    assert np.isinf(apply_min_p(cold, column(0.25))[0, 2]) and np.isfinite(apply_min_p(cold, column(0.25))[0, 1])
    hot = apply_temperature(x, column(2.0))  # ~ sqrt(p): 0.47, 0.33, 0.19
    assert np.isfinite(apply_min_p(hot, column(0.25))).all()


def test_apply_functions_mask_with_minus_inf():
    x = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 5.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(apply_top_k(x, column(2, 0, dtype=np.int64)),
                                  [[2.0, 1.0, NEG_INF, NEG_INF], [0.0, 0.0, 5.0, 1.0]])
    out = apply_top_p(x, column(0.5, 1.0))
    np.testing.assert_array_equal(out, [[2.0, NEG_INF, NEG_INF, NEG_INF], [0.0, 0.0, 5.0, 1.0]])


def test_rows_with_different_parameters_share_one_call():
    x = np.tile(PROBS.astype(np.float32), (3, 1))
    threshold = truncation_threshold(x, None, column(0, 2, 0, dtype=np.int64), column(1.0, 1.0, 0.6))
    assert [np.flatnonzero(x[b] >= threshold[b, 0]).tolist() for b in range(3)] == [[0, 1, 2, 3], [0, 1], [0, 1]]


CASES = [
    dict(top_p=0.9), dict(top_p=0.999), dict(top_k=40), dict(top_k=600), dict(min_p=0.05), dict(min_p=1e-4),
    dict(top_k=300, top_p=0.95), dict(min_p=0.01, top_p=0.9), dict(min_p=0.02, top_k=50, top_p=0.7),
]


@pytest.mark.parametrize("rows", ["lm_like", "flat"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_candidates_give_the_same_threshold_as_a_full_sort(case, rows):
    """Flat rows push top-p and min_p cuts past the 256 candidates: the fallbacks must be exact."""
    from .helpers import lm_like

    vocab = 20_000 + 3
    x = lm_like(4, vocab, seed=5) if rows == "lm_like" else np.random.default_rng(5).normal(0, 1, (4, vocab))
    x = x.astype(np.float32)
    temperature = column(0.7, 1.0, 1.3, 0.9)
    columns = dict(min_p=None, top_k=None, top_p=None)
    for name, value in case.items():
        columns[name] = np.full((4, 1), value, dtype=np.int64 if name == "top_k" else np.float32)
    fast = truncate(x, temperature, **columns, num_candidates=max(truncation.NUM_CANDIDATES, case.get("top_k", 0)))
    exact = truncate(x, temperature, **columns, num_candidates=None)
    np.testing.assert_array_equal(fast.threshold, exact.threshold)
