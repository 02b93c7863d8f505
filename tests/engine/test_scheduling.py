"""Continuous batching over the paged cache: batch invariance, preemption, priorities,
prefix caching, n > 1 sharing, aborts, and no leaked blocks after any of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyengine import LLM, SamplingParams

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
GREEDY = SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)


def _prompts(count, seed=0, low=3, high=40):
    rng = np.random.default_rng(seed)
    return [{"prompt_token_ids": rng.integers(0, 297, size=int(n)).tolist()} for n in rng.integers(low, high, count)]


def _assert_all_blocks_free(llm):
    blocks = llm.llm_engine.blocks
    assert blocks.num_free_blocks == blocks.num_blocks
    assert all(count == 0 for count in blocks.ref_counts)


@pytest.fixture(scope="module")
def qwen2():
    return LLM(model=str(FIXTURES / "qwen2"), num_kv_blocks=256, block_size=4)


def test_greedy_and_seeded_outputs_are_batch_invariant(qwen2):
    prompts = _prompts(8)
    seeded = SamplingParams(temperature=0.9, top_p=0.9, seed=7, max_tokens=10, ignore_eos=True)
    for params in (GREEDY, seeded):
        batched = qwen2.generate(prompts, params)
        for prompt, together in zip(prompts, batched):
            [alone] = qwen2.generate(prompt, params)
            assert alone.outputs[0].token_ids == together.outputs[0].token_ids
    _assert_all_blocks_free(qwen2)


def test_preemption_under_block_pressure_gives_the_same_tokens():
    """With room for only a few sequences at a time, requests are preempted and recomputed;
    every output still equals the one computed with plenty of room."""
    prompts = _prompts(6, seed=1, low=10, high=30)
    roomy = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=256, block_size=4)
    tight = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=24, block_size=4, enable_prefix_caching=False)
    params = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
    expected = [o.outputs[0].token_ids for o in roomy.generate(prompts, params)]
    engine = tight.llm_engine
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), prompt, params)
    preempted, results = 0, {}
    while engine.has_unfinished_requests():
        plan_before = len(engine.scheduler.waiting)
        for output in engine.step():
            if output.finished:
                results[output.request_id] = output.outputs[0].token_ids
        preempted += max(0, len(engine.scheduler.waiting) - plan_before)
    assert preempted > 0, "the test must actually preempt"
    assert [results[str(i)] for i in range(len(prompts))] == expected
    _assert_all_blocks_free(tight)


def test_priority_policy_runs_lower_values_first_and_fcfs_rejects_priorities():
    llm = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64, max_num_seqs=1, scheduling_policy="priority")
    engine = llm.llm_engine
    params = SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True)
    engine.add_request("normal", [5, 6, 7], params, priority=5)  # first come, but less urgent
    engine.add_request("late-but-urgent", [5, 6, 7], params, priority=-1)
    finished = []
    while engine.has_unfinished_requests():
        finished += [o.request_id for o in engine.step() if o.finished]
    assert finished == ["late-but-urgent", "normal"]
    fcfs = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=16)
    with pytest.raises(ValueError, match="Got priority 1 but Priority scheduling is not enabled."):
        fcfs.llm_engine.add_request("x", [1, 2], params, priority=1)


def test_prefix_cache_hit_reuses_blocks_and_reports_cached_tokens(qwen2):
    prefix = list(range(10, 50))  # 40 tokens = 10 full blocks of 4
    [first] = qwen2.generate({"prompt_token_ids": prefix + [1, 2]}, GREEDY)
    [second] = qwen2.generate({"prompt_token_ids": prefix + [3, 4]}, GREEDY)
    assert first.num_cached_tokens == 0 or first.num_cached_tokens % 4 == 0
    assert second.num_cached_tokens == 40
    # the cached computation gives exactly what a fresh one gives
    fresh = LLM(model=str(FIXTURES / "qwen2"), num_kv_blocks=256, block_size=4, enable_prefix_caching=False)
    [reference] = fresh.generate({"prompt_token_ids": prefix + [3, 4]}, GREEDY)
    assert reference.outputs[0].token_ids == second.outputs[0].token_ids
    _assert_all_blocks_free(qwen2)


def test_cache_salt_separates_prefix_caches():
    llm = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64, block_size=4)
    engine = llm.llm_engine
    prompt = list(range(1, 30))

    def run(request_id, salt):
        engine.add_request(request_id, prompt, GREEDY, cache_salt=salt)
        outputs = []
        while engine.has_unfinished_requests():
            outputs += engine.step()
        return outputs[-1]

    run("a", "alice")
    assert run("b", "bob").num_cached_tokens == 0
    assert run("c", "alice").num_cached_tokens == 28


def test_n_choices_share_the_prompt_blocks_and_differ(qwen2):
    params = SamplingParams(n=4, temperature=1.0, seed=3, max_tokens=8, ignore_eos=True)
    engine = qwen2.llm_engine
    engine.add_request("n4", {"prompt_token_ids": list(range(60, 90))}, params)
    engine.step()  # prefill once; the three siblings fork from it
    seqs = engine.requests["n4"].sequences
    shared = set(seqs[0].block_table[:7])  # 30 prompt tokens: 7 full blocks of 4
    for sibling in seqs[1:]:
        assert set(sibling.block_table[:7]) == shared
        assert sibling.block_table[7] != seqs[0].block_table[7]  # the partial block is copied
    assert all(engine.blocks.ref_counts[b] == 4 for b in shared)
    outputs = None
    while engine.has_unfinished_requests():
        outputs = engine.step() or outputs
    choices = [c.token_ids for c in outputs[-1].outputs]
    assert len(choices) == 4 and len({tuple(c) for c in choices}) > 1
    _assert_all_blocks_free(qwen2)


def test_chunked_prefill_matches_whole_prefill():
    whole = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64)
    chunked = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64, max_num_batched_tokens=7)
    prompt = {"prompt_token_ids": list(range(1, 40))}
    assert whole.generate(prompt, GREEDY)[0].outputs[0].token_ids == \
        chunked.generate(prompt, GREEDY)[0].outputs[0].token_ids


def test_abort_frees_blocks_and_other_requests_continue(qwen2):
    engine = qwen2.llm_engine
    long = SamplingParams(temperature=0.0, max_tokens=30, ignore_eos=True)
    engine.add_request("keep", [1, 2, 3, 4, 5], long)
    engine.add_request("drop", [6, 7, 8, 9, 10], long)
    engine.step()
    engine.step()
    engine.abort_request("drop")
    outputs = []
    while engine.has_unfinished_requests():
        outputs += engine.step()
    assert {o.request_id for o in outputs} == {"keep"}
    assert len(outputs[-1].outputs[0].token_ids) == 30
    _assert_all_blocks_free(qwen2)


def test_an_urgent_request_displaces_a_running_one_under_the_priority_policy():
    llm = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64, max_num_seqs=1, scheduling_policy="priority")
    engine = llm.llm_engine
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    engine.add_request("background", [5, 6, 7], params, priority=10)
    engine.step()
    engine.step()  # "background" is running
    engine.add_request("urgent", [8, 9], params, priority=0)
    order, tokens = [], {}
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                order.append(output.request_id)
                tokens[output.request_id] = output.outputs[0].token_ids
    assert order == ["urgent", "background"]
    [alone] = LLM(model=str(FIXTURES / "llama"), num_kv_blocks=64).generate([5, 6, 7], params)
    assert tokens["background"] == alone.outputs[0].token_ids  # recomputed after preemption: same
