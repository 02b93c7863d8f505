"""Logprobs equal log_softmax of the raw logits; ranks follow vLLM's rule, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling import SamplingParams, make_sampler

from .helpers import BACKEND, row, sampler


def _log_softmax(x):
    x = x.astype(np.float64)
    return x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))


def test_sampled_and_top_logprobs_come_from_the_raw_distribution():
    x = np.array([[0.5, 3.0, -1.0, 2.0, 2.5, 0.0]], dtype=np.float32)
    params = SamplingParams(temperature=0.0, logprobs=3, repetition_penalty=5.0, logit_bias={1: -50})
    out = sampler(6)(x, [row(params, prompt=[4])])
    reference = _log_softmax(x[0])
    [chosen] = out.token_ids
    assert chosen == 3  # bias and penalty changed the choice...
    lp = out.logprobs[0]
    assert lp.token_ids == [3, 1, 4, 3]  # ...but logprobs are raw: chosen first, then top-3
    np.testing.assert_allclose(lp.logprobs, reference[[3, 1, 4, 3]], atol=1e-6)
    assert lp.ranks == [3, 1, 2, 3]
    assert out.sampled_logprobs[0] == pytest.approx(reference[3], abs=1e-6)


def test_rank_counts_ties_as_vllm_does():
    x = np.array([[2.0, 2.0, 1.0, 2.0]], dtype=np.float32)
    out = sampler(4)(x, [row(SamplingParams(temperature=0.0, logprobs=0))])
    assert out.token_ids == [0]
    assert out.logprobs[0].ranks == [3]  # three tokens are at least as likely as the chosen one


def test_rows_without_logprobs_get_none_and_zero_means_chosen_only():
    x = np.zeros((3, 5), dtype=np.float32)
    rows = [row(SamplingParams(temperature=0.0)), row(SamplingParams(temperature=0.0, logprobs=0)),
            row(SamplingParams(temperature=0.0, logprobs=2))]
    out = sampler(5)(x, rows)
    assert out.logprobs[0] is None
    assert len(out.logprobs[1].token_ids) == 1 and len(out.logprobs[2].token_ids) == 3


@pytest.mark.parametrize("twin", ["fast", "reference"])
def test_prompt_logprobs_layout(twin):
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    rows = make_sampler(twin, BACKEND, 3).prompt_logprobs(x, [2, 0, 1], 1)
    assert rows[0] is None and len(rows) == 3
    reference = _log_softmax(x)
    assert rows[1].token_ids == [0, 2] and rows[1].ranks == [3, 1]
    np.testing.assert_allclose(rows[1].logprobs, reference[0, [0, 2]], atol=1e-6)
    assert rows[2].token_ids == [1, 0] and rows[2].ranks == [2, 1]


@pytest.mark.parametrize("twin", ["fast", "reference"])
def test_prompt_logprobs_accept_a_row_per_prompt_token_and_all_of_the_vocabulary(twin):
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [9.0, 9.0, 9.0]], dtype=np.float32)
    compute_prompt_logprobs = make_sampler(twin, BACKEND, 3).prompt_logprobs
    rows = compute_prompt_logprobs(x, [2, 0, 1], -1)  # [T, V]: the last row is ignored
    assert rows[0] is None and len(rows) == 3
    assert rows[1].token_ids == [0, 2, 1, 0] and rows[1].ranks == [3, 1, 2, 3]
    assert compute_prompt_logprobs(x[:0], [5], 2) == [None]  # one token: nothing to score
    with pytest.raises(ValueError, match=r"do not match 5 prompt tokens"):
        compute_prompt_logprobs(x, [1, 2, 3, 4, 5], 1)


def test_top_logprobs_ties_are_listed_by_token_id():
    x = np.array([[1.0, 4.0, 4.0, 0.0, 4.0]], dtype=np.float32)
    out = sampler(5)(x, [row(SamplingParams(temperature=0.0, logprobs=3))])
    assert out.logprobs[0].token_ids == [1, 1, 2, 4] and out.logprobs[0].ranks == [3, 1, 2, 3]


def test_logprobs_minus_one_lists_the_whole_vocabulary():
    x = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    out = sampler(3)(x, [row(SamplingParams(temperature=0.0, logprobs=-1))])
    assert out.logprobs[0].token_ids == [2, 2, 1, 0]
    np.testing.assert_allclose(out.logprobs[0].logprobs[1:], _log_softmax(x[0])[[2, 1, 0]], atol=1e-6)


def test_large_vocabulary_logprobs_equal_log_softmax():
    """150k tokens, mixed rows: sampled logprobs, ranks and top-5 against a float64 reference."""
    from .helpers import lm_like

    vocab = 151_936
    x = lm_like(4, vocab, seed=3)
    rows = [row(SamplingParams(temperature=0.8, top_p=0.9, logprobs=5), seed=1),
            row(SamplingParams(temperature=1.0)), row(SamplingParams(temperature=0.0, logprobs=0)),
            row(SamplingParams(top_k=3, logprobs=2, frequency_penalty=1.0), output=[7])]
    out = sampler(vocab)(x, rows)
    reference = _log_softmax(x)
    for b, token in enumerate(out.token_ids):
        if rows[b].params.logprobs is None:  # not asked: not computed (no cumulative_logprob, as in vLLM)
            assert out.sampled_logprobs[b] is None and out.logprobs[b] is None
            continue
        assert out.sampled_logprobs[b] == pytest.approx(reference[b, token], abs=2e-5)
        lp = out.logprobs[b]
        assert lp.token_ids[0] == token and lp.ranks[0] == int((x[b] >= x[b, token]).sum())
        top = np.argsort(-reference[b], kind="stable")[:len(lp.token_ids) - 1]
        assert lp.token_ids[1:] == top.tolist() and lp.ranks[1:] == list(range(1, len(top) + 1))
        np.testing.assert_allclose(lp.logprobs, reference[b, lp.token_ids], atol=2e-5)
    assert out.logprobs[1] is None


def test_the_grammar_mask_comes_before_the_raw_snapshot():
    """Step 7a: disallowed tokens are -inf even in raw logprobs; the rest renormalise."""
    x = np.array([[3.0, 1.0, 2.0, 0.0]], dtype=np.float32)
    mask = np.array([[False, True, True, True]])
    out = sampler(4)(x, [row(SamplingParams(temperature=0.0, logprobs=2))], allowed_mask=mask)
    assert out.token_ids == [2]
    reference = _log_softmax(np.array([-np.inf, 1.0, 2.0, 0.0]))
    np.testing.assert_allclose(out.logprobs[0].logprobs, reference[[2, 2, 1]], atol=1e-6)
