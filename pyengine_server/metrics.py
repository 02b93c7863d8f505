"""Prometheus metrics under vLLM's names, and vLLM's periodic stats log line.

    metrics = Metrics(async_engine, model_name="Qwen/Qwen2.5-0.5B-Instruct")
    engine = metrics.metered(async_engine)      # the engine the routes use: every request observed
    text, content_type = await metrics.exposition()   # GET /metrics

A dashboard built for vLLM reads these unchanged (each carries the label `model_name`, the
first served name):

| metric | kind | meaning |
|---|---|---|
| `vllm:num_requests_running` | gauge | requests the scheduler is running (sequences, for n > 1) |
| `vllm:num_requests_waiting` | gauge | requests waiting for KV blocks or a batch slot |
| `vllm:kv_cache_usage_perc` | gauge | share of KV blocks in use, 0 to 1 |
| `vllm:prefix_cache_queries_total` | counter | prompt tokens looked up in the prefix cache |
| `vllm:prefix_cache_hits_total` | counter | of those, tokens found cached |
| `vllm:prompt_tokens_total` | counter | prompt tokens of requests that started |
| `vllm:generation_tokens_total` | counter | tokens generated, all choices |
| `vllm:request_success_total` | counter | finished requests, label `finished_reason` (stop, length, abort, ...) |
| `vllm:time_to_first_token_seconds` | histogram | request arrival to its first generated token |
| `vllm:inter_token_latency_seconds` | histogram | time between a request's successive token steps |
| `vllm:e2e_request_latency_seconds` | histogram | request arrival to its last token |

The gauges are read from the engine (on its loop thread, between steps) at each scrape; the
counters and histograms are fed by `MeteredEngine`, which watches every request's stream of
outputs. A request whose client leaves before it ends counts as finished with reason "abort".

`log_stats_forever` writes vLLM's line every few seconds while the engine has work or did some
since the last line: prompt and generation throughput, running and waiting requests, KV cache
usage and the prefix cache hit rate over that interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pyengine import AsyncEngine, EngineStats, RequestOutput, RequestOutputKind

logger = logging.getLogger("pyengine_server.metrics")

# Bucket bounds (seconds) covering a CPU engine's range: from a fast tiny model to a slow long prompt.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)


class Metrics:
    """The metric families of one served model, in a registry of their own."""

    def __init__(self, engine: AsyncEngine, model_name: str):
        self.engine = engine
        self.model_name = model_name
        self.registry = CollectorRegistry()
        labels = ["model_name"]

        def counter(name: str, doc: str) -> Any:
            return Counter(name, doc, labels, registry=self.registry).labels(model_name)

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, labels, registry=self.registry).labels(model_name)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Any:
            return Histogram(name, doc, labels, buckets=buckets, registry=self.registry).labels(model_name)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prefix_queries = counter("vllm:prefix_cache_queries",
                                      "Prefix cache queries, in terms of number of queried tokens.")
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        self._success = Counter("vllm:request_success", "Count of successfully processed requests.",
                                ["model_name", "finished_reason"], registry=self.registry)
        self.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              TTFT_BUCKETS)
        self.itl = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             ITL_BUCKETS)
        self.e2e = histogram("vllm:e2e_request_latency_seconds",
                             "Histogram of e2e request latency in seconds.", E2E_BUCKETS)
        self._interval = _Interval()

    def request_finished(self, reason: str) -> None:
        self._success.labels(self.model_name, reason).inc()

    def metered(self, engine: AsyncEngine) -> "MeteredEngine":
        return MeteredEngine(engine, self)

    async def refresh_gauges(self) -> EngineStats:
        state = await self.engine.stats()
        self.running.set(state.running)
        self.waiting.set(state.waiting)
        self.kv_usage.set(state.kv_cache_usage)
        return state

    async def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format (gauges refreshed first) and its content type."""
        await self.refresh_gauges()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- the periodic log line ---------------------------------------------------------------------

    def _count(self, name: str) -> float:
        value = self.registry.get_sample_value(name, {"model_name": self.model_name})
        return value or 0.0

    async def log_stats_forever(self, interval: float = 5.0) -> None:
        """Every `interval` seconds while busy, log vLLM's one-line summary of the last interval."""
        self._interval.reset(self)
        while True:
            await asyncio.sleep(interval)
            if not self.engine.is_running:
                return
            state = await self.refresh_gauges()
            line = self._interval.line(self, state)
            if line is not None:
                logger.info(line)


class _Interval:
    """The counters at the start of the current log interval."""

    def reset(self, metrics: Metrics) -> None:
        self.time = time.monotonic()
        self.counts = {name: metrics._count(name) for name in _INTERVAL_COUNTERS}

    def line(self, metrics: Metrics, state: EngineStats) -> str | None:
        """The summary since the last reset (and reset), or None when nothing ran or waits."""
        start, before = self.time, self.counts
        self.reset(metrics)
        elapsed = max(self.time - start, 1e-9)
        prompt, generation, queries, hits = (self.counts[name] - before[name] for name in _INTERVAL_COUNTERS)
        if not (prompt or generation or state.running or state.waiting):
            return None
        hit_rate = 100.0 * hits / queries if queries else 0.0
        return (f"Avg prompt throughput: {prompt / elapsed:.1f} tokens/s, "
                f"Avg generation throughput: {generation / elapsed:.1f} tokens/s, "
                f"Running: {state.running} reqs, Waiting: {state.waiting} reqs, "
                f"KV cache usage: {100.0 * state.kv_cache_usage:.1f}%, Prefix cache hit rate: {hit_rate:.1f}%")


_INTERVAL_COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                      "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")


class MeteredEngine:
    """An AsyncEngine whose `generate` streams also feed the request metrics; all else is delegated."""

    def __init__(self, engine: AsyncEngine, metrics: Metrics):
        self._engine = engine
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def generate(self, request_id: str, prompt: Any, params: Any, **options: Any
                       ) -> AsyncIterator[RequestOutput]:
        """The engine's stream for this request, observed: token counts, latencies, finish reason."""
        m = self._metrics
        arrival = last = time.monotonic()
        seen = 0  # tokens generated so far, all choices
        delta = params.output_kind is RequestOutputKind.DELTA  # each output carries only its step's tokens
        started = finished = False
        try:
            async for output in self._engine.generate(request_id, prompt, params, **options):
                now = time.monotonic()
                if not started:
                    started = True
                    m.prompt_tokens.inc(len(output.prompt_token_ids))
                    m.prefix_queries.inc(len(output.prompt_token_ids))
                    m.prefix_hits.inc(output.num_cached_tokens)
                total = sum(len(c.token_ids) for c in output.outputs) + (seen if delta else 0)
                if total > seen:
                    (m.itl if seen else m.ttft).observe(now - (last if seen else arrival))
                    m.generation_tokens.inc(total - seen)
                    seen, last = total, now
                if output.finished:
                    finished = True
                    m.e2e.observe(now - arrival)
                    reasons = [c.finish_reason for c in output.outputs if c.finish_reason]
                    m.request_finished(reasons[0] if reasons else "stop")
                yield output
        finally:
            if not finished:
                m.request_finished("abort")
