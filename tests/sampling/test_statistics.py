"""The draw follows the exactly computed truncated distribution (chi-square, 10^5 draws).

For fixed logits, each configuration's distribution is computed here independently, straight
from the definitions of api-semantics.md §3 (temperature, then min_p, then top-k, then top-p),
and 10^5 draws are compared with it. Tokens outside the truncation must never appear.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from pyengine.sampling import SamplingParams

from .helpers import row, sampler

DRAWS = 100_000
LOGITS = np.array([2.0, 1.5, 1.2, 1.0, 0.3, 0.0, -0.5, -1.0, -2.0, -4.0], dtype=np.float32)


def expected_distribution(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0) -> np.ndarray:
    x = LOGITS.astype(np.float64) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    keep = np.ones_like(p, dtype=bool)
    if min_p > 0:
        keep &= p >= min_p * p.max()
    if top_k:
        kth = np.sort(x[keep])[::-1][min(top_k, keep.sum()) - 1]
        keep &= x >= kth
    if top_p < 1:
        q = np.where(keep, p, 0.0)
        q /= q.sum()
        order = np.argsort(-q, kind="stable")
        above = np.cumsum(q[order]) - q[order]  # mass ranked strictly above each token
        survive = np.zeros_like(keep)
        survive[order] = above < top_p
        keep &= survive
    q = np.where(keep, p, 0.0)
    return q / q.sum()


CONFIGS = [
    dict(temperature=1.0),
    dict(temperature=0.5),
    dict(temperature=2.0),
    dict(top_k=3),
    dict(top_p=0.8),
    dict(min_p=0.2),
    dict(temperature=0.7, top_k=5, top_p=0.9),
    dict(temperature=1.3, min_p=0.05, top_p=0.95),
    dict(temperature=0.8, min_p=0.1, top_k=4, top_p=0.7),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_draws_match_the_truncated_distribution(config):
    params = SamplingParams(max_tokens=1, **config)
    rows = [row(params)] * DRAWS  # one logits row per draw: a single vectorised call
    batch = np.broadcast_to(LOGITS, (DRAWS, LOGITS.size))
    s = sampler(LOGITS.size, seed=1234)
    tokens = np.asarray(s(batch, rows).token_ids)
    expected = expected_distribution(**config)
    counts = np.bincount(tokens, minlength=LOGITS.size)
    assert counts[expected == 0].sum() == 0, "a truncated token was drawn"
    support = expected > 0
    result = chisquare(counts[support], DRAWS * expected[support])
    assert result.pvalue > 1e-4, f"chi-square p = {result.pvalue:.2e}, counts {counts}, expected {expected}"


def test_chi_square_would_catch_a_wrong_temperature():
    """The test above can fail: draws at T=1 are rejected against the T=0.5 distribution."""
    params = SamplingParams(max_tokens=1, temperature=1.0)
    tokens = np.asarray(sampler(LOGITS.size, seed=5)(np.broadcast_to(LOGITS, (DRAWS, LOGITS.size)),
                                                     [row(params)] * DRAWS).token_ids)
    counts = np.bincount(tokens, minlength=LOGITS.size)
    assert chisquare(counts, DRAWS * expected_distribution(temperature=0.5)).pvalue < 1e-10


def test_top_k_ties_at_the_threshold_all_survive():
    x = np.array([[3.0, 1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    params = SamplingParams(top_k=2, max_tokens=1)
    s = sampler(5, seed=0)
    tokens = set(s(np.repeat(x, 2000, axis=0), [row(params)] * 2000).token_ids)
    assert tokens == {0, 1, 2, 3}  # k-th largest is 1.0: every token equal to it is kept


def test_greedy_takes_the_lowest_index_on_ties():
    x = np.array([[1.0, 5.0, 5.0, 2.0]], dtype=np.float32)
    assert sampler(4)(x, [row(SamplingParams(temperature=0.0))]).token_ids == [1]


def test_block_head_is_the_exact_sorted_top():
    """Large vocabularies find the head without a full sort; it must equal the full sort's head."""
    from pyengine.sampling.truncation import HEAD, head

    rng = np.random.default_rng(0)
    w = np.exp(rng.normal(0, 2, size=(4, 40_000))).astype(np.float32)  # 1,250 blocks > HEAD
    head_w, head_ids = head(w)
    order = np.argsort(-w, axis=-1, kind="stable")[:, :HEAD]
    np.testing.assert_array_equal(head_ids, order)
    np.testing.assert_array_equal(head_w, np.take_along_axis(w, order, axis=-1))


@pytest.mark.parametrize("config", [dict(top_p=0.9), dict(top_k=7), dict(top_k=30, top_p=0.8, temperature=0.7)])
def test_large_vocabulary_draws_match_the_distribution(config, monkeypatch):
    """The block-head path (HEAD shrunk to 64 so 8,192 tokens take it): a peaked row, 20,000 draws."""
    from pyengine.sampling import truncation

    monkeypatch.setattr(truncation, "HEAD", 64)
    vocab, chunk, chunks = 8192, 1000, 20
    rng = np.random.default_rng(3)
    row_logits = rng.normal(0, 1, vocab).astype(np.float32)
    row_logits[:40] += np.linspace(6, 3, 40).astype(np.float32)  # a head of likely tokens
    global LOGITS
    saved, LOGITS = LOGITS, row_logits
    try:
        expected = expected_distribution(**config)
    finally:
        LOGITS = saved
    params = SamplingParams(max_tokens=1, **config)
    s = sampler(vocab, seed=11)
    counts = np.zeros(vocab, dtype=np.int64)
    for _ in range(chunks):
        tokens = s(np.broadcast_to(row_logits, (chunk, vocab)), [row(params)] * chunk).token_ids
        counts += np.bincount(tokens, minlength=vocab)
    assert counts[expected == 0].sum() == 0
    support = expected > 0
    assert chisquare(counts[support], chunk * chunks * expected[support]).pvalue > 1e-4


def test_deep_top_p_cut_falls_back_to_a_full_sort(monkeypatch):
    """A flat row with top_p = 0.95 keeps far more than the sorted head: the fallback decides."""
    from pyengine.sampling import truncation
    from pyengine.sampling.truncation import draw_sorted_fallback, draw_truncated, weights

    monkeypatch.setattr(truncation, "HEAD", 64)
    rng = np.random.default_rng(0)
    w = weights(rng.normal(0, 0.1, size=(3, 8192)).astype(np.float32), np.ones((3, 1), np.float32), None)
    top_k, top_p = np.zeros((3, 1), np.int64), np.full((3, 1), 0.95, np.float32)
    uniforms = rng.random((3, 1))
    _, too_shallow = draw_truncated(w, top_k, top_p, uniforms)
    assert too_shallow.all()
    tokens = draw_sorted_fallback(w, top_k, top_p, uniforms)
    for r in range(3):  # each drawn token is inside the exact nucleus
        order = np.argsort(-w[r], kind="stable")
        p = w[r][order] / w[r].sum()
        nucleus = set(order[(np.cumsum(p) - p) < 0.95].tolist())
        assert int(tokens[r]) in nucleus
