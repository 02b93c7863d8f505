"""The embedded demo model: load time and greedy decode speed at batch 1, on this CPU.

Targets: the model loads (weights, tokenizer, chat template: everything `LLM(...)` does) in
under 2 s, and generates at least 100 tokens/s at batch 1 through the whole engine
(scheduler, sampler, detokenizer), not only the forward pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LIMITS

from pyengine import LLM, SamplingParams

DEMO = Path(__file__).resolve().parents[1] / "pyengine" / "demo_model"
NEW_TOKENS = 128
LIMITS.extend([("demo model load s", "<=", 2.0), ("demo model decode tok/s at batch 1", ">=", 100.0)])

pytestmark = pytest.mark.skipif(not (DEMO / "config.json").is_file(), reason="the demo model is not shipped")


def test_demo_model_load(benchmark, record):
    benchmark.pedantic(lambda: LLM(model=str(DEMO)), rounds=3, warmup_rounds=1)
    record("demo model load s", benchmark.stats.stats.median)


def test_demo_model_decode_batch_1(benchmark, record):
    llm = LLM(model=str(DEMO))
    prompt = llm.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "Tell me a short story about a fox."}], tokenize=False, add_generation_prompt=True)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    benchmark.pedantic(lambda: llm.generate(prompt, params), rounds=3, warmup_rounds=1)
    record("demo model decode tok/s at batch 1", NEW_TOKENS / benchmark.stats.stats.median)
