"""Seeded sampling: batch-invariant, reproducible; n choices and unseeded rows differ."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.sampling import SamplingParams, make_generator

from .helpers import lm_like, row, sampler

V = 50
RNG = np.random.default_rng(7)
LOGITS = RNG.normal(0, 1, size=(8, V)).astype(np.float32)
PARAMS = SamplingParams(temperature=0.9, top_p=0.95, seed=42, max_tokens=20)


def _run(batch_rows, batch_logits, steps, seed=0, vocab=V):
    s = sampler(vocab, seed=seed)
    return [s(batch_logits, batch_rows).token_ids for _ in range(steps)]


def test_seeded_row_is_the_same_alone_and_in_any_batch_position():
    alone = [step[0] for step in _run([row(PARAMS, seed=42)], LOGITS[3:4], 20)]
    for position in range(4):
        others = [row(SamplingParams(temperature=1.0), seed=None) for _ in range(4)]
        rows = others[:position] + [row(PARAMS, seed=42)] + others[position:]
        batch = np.concatenate([LOGITS[:position], LOGITS[3:4], LOGITS[4:8 - position]])[:5]
        batch = np.concatenate([np.delete(batch, position, axis=0)[:position], LOGITS[3:4],
                                np.delete(batch, position, axis=0)[position:]])
        tokens = [step[position] for step in _run(rows, batch, 20, seed=position + 100)]
        assert tokens == alone


NEIGHBOURS = [
    SamplingParams(temperature=0.0),  # greedy
    SamplingParams(temperature=1.0),  # no filter: the whole-row path
    SamplingParams(top_k=1000),  # a large k: more candidates for everyone
    SamplingParams(top_p=0.3, min_p=0.2, logprobs=3, presence_penalty=1.0),
]


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.8, top_p=0.9, seed=7),
    SamplingParams(temperature=1.0, top_k=40, seed=7),
    SamplingParams(temperature=1.2, seed=7),
    SamplingParams(temperature=0.9, min_p=0.02, seed=7, repetition_penalty=1.3),
], ids=["top_p", "top_k", "plain", "min_p"])
def test_batch_invariance_at_a_large_vocabulary(params):
    """Neighbours that change the candidate count, the paths taken and the batch size."""
    vocab = 30_000
    x = lm_like(6, vocab, seed=1)
    target = x[2:3]
    alone = [s[0] for s in _run([row(params, output=[5, 6], seed=7)], target, 8, vocab=vocab)]
    for position in (0, 3):
        rows = [row(p, output=[5]) for p in NEIGHBOURS]
        rows.insert(position, row(params, output=[5, 6], seed=7))
        batch = np.delete(x, 2, axis=0)[:4]
        batch = np.insert(batch, position, target[0], axis=0)
        assert [s[position] for s in _run(rows, batch, 8, seed=position, vocab=vocab)] == alone


def test_reproducible_across_runs():
    first = _run([row(PARAMS, seed=42)], LOGITS[:1], 10)
    second = _run([row(PARAMS, seed=42)], LOGITS[:1], 10)
    assert first == second


def test_different_seeds_and_unseeded_rows_differ():
    a = [s[0] for s in _run([row(PARAMS, seed=1)], LOGITS[:1], 30)]
    b = [s[0] for s in _run([row(PARAMS, seed=2)], LOGITS[:1], 30)]
    assert a != b
    unseeded = SamplingParams(temperature=1.0)
    s = sampler(V, seed=0)
    draws = [s(LOGITS[:1], [row(unseeded)]).token_ids[0] for _ in range(30)]
    assert len(set(draws)) > 3  # the engine generator advances between draws


def test_n_choices_of_one_prompt_differ_and_follow_seed_plus_i():
    """n > 1: the engine gives choice i the generator of seed + i; same prompt logits."""
    params = SamplingParams(n=4, temperature=1.0, seed=100)
    x = np.repeat(LOGITS[:1], 4, axis=0)
    s = sampler(V)
    rows = [row(params) for _ in range(4)]
    for i, r in enumerate(rows):
        r.generator = make_generator(100 + i)
    choices = [s(x, rows).token_ids for _ in range(12)]
    streams = list(zip(*choices))  # per choice, its 12 tokens
    assert len(set(streams)) == 4  # no two choices drew the same sequence
    alone = [sampler(V)(LOGITS[:1], [row(params, seed=102)]).token_ids[0]]
    assert streams[2][0] == alone[0]  # choice 2 alone with seed 102: the same first token


def test_unseeded_choices_differ_too():
    x = np.repeat(LOGITS[:1], 4, axis=0)
    tokens = [sampler(V, seed=3)(x, [row(SamplingParams(n=4))] * 4).token_ids for _ in range(5)]
    assert any(len(set(t)) > 1 for t in tokens)


def test_greedy_ignores_the_seed_and_consumes_no_random_numbers():
    x = LOGITS[:2]
    greedy = SamplingParams(temperature=0.0, seed=5)
    s1 = sampler(V, seed=9)
    with_greedy = [s1(x, [row(greedy, seed=5), row(SamplingParams())]).token_ids[1] for _ in range(10)]
    s2 = sampler(V, seed=9)
    without = [s2(x[1:], [row(SamplingParams())]).token_ids[0] for _ in range(10)]
    assert with_greedy == without


def test_the_fake_device_draws_the_cpu_tokens():
    """Full sorts on a device, candidates on the CPU: the same draws for filtered and plain rows."""
    vocab = 30_000
    x = lm_like(3, vocab, seed=2)
    params = [SamplingParams(top_p=0.9, seed=1), SamplingParams(top_k=20, temperature=0.7, seed=2),
              SamplingParams(temperature=1.1, seed=3)]
    cpu = _run([row(p, seed=p.seed) for p in params], x, 5, vocab=vocab)
    fake = sampler(vocab, device="fake")
    device_x = fake.backend.to_device(x)
    rows = [row(p, seed=p.seed) for p in params]
    assert [fake(device_x, rows).token_ids for _ in range(5)] == cpu
