"""Server overhead per streamed token: 16 streaming HTTP clients vs the engine called directly.

Both paths run the same 16 chat prompts for the same number of greedy tokens on the same
model, in the same run:

- engine: `LLM.generate` on the rendered prompt ids (the engine loop, no HTTP, no asyncio);
- server: `pyengine serve` in a subprocess (as deployed), 16 concurrent `stream: true`
  requests from httpx clients in this process, timed from the first request to the last
  `data: [DONE]`.

Overhead = server time / engine time - 1, and per streamed token (server - engine) / tokens.
Target: <= 15% at 16 concurrent streams, i.e. engine time / server time >= 0.87.

The model has SmolLM2-135M's layer shapes with random weights and the 300-token vocabulary of
the test tokenizer (so its text can be streamed). The small vocabulary makes each engine step
cheaper than the real model's, so the measured overhead is, if anything, an upper bound.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from conftest import RATIOS
from safetensors.numpy import save_file
from smollm2 import SMOLLM2_135M, random_tensors

from pyengine import LLM, SamplingParams

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.server.serve_command import pyengine_serve  # noqa: E402

TOKENIZER = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
NUM_STREAMS = 16
NEW_TOKENS = 32
RATIOS.append(("engine time / server time at 16 streams", "engine s at 16 streams", "server s at 16 streams",
               1 / 1.15))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    raw = {**SMOLLM2_135M, "vocab_size": 300, "eos_token_id": 299}
    path = tmp_path_factory.mktemp("smollm2-shapes-small-vocab")
    (path / "config.json").write_text(json.dumps(raw))
    save_file(random_tensors(raw), str(path / "model.safetensors"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER / name, path / name)
    return str(path)


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Tell me story number {i} about a dragon."}]


@pytest.fixture(scope="module")
def server_url(checkpoint):
    args = ["--model", checkpoint, "--served-model-name", "bench", "--num-kv-blocks", "512", "--log-level", "warning"]
    with pyengine_serve(args, timeout=120) as (url, _):
        yield url


async def _stream_all(url: str) -> int:
    """16 concurrent streams; returns the number of content chunks received."""
    limits = httpx.Limits(max_connections=NUM_STREAMS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:

        async def one(i: int) -> int:
            body = {"model": "bench", "messages": _messages(i), "max_tokens": NEW_TOKENS, "temperature": 0,
                    "ignore_eos": True, "stream": True}
            count = 0
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    count += line.startswith("data: {")
            return count

        return sum(await asyncio.gather(*(one(i) for i in range(NUM_STREAMS))))


def test_engine_direct(benchmark, record, checkpoint):
    llm = LLM(model=checkpoint, num_kv_blocks=512)
    tokenizer = llm.get_tokenizer()
    prompts = [{"prompt_token_ids": tokenizer.apply_chat_template(_messages(i), add_generation_prompt=True,
                                                                  tokenize=True)} for i in range(NUM_STREAMS)]
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    llm.generate(prompts, params)  # warm up
    benchmark.pedantic(lambda: llm.generate(prompts, params), rounds=3, warmup_rounds=0)
    record("engine s at 16 streams", benchmark.stats.stats.median)


def test_server_streaming(benchmark, record, server_url):
    chunks = asyncio.run(_stream_all(server_url))  # warm up
    assert chunks >= NUM_STREAMS * NEW_TOKENS
    benchmark.pedantic(lambda: asyncio.run(_stream_all(server_url)), rounds=3, warmup_rounds=0)
    record("server s at 16 streams", benchmark.stats.stats.median)


def test_overhead_summary(record):
    """Runs last in this file: turns the two medians into the overhead numbers."""
    from conftest import RESULTS

    if "engine s at 16 streams" not in RESULTS or "server s at 16 streams" not in RESULTS:
        pytest.skip("run the whole file")
    engine, served = RESULTS["engine s at 16 streams"], RESULTS["server s at 16 streams"]
    record("server overhead % at 16 streams", 100 * (served / engine - 1))
    record("server overhead ms per streamed token", 1000 * (served - engine) / (NUM_STREAMS * NEW_TOKENS))
