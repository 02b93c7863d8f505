"""GPU discipline without a GPU: the whole generate path on the strict fake device.

The fake device's arrays behave like cupy's: no implicit conversion to numpy, no mixing with
numpy arrays, and every device->host copy is counted. A decode step may copy back only the
sampled token ids, so a greedy request without logprobs makes exactly one such copy per step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyengine import LLM, SamplingParams

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def test_generation_on_the_fake_device_matches_the_cpu():
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    expected = np.load(FIXTURES / "qwen2" / "expected.npz")
    prompt = {"prompt_token_ids": expected["prompt_ids"].tolist()}
    fake = LLM(model=str(FIXTURES / "qwen2"), device="fake", num_kv_blocks=32)
    [out] = fake.generate(prompt, params)
    assert out.outputs[0].token_ids == expected["greedy_ids"][:8].tolist()


def test_one_device_to_host_copy_per_decode_step():
    llm = LLM(model=str(FIXTURES / "llama"), device="fake", num_kv_blocks=32)
    transfers = llm.llm_engine.backend.transfers
    engine = llm.llm_engine
    engine.add_request("r", {"prompt_token_ids": [3, 4, 5, 6]},
                       SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True))
    per_step = []
    while engine.has_unfinished_requests():
        before = transfers.device_to_host
        engine.step()
        per_step.append(transfers.device_to_host - before)
    assert per_step == [1] * 6


def test_batched_sampling_on_the_fake_device_copies_once_per_step():
    llm = LLM(model=str(FIXTURES / "llama"), device="fake", num_kv_blocks=64)
    engine = llm.llm_engine
    transfers = engine.backend.transfers
    for i in range(3):
        engine.add_request(f"r{i}", {"prompt_token_ids": [3 + i, 4, 5]},
                           SamplingParams(temperature=0.8, top_p=0.9, seed=i, max_tokens=4, ignore_eos=True))
    counts = []
    while engine.has_unfinished_requests():
        before = transfers.device_to_host
        engine.step()
        counts.append(transfers.device_to_host - before)
    assert counts == [1] * 4


def test_decode_groups_on_the_fake_device_match_each_request_alone(monkeypatch):
    """One long sequence among short ones decodes as separate attention groups, on device arrays."""
    import dataclasses

    from pyengine.model import fast_path

    counts = []
    original = fast_path.FAST.decode_groups
    monkeypatch.setattr(fast_path, "FAST", dataclasses.replace(
        fast_path.FAST, decode_groups=lambda *args: counts.append(len(groups := original(*args))) or groups))
    prompts = [{"prompt_token_ids": list(range(3, 113))}] + [{"prompt_token_ids": [3 + i, 4, 5]} for i in range(5)]
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    fake = LLM(model=str(FIXTURES / "llama"), device="fake", num_kv_blocks=128, block_size=2, attention="fast")
    together = [o.outputs[0].token_ids for o in fake.generate(prompts, params)]
    assert max(counts) == 2  # the long table (56 blocks) and the short ones (2 blocks) split
    cpu = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=128, block_size=2)
    assert together == [cpu.generate(p, params)[0].outputs[0].token_ids for p in prompts]
