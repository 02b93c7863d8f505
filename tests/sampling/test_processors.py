"""The logits processors against hand-computed values, negative logits included."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling import SamplingParams
from pyengine.sampling.processors import (
    apply_allowed_token_ids,
    apply_bad_words,
    apply_logit_bias,
    apply_min_tokens,
    apply_penalties,
    banned_bad_word_tokens,
    seen_token_counts,
)

from .helpers import logits, row, sampler

NEG_INF = -np.inf


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    # tokens: 0 in prompt (positive), 1 in output (negative), 2 unseen, 3 in prompt with 0 logit
    x = logits([2.0, -1.0, 3.0, 0.0])
    r = row(SamplingParams(repetition_penalty=2.0), prompt=[0, 3], output=[1])
    np.testing.assert_allclose(apply_penalties(x, [r]), [[1.0, -2.0, 3.0, 0.0]])


def test_repetition_penalty_below_one_rewards_repeats():
    x = logits([2.0, -1.0, 3.0])
    r = row(SamplingParams(repetition_penalty=0.5), prompt=[0], output=[1, 1])
    np.testing.assert_allclose(apply_penalties(x, [r]), [[4.0, -0.5, 3.0]])


def test_frequency_and_presence_penalties_count_output_only():
    x = logits([1.0, 1.0, 1.0, -1.0])
    r = row(SamplingParams(frequency_penalty=0.5, presence_penalty=0.25), prompt=[2, 2], output=[0, 0, 0, 3])
    # token 0: 1 - 0.5*3 - 0.25 = -0.75; token 3: -1 - 0.5 - 0.25 = -1.75; token 2 (prompt only): 1
    np.testing.assert_allclose(apply_penalties(x, [r]), [[-0.75, 1.0, 1.0, -1.75]])


def test_negative_penalties_encourage_repeats():
    x = logits([-2.0, 0.5])
    r = row(SamplingParams(frequency_penalty=-1.0, presence_penalty=-0.5), prompt=[], output=[0, 0])
    np.testing.assert_allclose(apply_penalties(x, [r]), [[-2.0 + 2.0 + 0.5, 0.5]])


def test_penalties_apply_in_vllms_order_repetition_first():
    x = logits([4.0, -4.0])
    params = SamplingParams(repetition_penalty=2.0, frequency_penalty=1.0, presence_penalty=1.0)
    r = row(params, prompt=[], output=[0, 1])
    # token 0: 4/2 - 1 - 1 = 0; token 1: -4*2 - 1 - 1 = -10
    np.testing.assert_allclose(apply_penalties(x, [r]), [[0.0, -10.0]])


def test_rows_without_penalties_are_untouched_in_a_mixed_batch():
    x = logits([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    rows = [row(SamplingParams(presence_penalty=1.0), output=[2]), row(SamplingParams(), output=[2])]
    np.testing.assert_allclose(apply_penalties(x, rows), [[1.0, 2.0, 2.0], [1.0, 2.0, 3.0]])


def test_seen_token_counts():
    ids, counts = seen_token_counts([5, 1, 5, 9], [1, 3, 1])
    assert dict(zip(ids.tolist(), counts.tolist())) == {1: 2, 3: 1, 5: 0, 9: 0}


def test_logit_bias_adds_to_raw_logits():
    x = logits([0.5, -0.5, 1.0])
    out = apply_logit_bias(x, [row(SamplingParams(logit_bias={0: -100, 2: 5.5}))])
    np.testing.assert_allclose(out, [[-99.5, -0.5, 6.5]])


def test_allowed_token_ids_mask_everything_else():
    x = logits([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    out = apply_allowed_token_ids(x, [row(SamplingParams(allowed_token_ids=[1, 3])), row(SamplingParams())])
    np.testing.assert_array_equal(out, [[NEG_INF, 2.0, NEG_INF, 4.0], [1.0, 2.0, 3.0, 4.0]])


def test_bad_words_ban_the_completing_token_only_after_the_prefix():
    params = SamplingParams()
    words = [[5], [1, 2, 3]]  # a one-token word and a three-token word
    x = logits(*[[0.0] * 6] * 3)
    rows = [row(params, output=[], bad_words=words), row(params, output=[4, 1, 2], bad_words=words),
            row(params, output=[1, 2, 0], bad_words=words)]
    out = apply_bad_words(x, rows)
    assert out[0, 5] == NEG_INF and out[0, 3] == 0.0  # prefix [1, 2] not generated yet
    assert out[1, 5] == NEG_INF and out[1, 3] == NEG_INF  # output ends with [1, 2]
    assert out[2, 3] == 0.0  # the prefix is not at the end


def test_bad_word_prefixes_look_at_generated_tokens_only():
    assert banned_bad_word_tokens([], [[1, 2]]) == []  # the prompt may end with 1: it does not count
    assert banned_bad_word_tokens([7, 1], [[1, 2], [7, 1, 4], [9]]) == [2, 4, 9]


def test_min_tokens_masks_stop_tokens_until_reached():
    params = SamplingParams(min_tokens=2)
    x = logits([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    rows = [row(params, output=[0], stop_ids={2, 3}), row(params, output=[0, 1], stop_ids={2, 3})]
    out = apply_min_tokens(x, rows)
    np.testing.assert_array_equal(out[0], [1.0, 2.0, NEG_INF, NEG_INF])
    np.testing.assert_array_equal(out[1], [1.0, 2.0, 3.0, 4.0])  # reached: nothing masked


@pytest.mark.parametrize("processor, params, kwargs", [
    (apply_allowed_token_ids, SamplingParams(allowed_token_ids=[0, 2]), {}),
    (apply_logit_bias, SamplingParams(logit_bias={1: 3.0}), {}),
    (apply_penalties, SamplingParams(repetition_penalty=1.5, frequency_penalty=0.5), dict(prompt=[0], output=[1, 1])),
    (apply_min_tokens, SamplingParams(min_tokens=3), dict(stop_ids={2})),
])
def test_processors_are_pure_and_write_into_out_when_asked(processor, params, kwargs):
    x = logits([1.0, -2.0, 0.5, 3.0])
    before = x.copy()
    r = [row(params, **kwargs)]
    pure = processor(x, r)
    np.testing.assert_array_equal(x, before)  # the input is never written
    assert pure is not x
    in_place = x.copy()
    assert processor(in_place, r, out=in_place) is in_place  # out may be the input itself
    np.testing.assert_array_equal(in_place, pure)
    buffer = np.empty_like(x)
    np.testing.assert_array_equal(processor(x, r, out=buffer), pure)


def test_unused_processors_return_their_input():
    x = logits([1.0, 2.0])
    r = [row(SamplingParams())]
    for processor in (apply_allowed_token_ids, apply_bad_words, apply_min_tokens, apply_logit_bias, apply_penalties):
        assert processor(x, r) is x


def test_pipeline_order_bias_before_repetition_and_bans_stay_banned():
    """allowed -> bad words -> min_tokens -> bias -> penalties (vLLM's order: bias before repetition)."""
    params = SamplingParams(repetition_penalty=2.0, logit_bias={0: 3.0, 2: 50.0, 3: 1.0}, min_tokens=5,
                            allowed_token_ids=[0, 1, 2, 3])
    x = logits([1.0, 5.0, 0.0, -3.0, 9.0])
    out = sampler(5).process(x, [row(params, prompt=[0, 3], output=[], stop_ids={2}, bad_words=[[1]])])
    # 0: (1 + 3) / 2 = 2, bias then repetition;  1: bad word;  2: stop token under min_tokens,
    # bias cannot lift -inf;  3: (-3 + 1) * 2 = -4;  4: not allowed
    np.testing.assert_array_equal(out, [[2.0, NEG_INF, NEG_INF, -4.0, NEG_INF]])
    np.testing.assert_array_equal(x, [[1.0, 5.0, 0.0, -3.0, 9.0]])  # the caller's logits untouched
