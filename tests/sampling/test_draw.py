"""The draw: inverse CDF that never picks a zero weight, and the two-level whole-row search."""

from __future__ import annotations

import numpy as np
from scipy.stats import chisquare

from pyengine.sampling import make_generator
from pyengine.sampling.reference import inverse_cdf_sample
from pyengine.sampling.fast.draw import BLOCK, sample_whole_rows


def test_inverse_cdf_boundaries_and_zero_weights():
    weights = np.array([[0.0, 1.0, 0.0, 3.0, 0.0]] * 5)
    uniforms = np.array([[0.0], [0.2499], [0.25], [0.9999], [1.0 - 2**-53]])
    # cdf = 0, 1, 1, 4, 4 over a total of 4: u * 4 < 1 -> token 1, else token 3; never 0, 2 or 4
    assert inverse_cdf_sample(weights, uniforms).tolist() == [1, 1, 3, 3, 3]


def test_generators_are_reproducible_and_accept_negative_seeds():
    assert make_generator(None) is None
    assert make_generator(7).random(3).tolist() == make_generator(7).random(3).tolist()
    assert make_generator(7).random() != make_generator(8).random()
    assert 0 <= make_generator(-1).random() < 1  # read as 2**64 - 1


def _exact(x, temperature, threshold):
    scaled = x.astype(np.float64) / temperature
    p = np.where(scaled >= threshold, np.exp(scaled - scaled.max()), 0.0)
    return p / p.sum()


def test_two_level_draw_matches_the_distribution_over_many_blocks():
    """2,148 tokens: two whole blocks of 1,024 and a short one; 20,000 draws in one call."""
    vocab, draws = 2 * BLOCK + 100, 20_000
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, vocab).astype(np.float32)
    x[[5, 1500, vocab - 1]] += 6.0  # likely tokens in the first, the middle and the short last block
    logits = np.broadcast_to(x, (draws, vocab))
    ones = np.ones((draws, 1), np.float32)
    threshold = np.full((draws, 1), 0.5, np.float32)  # keep logits / T >= 0.5 only
    row_max = np.full((draws, 1), x.max() / 1.0, np.float32)
    tokens = sample_whole_rows(logits, ones, row_max, threshold, rng.random((draws, 1)))
    expected = _exact(x, 1.0, 0.5)
    counts = np.bincount(tokens, minlength=vocab)
    assert counts[expected == 0].sum() == 0
    common = expected * draws >= 5  # tokens expected often enough for chi-square; the other kept ones pooled
    rare = (expected > 0) & ~common
    observed = np.append(counts[common], counts[rare].sum())
    wanted = np.append(expected[common], expected[rare].sum()) * draws
    assert common.sum() > 100 and wanted[-1] >= 5
    assert chisquare(observed, wanted).pvalue > 1e-3


def test_the_draw_with_a_row_subset_reads_only_those_rows():
    x = np.array([[0.0, 50.0, 0.0], [50.0, 0.0, 0.0], [0.0, 0.0, 50.0]], np.float32)
    rows = np.array([2, 0])
    ones = np.ones((3, 1), np.float32)
    tokens = sample_whole_rows(x, ones, x.max(-1, keepdims=True), np.full((3, 1), -np.inf, np.float32),
                               np.full((3, 1), 0.5), rows)
    assert tokens.tolist() == [2, 1]
