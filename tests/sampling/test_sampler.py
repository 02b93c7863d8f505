"""The sampler as the engine drives it: boundary checks, one device->host copy, mixed batches."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling import SamplingParams
from pyengine.sampling.fast import filtered_logits

from .helpers import lm_like, row, sampler


def test_shapes_are_checked_at_the_boundary():
    s = sampler(5)
    with pytest.raises(ValueError, match=r"logits have shape \(2, 4\), expected \[B, V\] = \[2, 5\]"):
        s(np.zeros((2, 4), np.float32), [row(SamplingParams())] * 2)
    with pytest.raises(ValueError, match=r"expected \[B, V\] = \[1, 5\] \(1 rows"):
        s(np.zeros((2, 5), np.float32), [row(SamplingParams())])
    with pytest.raises(ValueError, match="allowed_mask has shape"):
        s(np.zeros((1, 5), np.float32), [row(SamplingParams())], allowed_mask=np.ones((1, 4), bool))


def test_an_empty_batch_returns_empty_lists():
    out = sampler(5)(np.zeros((0, 5), np.float32), [])
    assert (out.token_ids, out.sampled_logprobs, out.logprobs) == ([], [], [])


@pytest.mark.parametrize("vocab", [64, 151_936])
def test_one_device_to_host_copy_per_step_on_the_strict_fake_device(vocab):
    """Mixed rows (greedy, filters, plain, penalties, bias, logprobs): exactly one transfer."""
    s = sampler(vocab, device="fake")
    x = s.backend.to_device(lm_like(6, vocab, seed=4))
    rows = [row(SamplingParams(temperature=0.0)), row(SamplingParams(top_p=0.9, logprobs=3), seed=1),
            row(SamplingParams(top_k=5, min_p=0.1, presence_penalty=1.0), output=[1, 2]),
            row(SamplingParams(temperature=1.2, logit_bias={3: 5.0})),
            row(SamplingParams(repetition_penalty=1.3, allowed_token_ids=[1, 2, 3, 4], min_tokens=3),
                stop_ids={2}),
            row(SamplingParams(logprobs=0, bad_words=["x"]), bad_words=[[7]])]
    before = s.backend.transfers.device_to_host
    out = s(x, rows)
    assert s.backend.transfers.device_to_host - before == 1
    assert len(out.token_ids) == 6 and out.logprobs[1] is not None and out.logprobs[0] is None
    assert out.token_ids[4] in (1, 3, 4)  # allowed, and not the stop token under min_tokens


def test_filtered_logits_show_what_each_row_samples_from():
    x = np.array([[2.0, 1.0, 0.0, -1.0]] * 2, dtype=np.float32)
    out = filtered_logits(x, [row(SamplingParams(top_k=2, temperature=0.5)), row(SamplingParams())], sampler(4))
    np.testing.assert_array_equal(out, [[4.0, 2.0, -np.inf, -np.inf], [2.0, 1.0, 0.0, -1.0]])


def test_mixed_batch_tokens_respect_each_rows_filters():
    vocab = 40_000
    x = lm_like(4, vocab, seed=8)
    params = [SamplingParams(top_k=3), SamplingParams(top_p=0.5), SamplingParams(min_p=0.5), SamplingParams()]
    s = sampler(vocab, seed=1)
    allowed = filtered_logits(x, [row(p) for p in params], s) > -np.inf  # [B, V]
    for _ in range(30):
        tokens = s(x, [row(p) for p in params]).token_ids
        assert all(allowed[b, t] for b, t in enumerate(tokens))
    assert allowed[0].sum() == 3 and allowed[3].all()


def test_the_scratch_buffers_do_not_leak_between_steps():
    """A small batch after a large one, and the caller's logits are never written."""
    s = sampler(1000, seed=0)
    big = lm_like(8, 1000, seed=1)
    s(big, [row(SamplingParams(presence_penalty=1.0), output=[1])] * 8)
    small = lm_like(2, 1000, seed=2)
    before = small.copy()
    out = s(small, [row(SamplingParams(temperature=0.0, logit_bias={5: 100.0}))] * 2)
    assert out.token_ids == [5, 5]
    np.testing.assert_array_equal(small, before)
