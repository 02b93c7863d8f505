"""The draw follows the exactly computed truncated distribution (chi-square, 10^5 draws).

For fixed logits, each configuration's distribution is computed here independently, straight
from the definitions (temperature, then min_p, then top-k, then top-p),
in float64 with a full sort, and the sampler's draws are compared with it: one call on a batch
of 10^5 identical rows sharing the sampler's generator. Tokens outside the truncation must never
appear. Two checks show the comparison has teeth: draws at the wrong temperature, and the
other reading of top-p (drop the token that crosses p), are both rejected.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from pyengine.sampling import SamplingParams

from .helpers import row, sampler

DRAWS = 100_000
LOGITS = np.array([2.0, 1.5, 1.2, 1.0, 0.3, 0.0, -0.5, -1.0, -2.0, -4.0], dtype=np.float32)


def expected_distribution(logits=LOGITS, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                          top_p_includes_self=False) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64) / temperature
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
        survive[order] = (above + q[order] <= top_p) if top_p_includes_self else (above < top_p)
        survive[order[0]] = True
        keep &= survive
    q = np.where(keep, p, 0.0)
    return q / q.sum()


def draw_counts(params: SamplingParams, logits=LOGITS, draws=DRAWS, seed=1234, num_candidates=None) -> np.ndarray:
    s = sampler(logits.size, seed=seed)
    if num_candidates is not None:
        s.num_candidates = num_candidates
    tokens = s(np.broadcast_to(logits, (draws, logits.size)), [row(params)] * draws).token_ids
    return np.bincount(tokens, minlength=logits.size)


def assert_matches(counts: np.ndarray, expected: np.ndarray) -> None:
    assert counts[expected == 0].sum() == 0, "a truncated token was drawn"
    draws = counts.sum()
    common = expected * draws >= 5  # chi-square needs about 5 expected per cell: pool the rest
    rare = (expected > 0) & ~common
    observed, wanted = counts[common], expected[common] * draws
    if rare.any():
        observed, wanted = np.append(observed, counts[rare].sum()), np.append(wanted, expected[rare].sum() * draws)
    result = chisquare(observed, wanted)
    assert result.pvalue > 1e-4, f"chi-square p = {result.pvalue:.2e}"


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
    assert_matches(draw_counts(SamplingParams(max_tokens=1, **config)), expected_distribution(**config))


def test_chi_square_would_catch_a_wrong_temperature():
    """The test above can fail: draws at T=1 are rejected against the T=0.5 distribution."""
    counts = draw_counts(SamplingParams(temperature=1.0), seed=5)
    assert chisquare(counts, DRAWS * expected_distribution(temperature=0.5)).pvalue < 1e-10


def test_the_other_reading_of_top_p_would_be_caught():
    """Keeping only tokens whose own cumulative mass stays <= p drops the token that crosses p;
    the sampler keeps it (mass strictly above it < p), so it shows up where that reading has 0."""
    wrong = expected_distribution(top_p=0.8, top_p_includes_self=True)
    right = expected_distribution(top_p=0.8)
    assert (wrong > 0).sum() < (right > 0).sum()
    counts = draw_counts(SamplingParams(top_p=0.8))
    assert counts[wrong == 0].sum() > 1000


def test_top_k_ties_at_the_threshold_all_survive():
    x = np.array([[3.0, 1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    s = sampler(5, seed=0)
    tokens = set(s(np.repeat(x, 2000, axis=0), [row(SamplingParams(top_k=2))] * 2000).token_ids)
    assert tokens == {0, 1, 2, 3}  # k-th largest is 1.0: every token equal to it is kept


def test_greedy_takes_the_lowest_index_on_ties():
    x = np.array([[1.0, 5.0, 5.0, 2.0]], dtype=np.float32)
    assert sampler(4)(x, [row(SamplingParams(temperature=0.0))]).token_ids == [1]


# -- a large vocabulary: the candidate path and its fallbacks -------------------------------------

VOCAB = 1000
PEAKED = np.random.default_rng(3).normal(0, 1, VOCAB).astype(np.float32)
PEAKED[:30] += np.linspace(8, 4, 30, dtype=np.float32)  # a head of likely tokens, as in a model
FLAT = np.random.default_rng(4).normal(0, 0.3, VOCAB).astype(np.float32)

LARGE = [
    ("peaked", dict(top_p=0.9)),  # the cut lies among the candidates
    ("peaked", dict(top_k=7)),
    ("peaked", dict(min_p=0.05, temperature=0.8)),
    ("peaked", dict(top_k=30, top_p=0.8, temperature=0.7)),
    ("peaked", dict(temperature=1.1)),  # no filter: the two-level whole-row draw
    ("flat", dict(top_p=0.5)),  # a deep cut: the full-sort fallback
    ("flat", dict(min_p=0.5)),  # min_p keeps more than the candidates
]


@pytest.mark.parametrize("rows, config", LARGE, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()))
def test_large_vocabulary_draws_match_the_distribution(rows, config):
    """32 candidates (instead of 256) over 1,000 tokens, so every path runs; 20,000 draws."""
    logits = PEAKED if rows == "peaked" else FLAT
    counts = draw_counts(SamplingParams(**config), logits=logits, draws=20_000, num_candidates=32)
    assert_matches(counts, expected_distribution(logits, **config))
