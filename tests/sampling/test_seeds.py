"""Seeded sampling: batch-invariant, reproducible; n choices and unseeded rows differ."""

from __future__ import annotations

import numpy as np

from pyengine.sampling import SamplingParams

from .helpers import row, sampler

V = 50
RNG = np.random.default_rng(7)
LOGITS = RNG.normal(0, 1, size=(8, V)).astype(np.float32)
PARAMS = SamplingParams(temperature=0.9, top_p=0.95, seed=42, max_tokens=20)


def _run(batch_rows, batch_logits, steps, seed=0):
    s = sampler(V, seed=seed)
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
