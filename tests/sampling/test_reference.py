"""The two sampler twins on the same batches: the textbook pipeline and the fast one agree.

Greedy tokens, every seeded and unseeded draw whose cut lies among the fast twin's candidates,
and the logprobs (values to float32 rounding, ranks and top ids exactly) are equal; the two
cases where a seeded draw may differ are in docs/03-sampling.md ("Two twins").
"""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.backend import get_backend
from pyengine.sampling import ReferenceSampler, SamplingParams
from pyengine.sampling.fast import Sampler, filtered_logits

from .helpers import lm_like, row

V = 3000
BATCH_PARAMS = [
    SamplingParams(temperature=0.0, logprobs=2),  # greedy
    SamplingParams(temperature=0.8, top_k=20, seed=1),
    SamplingParams(temperature=1.1, top_p=0.9, seed=2, logprobs=5),
    SamplingParams(temperature=0.7, min_p=0.05, seed=3),
    SamplingParams(temperature=1.0, top_k=50, top_p=0.8, min_p=0.01, seed=4, logprobs=0),
    SamplingParams(temperature=0.9, top_p=0.95),  # unseeded: the sampler's own generator
    SamplingParams(temperature=1.0, seed=5),  # no filter: the whole row, in token-id order
    SamplingParams(temperature=0.6, top_k=5, presence_penalty=1.0, logit_bias={7: 3.0}, seed=6),
]


def _twins(device: str = "cpu") -> tuple[Sampler, ReferenceSampler]:
    backend = get_backend(device)
    return Sampler(backend, V, seed=11), ReferenceSampler(backend, V, seed=11)


@pytest.mark.parametrize("device", ["cpu", "fake"])
def test_both_twins_draw_the_same_tokens_step_after_step(device):
    fast, reference = _twins(device)
    backend = fast.backend
    outputs = {"fast": [], "reference": []}
    rows = {name: [row(p, seed=p.seed) for p in BATCH_PARAMS] for name in outputs}  # a generator each
    for step in range(12):
        logits = lm_like(len(BATCH_PARAMS), V, seed=step)
        for name, twin in (("fast", fast), ("reference", reference)):
            for r in rows[name]:
                r.output_token_ids = list(range(step))
            outputs[name].append(twin(backend.to_device(logits), rows[name]))
    assert [o.token_ids for o in outputs["fast"]] == [o.token_ids for o in outputs["reference"]]
    for ours, theirs in zip(outputs["fast"], outputs["reference"]):
        for a, b in zip(ours.logprobs, theirs.logprobs):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.token_ids == b.token_ids and a.ranks == b.ranks
                np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=1e-5, atol=1e-5)


def test_a_seeded_row_draws_the_same_in_either_twin_alone_or_in_a_batch():
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=42)
    logits = lm_like(4, V, seed=3)
    fast, reference = _twins()
    alone = reference(logits[2:3], [row(params, seed=42)]).token_ids
    mixed = [row(SamplingParams(temperature=1.0)), row(SamplingParams(top_k=3)), row(params, seed=42),
             row(SamplingParams(temperature=0.0))]
    assert reference(logits, mixed).token_ids[2] == alone[0]
    assert fast(logits[2:3], [row(params, seed=42)]).token_ids == alone


def test_the_textbook_filters_keep_the_tokens_the_fast_threshold_keeps():
    logits = lm_like(len(BATCH_PARAMS), V, seed=9)
    rows = [row(p) for p in BATCH_PARAMS]
    fast, _ = _twins()
    kept_fast = np.isfinite(filtered_logits(logits, rows, fast))
    from pyengine.sampling.truncation import apply_min_p, apply_temperature, apply_top_k, apply_top_p

    processed = fast.process(logits, rows)
    params = [r.params for r in rows]
    column = lambda values, dtype=np.float32: np.array(values, dtype=dtype)[:, None]  # noqa: E731
    scaled = apply_temperature(processed, column([1.0 if p.greedy else p.temperature for p in params]))
    scaled = apply_min_p(scaled, column([p.min_p for p in params]))
    scaled = apply_top_k(scaled, column([p.top_k for p in params], np.int64))
    scaled = apply_top_p(scaled, column([p.top_p for p in params]))
    np.testing.assert_array_equal(np.isfinite(scaled)[1:], kept_fast[1:])  # row 0 is greedy: no filter applies
