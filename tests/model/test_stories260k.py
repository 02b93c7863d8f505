"""A real trained model: stories260K (llama2.c's 260K-parameter Llama) reproduces its golden output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyengine.backend import get_backend
from pyengine.model import load_model

from pyengine.single_sequence import SingleSequence

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def stories(shared_testdata):
    path = shared_testdata / "stories260K" / "hf"
    return path, json.loads((path / "expected.json").read_text())


@pytest.mark.parametrize("device", ["cpu", "fake"])
def test_256_greedy_tokens_from_bos(stories, device):
    path, expected = stories
    backend = get_backend(device)
    model = load_model(path, backend)
    seq = SingleSequence(model, num_blocks=80, block_size=4)
    logits = seq.run([1])  # BOS
    generated = []
    for _ in range(256):
        token = int(backend.to_host(backend.xp.argmax(logits[-1])))
        generated.append(token)
        logits = seq.run([token])
    assert generated == expected["bos_greedy256_ids"]
