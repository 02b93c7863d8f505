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
from pyengine.cache import KVCache
from pyengine.model import load_model
from pyengine.model_runner import ModelRunner
from pyengine.single_sequence import SingleSequence

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").is_file()) if FIXTURES.is_dir() else []
TOLERANCE = 1e-4


def test_every_family_has_a_fixture():
    families = {"llama", "llama3-rope", "mistral-sliding-window", "qwen2", "qwen3", "gpt2", "gemma2", "gemma3",
                "phi3-longrope", "phi3-partial-rotary", "qwen3-moe", "mixtral"}
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
    for run in [p for p in ("", "long_", "cross_") if p + "prompt_ids" in data]:
        _check(model, backend, data[run + "prompt_ids"], data[run + "prefill_logits"], data[run + "greedy_ids"],
               data[run + "decode_logits"])


@pytest.mark.parametrize("name", ["mistral-sliding-window", "gemma2", "gemma3"])
def test_sliding_window_prompt_is_longer_than_the_window(name):
    data = np.load(FIXTURES / name / "expected.npz")
    model = load_model(FIXTURES / name, get_backend("cpu"))
    window = model.config.sliding_window
    assert len(data["prompt_ids"]) < window < len(data["long_prompt_ids"])


@pytest.mark.parametrize("name", ["gemma2", "gemma3"])
def test_gemma_fixtures_alternate_local_and_global_layers(name):
    config = load_model(FIXTURES / name, get_backend("cpu")).config
    assert config.layer_uses_sliding_window == (True, False, True)


def test_longrope_fixture_runs_short_long_and_crossing_prompts():
    data = np.load(FIXTURES / "phi3-longrope" / "expected.npz")
    original = load_model(FIXTURES / "phi3-longrope", get_backend("cpu")).config.rope.original_max_position_embeddings
    assert len(data["prompt_ids"]) + len(data["greedy_ids"]) <= original  # short factors throughout
    assert len(data["long_prompt_ids"]) > original  # long factors from the prefill on
    assert len(data["cross_prompt_ids"]) <= original < len(data["cross_prompt_ids"]) + len(data["cross_greedy_ids"])


