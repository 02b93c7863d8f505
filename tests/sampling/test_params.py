"""SamplingParams: vLLM's defaults, normalisations, and ValueErrors that name field and range."""

from __future__ import annotations

import pytest

from pyengine.sampling import SamplingParams
from pyengine.sampling.nested_params import RepetitionDetectionParams
from pyengine.sampling.processors import tokenize_bad_words


def test_defaults_are_vllms():
    p = SamplingParams()
    assert (p.n, p.temperature, p.top_p, p.top_k, p.min_p) == (1, 1.0, 1.0, 0, 0.0)
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.0, 0.0, 1.0)
    assert p.max_tokens == 16 and p.min_tokens == 0 and p.stop == [] and p.stop_token_ids == []
    assert p.skip_special_tokens and p.spaces_between_special_tokens and not p.ignore_eos
    assert p.logprobs is None and p.prompt_logprobs is None and p.seed is None
    assert p.logit_bias is None and p.allowed_token_ids is None and p.bad_words == []
    assert not p.use_beam_search and p.length_penalty == 1.0 and p.repetition_detection is None
    assert p.truncate_prompt_tokens is None and not p.include_stop_str_in_output and not p.greedy


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be at least 1, got 0."),
    (dict(n=20_000), "n must be at most 16384, got 20000."),
    (dict(n=1.5), "n must be an int"),
    (dict(temperature=-0.5), "temperature must be non-negative, got -0.5."),
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(temperature=float("inf")), "temperature must be a finite number"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0."),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5."),
    (dict(top_k=-2), r"top_k must be 0 \(disable\), or at least 1, got -2."),
    (dict(top_k=2.5), "top_k must be an integer, got float"),
    (dict(min_p=1.5), r"min_p must be in \[0, 1\], got 1.5."),
    (dict(min_p=-0.1), r"min_p must be in \[0, 1\]"),
    (dict(presence_penalty=2.5), r"presence_penalty must be in \[-2, 2\], got 2.5."),
    (dict(frequency_penalty=-3), r"frequency_penalty must be in \[-2, 2\], got -3."),
    (dict(frequency_penalty=float("nan")), r"frequency_penalty must be in \[-2, 2\]"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be greater than zero, got 0.0."),
    (dict(repetition_penalty=float("inf")), "repetition_penalty must be a finite number"),
    (dict(max_tokens=0), "max_tokens must be at least 1, got 0."),
    (dict(min_tokens=-1), "min_tokens must be greater than or equal to 0, got -1."),
    (dict(min_tokens=5, max_tokens=3), "min_tokens must be less than or equal to max_tokens=3, got 5."),
    (dict(stop=["ok", ""]), "stop cannot contain an empty string."),
    (dict(stop=[3]), "stop must be a string or a list of strings"),
    (dict(stop=3), "stop must be a list, got int."),
    (dict(stop_token_ids=7), "stop_token_ids must be a list, got int."),
    (dict(stop_token_ids=[1, "2"]), "stop_token_ids must contain only integers"),
    (dict(logprobs=-2), "logprobs must be non-negative or -1, got -2."),
    (dict(prompt_logprobs=-5), "prompt_logprobs must be non-negative or -1, got -5."),
    (dict(allowed_token_ids=[]), "allowed_token_ids is not None and empty!"),
    (dict(bad_words=["fine", ""]), "bad_words cannot contain an empty string."),
    (dict(temperature=0.0, n=2), "n must be 1 when using greedy sampling, got 2."),
    (dict(truncate_prompt_tokens=0), "truncate_prompt_tokens must be an integer >= 1 or -1, got 0"),
    (dict(truncate_prompt_tokens=-3), "truncate_prompt_tokens must be an integer >= 1 or -1"),
    (dict(seed=2**64), r"seed must be an integer in \[-9223372036854775808, 9223372036854775807\]"),
    (dict(logit_bias={"x": 1.0, 3: 1.0}), "logit_bias contains key\\(s\\) that cannot be converted to integer "
                                          "token IDs: \\['x'\\]"),
    (dict(logit_bias={3: float("nan")}), "logit_bias values must be numbers"),
    (dict(length_penalty=float("inf")), "length_penalty must be a finite number"),
])
def test_out_of_range_values_raise_with_the_field_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_normalisations():
    p = SamplingParams(stop="END", top_k=-1, seed=-1, stop_token_ids=[5, 5, 7], logit_bias={"3": 250, 4: -300},
                       bad_words=["a", "a", "b"], logprobs=True)
    assert p.stop == ["END"] and p.top_k == 0 and p.seed is None and p.stop_token_ids == [5, 7]
    assert p.logit_bias == {3: 100.0, 4: -100.0}  # clamped to [-100, 100], keys as ints
    assert p.bad_words == ["a", "b"] and p.logprobs == 1


