"""Load: 64 concurrent streaming clients with mixed parameters, then a third of them walking away.

Every stream must be well formed (role chunk, finish per choice, usage, [DONE]), its usage
must equal the token ids it received, and afterwards the engine must be idle with every KV
block free again. Outputs are a few tokens each, to stay fast on a 2-core CI machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx
import pytest

from tests.server.conftest import MODEL_NAME, serve

NUM_CLIENTS = 64


def mixed_body(rng: random.Random, index: int, long: bool = False) -> dict:
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": f"request {index} " + "x" * rng.randint(0, 40)}],
            "max_tokens": 60 if long else rng.randint(1, 6), "ignore_eos": True, "stream": True,
            "return_token_ids": True, "stream_options": {"include_usage": True,
                                                         "continuous_usage_stats": rng.random() < 0.3}}
    choice = rng.randrange(4)
    if choice == 0:
        body.update(n=rng.randint(2, 3), temperature=1.0, seed=index)
    elif choice == 1:
        body.update(temperature=0, logprobs=True, top_logprobs=rng.randint(0, 3))
    elif choice == 2:
        body.update(temperature=0.7, top_p=0.9, stop=["zz", "q"])
    else:
        body.update(temperature=1.2, top_k=20, presence_penalty=0.5)
    return body


async def run_client(http: httpx.AsyncClient, body: dict, disconnect: bool) -> dict | None:
    """One streaming client; returns what it saw, or None if it hung up after two events."""
    seen = {"choices": {}, "usage": None, "done": False}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        events = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            events += 1
            if disconnect and events == 2:
                return None  # leaving the block closes the connection mid-stream
            data = line[len("data: "):]
            if data == "[DONE]":
                seen["done"] = True
                continue
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            if chunk.get("usage") and not chunk["choices"]:
                seen["usage"] = chunk["usage"]
            for choice in chunk["choices"]:
                state = seen["choices"].setdefault(choice["index"], {"role": 0, "ids": [], "finish": None})
                state["role"] += "role" in choice["delta"]
                state["ids"] += choice.get("token_ids") or []
                if choice["finish_reason"]:
                    assert state["finish"] is None, "one finish per choice"
                    state["finish"] = choice["finish_reason"]
    return seen


def check_stream(body: dict, seen: dict) -> None:
    n = body.get("n", 1)
    assert seen["done"] and sorted(seen["choices"]) == list(range(n))
    for state in seen["choices"].values():
        assert state["role"] == 1 and state["finish"] in ("length", "stop")
        if state["finish"] == "length":
            assert len(state["ids"]) == body["max_tokens"]
    assert seen["usage"]["completion_tokens"] == sum(len(s["ids"]) for s in seen["choices"].values())
    assert seen["usage"]["total_tokens"] == seen["usage"]["prompt_tokens"] + seen["usage"]["completion_tokens"]


async def run_load(url: str, disconnect_every: int | None) -> tuple[list, list]:
    rng = random.Random(0 if disconnect_every is None else 1)
    limits = httpx.Limits(max_connections=NUM_CLIENTS + 4, max_keepalive_connections=NUM_CLIENTS + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        plans = []
        for i in range(NUM_CLIENTS):
            leaves = disconnect_every is not None and i % disconnect_every == 0
            plans.append((mixed_body(rng, i, long=leaves), leaves))
        results = await asyncio.gather(*(run_client(http, body, leaves) for body, leaves in plans))
    return plans, results


@pytest.fixture(scope="module")
def load_server():
    with serve(engine_options={"num_kv_blocks": 512, "max_num_seqs": 128}, max_n=4) as running:
        yield running


def test_64_concurrent_streams_complete_and_free_every_block(load_server):
    plans, results = asyncio.run(run_load(load_server.url, None))
    for (body, _), seen in zip(plans, results):
        check_stream(body, seen)
    load_server.wait_idle()
    assert load_server.engine.engine.requests == {}
    free, total = load_server.free_blocks()
    assert free == total


def test_a_third_disconnecting_mid_stream_aborts_and_frees(load_server, monkeypatch):
    engine = load_server.engine.engine
    live_aborts = []
    original = engine.abort_request

    def counting_abort(request_ids):
        ids = [request_ids] if isinstance(request_ids, str) else list(request_ids)
        live_aborts.extend(i for i in ids if i in engine.requests)
        return original(request_ids)

    monkeypatch.setattr(engine, "abort_request", counting_abort)
    plans, results = asyncio.run(run_load(load_server.url, 3))
    leavers = sum(1 for _, leaves in plans if leaves)
    assert leavers == 22 and sum(r is None for r in results) == leavers
    for (body, leaves), seen in zip(plans, results):
        if not leaves:
            check_stream(body, seen)
    load_server.wait_idle()
    assert engine.requests == {}
    free, total = load_server.free_blocks()
    assert free == total
    assert live_aborts, "clients that hung up mid-stream must abort their running requests"


def test_a_non_streaming_client_that_hangs_up_aborts_its_request(load_server, monkeypatch):
    engine = load_server.engine.engine
    live_aborts = []
    original = engine.abort_request

    def counting_abort(request_ids):
        ids = [request_ids] if isinstance(request_ids, str) else list(request_ids)
        live_aborts.extend(i for i in ids if i in engine.requests)
        return original(request_ids)

    monkeypatch.setattr(engine, "abort_request", counting_abort)
    step = engine.step

    def slow_step():  # the tiny model is too quick to hang up on: 5 ms per step
        time.sleep(0.005)
        return step()

    monkeypatch.setattr(engine, "step", slow_step)
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}], "max_tokens": 100,
            "ignore_eos": True, "n": 4, "temperature": 1.0}
    with httpx.Client(base_url=load_server.url, timeout=httpx.Timeout(5, read=0.1)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json=body)
    load_server.wait_idle()
    assert engine.requests == {} and live_aborts
    free, total = load_server.free_blocks()
    assert free == total
