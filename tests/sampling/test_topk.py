"""The k largest entries without a sort: exact against numpy's full sort, ties and odd vocabularies."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling.fast.topk import GROUP_SIZE, candidate_columns, largest


@pytest.mark.parametrize("vocab", [50_000, 50_257, 16 * 300 + 7])
@pytest.mark.parametrize("k", [1, 20, 256])
def test_largest_equals_a_full_sort(vocab, k):
    x = np.random.default_rng(vocab + k).normal(0, 3, size=(6, vocab)).astype(np.float32)
    ids, values = largest(x, k)
    expected = -np.sort(-x, axis=-1)[:, :k]
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(np.take_along_axis(x, ids, axis=-1), values)  # ids carry those values


def test_candidates_survive_adversarial_layouts():
    """All the largest values in one group, or in the tail past the last whole slice."""
    vocab = 16 * 100 + 5
    num_groups = vocab // GROUP_SIZE
    x = np.zeros((2, vocab), dtype=np.float32)
    x[0, 3::num_groups][:GROUP_SIZE] = np.arange(1, GROUP_SIZE + 1)  # group 3 holds the 16 largest
    x[1, -5:] = [5, 4, 3, 2, 1]  # the tail holds the 5 largest
    ids, values = largest(x, 16)
    np.testing.assert_array_equal(values[0], np.arange(16, 0, -1))
    np.testing.assert_array_equal(values[1, :5], [5, 4, 3, 2, 1])
    assert sorted(ids[1, :5].tolist()) == list(range(vocab - 5, vocab))


def test_ties_come_in_token_id_order():
    x = np.array([[1.0, 3.0, 2.0, 3.0, 3.0, 0.0]], dtype=np.float32)
    ids, values = largest(x, 4)
    assert ids.tolist() == [[1, 3, 4, 2]] and values.tolist() == [[3.0, 3.0, 3.0, 2.0]]


def test_tie_order_on_the_candidate_path_is_by_id_too():
    vocab = 40_000
    x = np.zeros((1, vocab), dtype=np.float32)
    chosen = np.random.default_rng(0).choice(vocab, 30, replace=False)
    x[0, chosen] = 7.0  # 30 tokens tie for the lead
    ids, values = largest(x, 30)
    assert ids[0].tolist() == sorted(chosen.tolist()) and (values == 7.0).all()


def test_small_vocabularies_sort_the_whole_row():
    assert candidate_columns(np.zeros((1, 100), np.float32), 10) is None
    ids, values = largest(np.array([[0.5, 2.0, -1.0]], np.float32), 3)
    assert ids.tolist() == [[1, 0, 2]]
