"""N-gram repetition detection on both implementations (`impl`)."""

from __future__ import annotations

import pytest


def hits(impl, tokens, max_size, min_size=0, count=2):
    detector = impl.RepetitionDetector(max_size, min_size, count)
    return [detector.push(t) for t in tokens]


def test_examples_from_vllm(impl):
    # L range 2..5, min_count 3: "10 20" three times triggers at the sixth token
    assert hits(impl, [10, 20, 10, 20, 10, 20], 5, 2, 3) == [False] * 5 + [True]
    # the last block differs: no repetition
    assert not any(hits(impl, [1, 2, 3, 1, 2, 3, 1, 2, 4], 5, 2, 3))


def test_min_pattern_size_zero_means_one(impl):
    assert hits(impl, [7, 7], 3, 0, 2) == [False, True]
    assert hits(impl, [7, 7, 7, 7], 3, 2, 2) == [False, False, False, True]  # L=2: "7 7" twice


def test_pattern_longer_than_max_is_not_seen(impl):
    block = [1, 2, 3, 4]
    assert not any(hits(impl, block * 3, 3, 1, 2))
    assert hits(impl, block * 2, 4, 1, 2)[-1]


def test_the_tail_must_repeat_not_just_contain_a_repeat(impl):
    tokens = [5, 6, 5, 6, 9]
    assert hits(impl, tokens, 2, 1, 2) == [False, False, False, True, False]


def test_disabled(impl):
    assert not any(hits(impl, [1] * 50, 0, 0, 0))


@pytest.mark.parametrize("args, message", [
    ((2, 3, 2), "min_pattern_size <= max_pattern_size"),
    ((-1, 0, 2), "must be >=0"),
    ((4, 0, 1), "min_count must be >= 2"),
])
def test_invalid_parameters_use_vllms_messages(impl, args, message):
    with pytest.raises(ValueError, match=message):
        impl.RepetitionDetector(*args)


def test_long_output_stays_correct(impl):
    tokens = list(range(3000)) + [1, 2, 3] * 3
    result = hits(impl, tokens, 64, 0, 3)
    assert result[-1] and not any(result[:-1])