@pytest.mark.parametrize("attention", ["fast", "reference"])
@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_sequences_matches_transformers(name, attention):
    """Every recorded prompt at once: one packed prefill, then each step one batch of decodes.

    The prompts differ in length, so with the fast twin the decode batch runs as padded decode
    groups (fast_path.py), window and soft-cap included; the reference twin attends per sequence.
    Each sequence is fed the recorded greedy tokens and must give the recorded logits.
    """
    backend = get_backend("cpu")
    model = load_model(FIXTURES / name, backend, attention=attention)
    data = np.load(FIXTURES / name / "expected.npz")
    runs = [p for p in ("", "long_", "cross_") if p + "prompt_ids" in data] + [""]  # short twice: >= 2 sequences
    c, block_size = model.config, 4
    runner = ModelRunner(model, KVCache(backend, c.num_hidden_layers, 64, block_size, c.num_key_value_heads,
                                        c.head_dim, model.dtype))
    lengths = [len(data[run + "prompt_ids"]) + len(data[run + "greedy_ids"]) for run in runs]
    free = iter(np.random.default_rng(0).permutation(64).tolist())  # blocks scattered through the cache
    tables = [[next(free) for _ in range(-(-n // block_size))] for n in lengths]
    chunks = [([int(t) for t in data[run + "prompt_ids"]], 0, table) for run, table in zip(runs, tables)]
    for step in range(len(data["greedy_ids"])):
        inputs = runner.prepare(chunks)
        if step > 0 and attention == "fast":
            assert inputs.attn.decode_groups is not None
        logits = backend.to_host(runner.last_token_logits(runner.forward(inputs), inputs, range(len(runs))))
        for row, run in zip(logits, runs):
            np.testing.assert_allclose(row, data[run + "decode_logits"][step], atol=TOLERANCE, rtol=0,
                                       err_msg=f"{run or 'short'} prompt, decode step {step}")
        chunks = [([int(data[run + "greedy_ids"][step])], first + len(ids), table)
                  for run, (ids, first, table) in zip(runs, chunks)]


@pytest.mark.parametrize("name", ["gemma2", "gemma3", "phi3-longrope", "phi3-partial-rotary", "qwen3-moe", "mixtral"])
def test_new_families_run_on_the_strict_fake_device_without_host_copies(name):
    """On a device, the forward pass never copies to the host (cupy's rules, enforced by the fake device)."""
    backend = get_backend("fake")
    model = load_model(FIXTURES / name, backend)
    data = np.load(FIXTURES / name / "expected.npz")
    seq = SingleSequence(model, block_size=4)
    before = backend.transfers.device_to_host
    logits = seq.run([int(t) for t in data["long_prompt_ids"]])  # [T, V], still on the device
    seq.run([int(data["long_greedy_ids"][0])])
    assert backend.transfers.device_to_host == before
    np.testing.assert_allclose(backend.to_host(logits), data["long_prefill_logits"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["gemma2", "gemma3", "phi3-longrope", "phi3-partial-rotary", "qwen3-moe", "mixtral"])
def test_the_engine_continues_every_prompt_as_transformers_does(name):
    """Through LLM.generate (scheduler, paged cache, sampler): greedy continuations of all prompts at once."""
    from pyengine import LLM, SamplingParams  # noqa: PLC0415  (the whole engine, for this test only)

    data = np.load(FIXTURES / name / "expected.npz")
    runs = [p for p in ("", "long_", "cross_") if p + "prompt_ids" in data]
    llm = LLM(model=str(FIXTURES / name))
    params = SamplingParams(temperature=0, max_tokens=len(data["greedy_ids"]), ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": data[run + "prompt_ids"].tolist()} for run in runs], params)
    for run, output in zip(runs, outputs):
        assert list(output.outputs[0].token_ids) == data[run + "greedy_ids"].tolist(), run or "short"


@pytest.mark.parametrize("name", [n for n in NAMES if n != "llama-dynamic-rope" and not n.startswith("phi3")])
def test_a_prompt_prefilled_in_chunks_matches_transformers(name):
    """Chunked prefill: 5 tokens a forward, so windows and blocks straddle the chunks' edges.

    (Dynamic NTK rope and LongRoPE are left out: transformers picks their frequencies per forward.)
    """
    backend = get_backend("cpu")
    model = load_model(FIXTURES / name, backend)
    data = np.load(FIXTURES / name / "expected.npz")
    run = "long_" if "long_prompt_ids" in data else ""
    prompt = [int(t) for t in data[run + "prompt_ids"]]
    seq = SingleSequence(model, block_size=4)
    logits = np.concatenate([backend.to_host(seq.run(prompt[i:i + 5])) for i in range(0, len(prompt), 5)])
    np.testing.assert_allclose(logits, data[run + "prefill_logits"], atol=TOLERANCE, rtol=0)


def test_gemma_in_float16_warns_that_its_activations_can_overflow(tmp_path, caplog):
    """A half-precision Gemma checkpoint on a GPU computes in float16 (cupy has no bfloat16): a warning says so.

    numpy stands in for cupy in a backend named "cuda", enough to load (not to run) the model.
    """
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    from pyengine.backend import Backend  # noqa: PLC0415

    gpu = Backend("cuda", np)
    path = shutil.copytree(FIXTURES / "gemma2", tmp_path / "gemma2")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(dict(config, dtype="bfloat16")))
    with caplog.at_level("WARNING", logger="pyengine.model"):
        model = load_model(path, gpu)
    assert model.dtype == np.float16
    assert "known to overflow float16" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="pyengine.model"):
        load_model(FIXTURES / "llama-bf16", gpu)  # other families: no warning
    assert "overflow" not in caplog.text
