"""SamplingParams: vLLM's defaults, normalisations, and ValueErrors that name field and range."""

from __future__ import annotations

import pytest

from pyengine.sampling import RepetitionDetectionParams, SamplingParams, tokenize_bad_words


def test_defaults_are_vllms():
    p = SamplingParams()
    assert (p.n, p.temperature, p.top_p, p.top_k, p.min_p) == (1, 1.0, 1.0, 0, 0.0)
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.0, 0.0, 1.0)
    assert p.max_tokens == 16 and p.min_tokens == 0 and p.stop == [] and p.stop_token_ids == []
    assert p.skip_special_tokens and p.spaces_between_special_tokens and not p.ignore_eos
    assert p.logprobs is None and p.prompt_logprobs is None and p.seed is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be at least 1"),
    (dict(temperature=-0.5), "temperature must be non-negative"),
    (dict(temperature=float("nan")), "temperature must be non-negative"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_k=-2), "top_k must be 0 \\(disable\\), -1 \\(disable\\) or at least 1"),
    (dict(min_p=1.5), r"min_p must be in \[0, 1\]"),
    (dict(presence_penalty=2.5), r"presence_penalty must be in \[-2, 2\]"),
    (dict(frequency_penalty=-3), r"frequency_penalty must be in \[-2, 2\]"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be greater than zero"),
    (dict(max_tokens=0), "max_tokens must be at least 1, got 0"),
    (dict(min_tokens=-1), "min_tokens must be greater than or equal to 0"),
    (dict(min_tokens=5, max_tokens=3), "min_tokens must be less than or equal to max_tokens=3"),
    (dict(stop=["ok", ""]), "stop strings must be non-empty"),
    (dict(logprobs=-2), "logprobs must be non-negative or -1"),
    (dict(allowed_token_ids=[]), "allowed_token_ids must not be empty"),
    (dict(bad_words=[""]), "bad_words must be non-empty"),
    (dict(temperature=0.0, n=2), "n must be 1 when using greedy sampling, got 2"),
    (dict(truncate_prompt_tokens=0), "empty prompt"),
    (dict(logit_bias={"x": 1.0}), "logit_bias keys must be token ids"),
])
def test_out_of_range_values_raise_with_the_field_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_normalisations():
    p = SamplingParams(stop="END", top_k=-1, seed=-1, stop_token_ids=[5, 5, 7], logit_bias={"3": 250, 4: -300})
    assert p.stop == ["END"] and p.top_k == 0 and p.seed is None and p.stop_token_ids == [5, 7]
    assert p.logit_bias == {3: 100.0, 4: -100.0}  # clamped to [-100, 100], keys as ints


def test_temperature_clamp_and_greedy():
    assert SamplingParams(temperature=0.0).greedy
    tiny = SamplingParams(temperature=1e-6)
    assert tiny.temperature == 0.01 and not tiny.greedy  # only exactly 0 is greedy (§3.1)
    g = SamplingParams(temperature=0.0, top_p=0.5, top_k=3, min_p=0.2)
    assert (g.top_p, g.top_k, g.min_p) == (1.0, 0, 0.0)  # greedy forces the filters off


def test_verify_against_the_vocabulary_and_logprobs_cap():
    SamplingParams(logit_bias={9: 1.0}, allowed_token_ids=[0, 9], stop_token_ids=[9]).verify(10)
    with pytest.raises(ValueError, match=r"\[10\] in logit_bias contain out-of-vocab"):
        SamplingParams(logit_bias={10: 1.0}).verify(10)
    with pytest.raises(ValueError, match="allowed_token_ids"):
        SamplingParams(allowed_token_ids=[3, 12]).verify(10)
    with pytest.raises(ValueError, match="Requested sample logprobs of 21, which is greater than max allowed: 20"):
        SamplingParams(logprobs=21).verify(1000)
    with pytest.raises(ValueError, match="Requested prompt logprobs of 1000"):
        SamplingParams(prompt_logprobs=-1).verify(1000)
    SamplingParams(logprobs=-1).verify(1000, max_logprobs=-1)


def test_repetition_detection_validation():
    with pytest.raises(ValueError, match="min_count must be >= 2"):
        RepetitionDetectionParams(max_pattern_size=4, min_count=1)
    with pytest.raises(ValueError, match="min_pattern_size"):
        RepetitionDetectionParams(max_pattern_size=2, min_pattern_size=3, min_count=2)
    p = SamplingParams(repetition_detection={"max_pattern_size": 4, "min_count": 3})
    assert p.repetition_detection.max_pattern_size == 4


def test_bad_words_tokenization_follows_vllm():
    vocab = {"bad": [7], " bad": [8], "two words": [3, 4], " two words": [5, 4], "x": [9], " x": [9, 1]}
    encode = vocab.__getitem__
    assert tokenize_bad_words(["bad"], encode) == [[7], [8]]
    assert tokenize_bad_words(["two words"], encode) == [[3, 4], [5, 4]]
    assert tokenize_bad_words(["x"], encode) == [[9]]  # spaced variant has another length: dropped
