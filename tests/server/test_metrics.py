"""GET /metrics: vLLM's metric names, scraped around real requests; and the periodic stats line."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyengine import EngineConfig, SamplingParams
from pyengine.async_engine import AsyncEngine
from pyengine_server.metrics import Metrics

from .conftest import MODEL_NAME, QWEN2, chat_body, serve

LABEL = {"model_name": MODEL_NAME}


def scrape(http: httpx.Client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted({**LABEL, **labels}.items()))), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def metered():
    with serve(enable_prompt_tokens_details=True) as running:  # usage then reports cached tokens
        with httpx.Client(base_url=running.url, timeout=60) as http:
            yield running, http


def test_every_vllm_metric_is_exposed_with_the_model_name(metered):
    _, http = metered
    samples = scrape(http)
    names = {name for name, labels in samples if ("model_name", MODEL_NAME) in labels}
    for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:prompt_tokens_total",
                 "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_count",
                 "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_sum"]:
        assert name in names, name


def test_a_request_moves_the_token_counts_and_latency_histograms(metered):
    _, http = metered
    before = scrape(http)
    answer = http.post("/v1/chat/completions", json=chat_body(max_tokens=5, ignore_eos=True)).json()
    after = scrape(http)
    assert moved(before, after, "vllm:prompt_tokens_total") == answer["usage"]["prompt_tokens"]
    assert moved(before, after, "vllm:generation_tokens_total") == 5
    assert moved(before, after, "vllm:request_success_total", finished_reason="length") == 1
    assert moved(before, after, "vllm:time_to_first_token_seconds_count") == 1
    assert moved(before, after, "vllm:inter_token_latency_seconds_count") >= 1  # steps may carry several tokens
    assert moved(before, after, "vllm:e2e_request_latency_seconds_count") == 1
    assert moved(before, after, "vllm:e2e_request_latency_seconds_sum") >= \
        moved(before, after, "vllm:time_to_first_token_seconds_sum") > 0
    assert value(after, "vllm:num_requests_running") == 0 and value(after, "vllm:kv_cache_usage_perc") == 0


def test_n_choices_and_streaming_count_every_generated_token(metered):
    _, http = metered
    before = scrape(http)
    http.post("/v1/chat/completions", json=chat_body(max_tokens=3, n=3, ignore_eos=True, temperature=1.0))
    with http.stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=4, ignore_eos=True, stream=True)) as r:
        assert r.status_code == 200 and "[DONE]" in r.read().decode()
    after = scrape(http)
    assert moved(before, after, "vllm:generation_tokens_total") == 3 * 3 + 4
    assert moved(before, after, "vllm:request_success_total", finished_reason="length") == 2


def test_a_repeated_prompt_counts_prefix_cache_hits(metered):
    _, http = metered
    long_prompt = "the same prompt again " * 3  # over two 16-token blocks, within the 128-token context
    body = chat_body(messages=[{"role": "user", "content": long_prompt}], max_tokens=1)
    before = scrape(http)
    first = http.post("/v1/chat/completions", json=body).json()["usage"]
    second = http.post("/v1/chat/completions", json=body).json()["usage"]
    after = scrape(http)
    assert moved(before, after, "vllm:prefix_cache_queries_total") == first["prompt_tokens"] + second["prompt_tokens"]
    hits = moved(before, after, "vllm:prefix_cache_hits_total")
    cached = [(u["prompt_tokens_details"] or {}).get("cached_tokens", 0) for u in (first, second)]  # null: none
    assert hits == sum(cached) and cached[1] >= 16


def test_gauges_show_a_running_request_and_a_client_that_leaves_counts_as_abort(metered, monkeypatch):
    running, http = metered
    engine = running.engine.engine
    step = engine.step

    def slow_step():  # the tiny model finishes too quickly to be seen running: 20 ms per step
        time.sleep(0.02)
        return step()

    monkeypatch.setattr(engine, "step", slow_step)
    before = scrape(http)
    done = threading.Event()

    def leave_early():
        with httpx.Client(base_url=running.url, timeout=httpx.Timeout(5, read=1.0)) as other:
            with pytest.raises(httpx.ReadTimeout):
                other.post("/v1/chat/completions", json=chat_body(max_tokens=100, ignore_eos=True))
        done.set()

    thread = threading.Thread(target=leave_early)
    thread.start()
    time.sleep(0.4)
    during = scrape(http)
    thread.join()
    running.wait_idle()
    after = scrape(http)
    assert value(during, "vllm:num_requests_running") == 1 and value(during, "vllm:num_requests_waiting") == 0
    assert 0 < value(during, "vllm:kv_cache_usage_perc") < 1
    assert done.is_set() and moved(before, after, "vllm:request_success_total", finished_reason="abort") == 1
    assert value(after, "vllm:num_requests_running") == 0 and value(after, "vllm:kv_cache_usage_perc") == 0


def test_the_stats_line_is_logged_while_busy_and_not_when_idle(caplog):
    engine = AsyncEngine(EngineConfig(model=str(QWEN2), num_kv_blocks=64))
    metrics = Metrics(engine, "tiny")
    metered = metrics.metered(engine)
    step = engine.engine.step

    def slow_step():
        time.sleep(0.01)
        return step()

    engine.engine.step = slow_step

    async def run() -> None:
        logger = asyncio.create_task(metrics.log_stats_forever(interval=0.2))
        params = SamplingParams(max_tokens=60, ignore_eos=True)
        async for _ in metered.generate("r1", {"prompt_token_ids": [1, 2, 3, 4]}, params):
            pass
        await asyncio.sleep(0.5)  # idle intervals: no line
        logger.cancel()

    try:
        with caplog.at_level(logging.INFO, logger="pyengine_server.metrics"):
            asyncio.run(run())
    finally:
        engine.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name == "pyengine_server.metrics"]
    assert lines, "no stats line while a request ran"
    assert all(line.startswith("Avg prompt throughput: ") for line in lines)
    assert any("Running: 1 reqs, Waiting: 0 reqs" in line for line in lines)
    assert "Prefix cache hit rate: " in lines[0] and "KV cache usage: " in lines[0]
    generated = sum(float(line.split("Avg generation throughput: ")[1].split()[0]) for line in lines)
    assert generated > 0
    assert len(lines) <= 60 * 0.02 / 0.2 + 3  # nothing logged in the idle half second
