"""Parity with transformers: logits within 1e-4 and identical greedy tokens.

The fixtures in tests/fixtures/parity were written by tools/make_parity_fixtures.py, which
ran transformers (fp32, eager attention) on tiny random-weight checkpoints of each family.
Each is checked through prefill (all prompt positions at once) and through token-by-token
decode with the paged KV cache, where the cache's block size (4) is smaller than the prompts,
so attention reads across several blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyengine.backend import get_backend
from pyengine.model import load_model

from pyengine.model_runner import SingleSequence

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").is_file()) if FIXTURES.is_dir() else []
TOLERANCE = 1e-4


def test_every_family_has_a_fixture():
    families = {"llama", "llama3-rope", "mistral-sliding-window", "qwen2", "qwen3", "gpt2"}
    assert families <= set(NAMES)


def _check(model, backend, prompt_ids, prefill_logits, greedy_ids, decode_logits):
    seq = SingleSequence(model, block_size=4)
    logits = backend.to_host(seq.run([int(t) for t in prompt_ids]))  # [T, V]
    assert logits.shape == prefill_logits.shape
    np.testing.assert_allclose(logits, prefill_logits, atol=TOLERANCE, rtol=0)
    next_logits = logits[-1]
    generated = []
    for step, expected_row in enumerate(decode_logits):
        np.testing.assert_allclose(next_logits, expected_row, atol=TOLERANCE, rtol=0,
                                   err_msg=f"decode step {step}")
        token = int(np.argmax(next_logits))
        generated.append(token)
        next_logits = backend.to_host(seq.run([token]))[-1]
    assert generated == [int(t) for t in greedy_ids]


@pytest.mark.parametrize("name", NAMES)
def test_prefill_and_decode_match_transformers(name):
    backend = get_backend("cpu")
    model = load_model(FIXTURES / name, backend)
    data = np.load(FIXTURES / name / "expected.npz")
    _check(model, backend, data["prompt_ids"], data["prefill_logits"], data["greedy_ids"], data["decode_logits"])
    if "long_prompt_ids" in data:
        _check(model, backend, data["long_prompt_ids"], data["long_prefill_logits"],
               data["long_greedy_ids"], data["long_decode_logits"])


def test_sliding_window_prompt_is_longer_than_the_window():
    data = np.load(FIXTURES / "mistral-sliding-window" / "expected.npz")
    model = load_model(FIXTURES / "mistral-sliding-window", get_backend("cpu"))
    window = model.config.sliding_window
    assert len(data["prompt_ids"]) < window < len(data["long_prompt_ids"])