def test_temperature_clamp_and_greedy():
    assert SamplingParams(temperature=0.0).greedy
    tiny = SamplingParams(temperature=1e-6)
    assert tiny.temperature == 0.01 and not tiny.greedy  # only exactly 0 is greedy
    g = SamplingParams(temperature=0.0, top_p=0.5, top_k=3, min_p=0.2)
    assert (g.top_p, g.top_k, g.min_p) == (1.0, 0, 0.0)  # greedy forces the filters off
    assert SamplingParams(temperature=5.0).temperature == 5.0  # the seed-era build has no upper bound


def test_beam_search_takes_n_as_the_width_even_when_greedy():
    p = SamplingParams(n=4, temperature=0.0, use_beam_search=True, length_penalty=0.5)
    assert p.n == 4 and p.use_beam_search


def test_verify_against_the_vocabulary_and_logprobs_cap():
    SamplingParams(logit_bias={9: 1.0}, allowed_token_ids=[0, 9], stop_token_ids=[9]).verify(10)
    with pytest.raises(ValueError, match=r"token_id\(s\) \[10\] in logit_bias contain out-of-vocab token ids. "
                                         r"Vocabulary size: 10"):
        SamplingParams(logit_bias={10: 1.0}).verify(10)
    with pytest.raises(ValueError, match=r"\[12\] in allowed_token_ids"):
        SamplingParams(allowed_token_ids=[3, 12]).verify(10)
    with pytest.raises(ValueError, match=r"\[-3\] in stop_token_ids"):
        SamplingParams(stop_token_ids=[-3]).verify(10)
    with pytest.raises(ValueError, match="Requested sample logprobs of 21, which is greater than max allowed: 20"):
        SamplingParams(logprobs=21).verify(1000)
    with pytest.raises(ValueError, match="Requested prompt logprobs of 1000, which is greater than max allowed: 20"):
        SamplingParams(prompt_logprobs=-1).verify(1000)
    SamplingParams(logprobs=20, prompt_logprobs=0).verify(1000)
    SamplingParams(logprobs=-1).verify(1000, max_logprobs=-1)  # -1: the cap is the vocabulary
    with pytest.raises(ValueError, match="max allowed: 5"):
        SamplingParams(logprobs=6).verify(1000, max_logprobs=5)


def test_bad_word_token_ids_are_checked_against_the_model_vocabulary():
    """The engine tokenizes bad_words with the model's vocabulary size; ids past it are a ValueError."""
    encode = {"x": [3, 12], " x": [3, 12]}.__getitem__
    with pytest.raises(ValueError, match=r"specified as bad: \[12\].*0 <= token_id <= 9"):
        tokenize_bad_words(["x"], encode, vocab_size=10)


def test_repetition_detection_validation():
    with pytest.raises(ValueError, match="min_count must be >= 2"):
        RepetitionDetectionParams(max_pattern_size=4, min_count=1)
    with pytest.raises(ValueError, match="min_pattern_size <= max_pattern_size"):
        RepetitionDetectionParams(max_pattern_size=2, min_pattern_size=3, min_count=2)
    with pytest.raises(ValueError, match="must be >=0"):
        RepetitionDetectionParams(max_pattern_size=-1)
    RepetitionDetectionParams()  # all zero: disabled, valid
    p = SamplingParams(repetition_detection={"max_pattern_size": 4, "min_count": 3})
    assert p.repetition_detection == RepetitionDetectionParams(4, 0, 3)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['size'\]"):
        SamplingParams(repetition_detection={"size": 4})


def test_bad_words_tokenization_follows_vllm():
    vocab = {"bad": [7], " bad": [8], "two words": [3, 4], " two words": [5, 4], "x": [9], " x": [9, 1],
             "same": [6], " same": [6], "": [], " ": []}
    encode = vocab.__getitem__
    assert tokenize_bad_words(["bad"], encode) == [[7], [8]]
    assert tokenize_bad_words(["  bad"], encode) == [[7], [8]]  # leading space stripped first
    assert tokenize_bad_words(["two words"], encode) == [[3, 4], [5, 4]]
    assert tokenize_bad_words(["x"], encode) == [[9]]  # spaced variant has another length: dropped
    assert tokenize_bad_words(["same"], encode) == [[6]]  # same first token: the same word
    with pytest.raises(ValueError, match="bad_words entries must tokenize to at least one token"):
        tokenize_bad_words([" "], encode)
    with pytest.raises(ValueError, match=r"specified as bad: \[9\]"):
        tokenize_bad_words(["x"], encode, vocab_size=9)
