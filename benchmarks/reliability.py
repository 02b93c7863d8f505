"""Reliability probes: can one client stall, outlive or break the server for every other client?

    python benchmarks/reliability.py            # every probe, a table of measurements (~1-2 min)
    python benchmarks/reliability.py --rounds 5 # more rounds of the 64-stream run

Each probe runs against a real uvicorn server (the demo model for the stall probes, for its real
tokenizer; the tiny Qwen2 test checkpoint for the rest), with engine steps slowed by a fixed
sleep so that streams last long enough to watch, and prints what a client sees:

- stall: while a heavy request is being handled (a 3 MB message, the same with
  `truncate_prompt_tokens`, a 2 MB `/tokenize`, a 10k-property JSON schema, 20k `bad_words`),
  the longest gap between chunks of a running stream and the slowest `/health` answer;
- queued abort: clients that give up while queued behind a full batch: did their requests reach
  prefill, and how long after the hang-up did the engine drop them;
- shutdown: `pyengine serve` (the demo model) in a subprocess, one client streaming and never reading, SIGTERM:
  seconds until the process exits, and its exit status;
- surrogates: `"a\\ud800b"` in the content, a tool name, `model`, `request_id` and `/tokenize`:
  the status codes, and whether any body names a Python exception;
- rounds: 64 streams per round with a third hanging up mid-stream: KV blocks free after each
  round, and the process RSS over the rounds.

Every probe is bounded in time; nothing here is a pass/fail check (tests/server/test_reliability.py
holds those).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyengine import EngineConfig  # noqa: E402
from pyengine.async_engine import AsyncEngine  # noqa: E402
from pyengine_server.background import BackgroundServer  # noqa: E402
from pyengine_server.serving_chat import ServingConfig  # noqa: E402
from tests.server.probes import (  # noqa: E402
    abandon_while_queued, never_reading_client, pace_during, rss_mib, sigterm, slow_steps, stream_round)
from tests.server.serve_command import pyengine_serve  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
DEMO_MODEL = ROOT / "pyengine" / "demo_model"  # the stall probes: a real tokenizer
NAME = "tiny"
STEP_SLEEP = 0.03  # seconds added to every engine step: a stream of 100 tokens lasts ~3 s


def start_server(step_sleep: float = STEP_SLEEP, model: Path = MODEL, **options: Any) -> BackgroundServer:
    engine_options = {"num_kv_blocks": 512, "max_num_seqs": 128, **options}
    engine = AsyncEngine(EngineConfig(model=str(model), **engine_options))
    slow_steps(engine, step_sleep)
    return BackgroundServer(engine, ServingConfig(served_model_names=[NAME], max_n=4)).run()


def body(content: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": NAME, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **fields}


# -- stall ------------------------------------------------------------------------------------------


def stall(url: str, path: str, payload: Any) -> dict[str, float]:
    """The heavy request's own time (a POST to `path`), and the worst stream gap and /health latency meanwhile."""
    stream = body("x", max_tokens=100, ignore_eos=True, stream=True)
    response, seconds, (gap, health), _ = asyncio.run(pace_during(url, path, payload, stream, timeout=600))
    return {"status": response.status_code, "heavy_s": seconds, "max_gap_s": gap, "max_health_s": health}


def schema_with_properties(count: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(count)}}


def stall_probes(url: str) -> list[tuple[str, dict[str, float]]]:
    big = "hello world " * 250_000  # 3 MB
    probes = [
        ("3 MB message", "/v1/chat/completions", body(big)),
        ("3 MB message, truncate_prompt_tokens", "/v1/chat/completions",
         body(big, truncate_prompt_tokens=32)),
        ("2 MB /tokenize", "/tokenize", {"model": NAME, "prompt": big[:2_000_000]}),
        ("10k-property JSON schema", "/v1/chat/completions",
         body(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema_with_properties(10_000)}})),
        ("20k bad_words", "/v1/chat/completions", body(bad_words=[f"w{i}x" for i in range(20_000)])),
    ]
    return [(name, stall(url, *probe)) for name, *probe in probes]


# -- abort while queued -----------------------------------------------------------------------------


def queued_abort(server: BackgroundServer, num_waiting: int = 6) -> dict[str, float]:
    """One request fills the batch; others queue behind it, and their clients give up."""
    seen = asyncio.run(abandon_while_queued(server.url, server.engine, body(max_tokens=100, ignore_eos=True),
                                            [body(f"q{i}") for i in range(num_waiting)]))
    return {"waiting": num_waiting, "prefilled": len(seen.stepped - {seen.blocker_id}), "drop_s": seen.drop_s}


# -- shutdown ---------------------------------------------------------------------------------------


def shutdown_probe(limit: float = 45.0, extra: list[str] | None = None) -> dict[str, float]:
    """SIGTERM while a client streams and never reads; seconds until the process exits."""
    args = ["--served-model-name", NAME, "--log-level", "warning", *(extra or [])]  # the demo model
    with pyengine_serve(args) as (url, process):
        # ~15 MB of events over several seconds (16 choices, 20 top logprobs per token): far more
        # than the socket buffers hold
        sock = never_reading_client(url, body("x", max_tokens=400, ignore_eos=True, stream=True, n=16, logprobs=True,
                                              top_logprobs=20))
        time.sleep(1.0)  # the stream is running and this client reads nothing
        elapsed, code = sigterm(process, limit)
        sock.close()
    return {"exit_s": elapsed, "exit_code": code if code is not None else float("nan")}


# -- surrogates -------------------------------------------------------------------------------------


def surrogate_probes(url: str) -> list[tuple[str, int | str, bool]]:
    """(where, status, whether the body names a Python exception) for a lone surrogate in each place."""
    lone = "a\\ud800b"
    tool = {"type": "function", "function": {"name": "NAME", "parameters": {"type": "object"}}}
    cases = {
        "content": json.dumps(body("CONTENT")).replace("CONTENT", lone),
        "tool name": json.dumps(body(tools=[tool])).replace("NAME", lone),
        "model": json.dumps(body()).replace(NAME, lone),
        "request_id": json.dumps(body(request_id="RID")).replace("RID", lone),
    }
    results = []
    with httpx.Client(base_url=url, timeout=60) as http:
        cases["/tokenize"] = json.dumps({"model": NAME, "prompt": "P"}).replace('"P"', f'"{lone}"')
        for where, raw in cases.items():
            path = "/tokenize" if where == "/tokenize" else "/v1/chat/completions"
            try:
                response = http.post(path, content=raw, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:  # the server dropped the connection
                results.append((where, type(exc).__name__, False))
                continue
            results.append((where, response.status_code, "Error:" in response.text or "Exception" in response.text))
    return results


# -- rounds of 64 streams ---------------------------------------------------------------------------


def rounds_probe(server: BackgroundServer, rounds: int) -> list[tuple[int, int, int, float]]:
    """(round, streams completed, KV blocks not free after the round, RSS MiB) per round."""
    out = []
    blocks = server.engine.engine.blocks
    for index in range(rounds):
        rng = random.Random(index)
        requests = [body(f"round {index} client {i}", max_tokens=rng.randint(4, 40), ignore_eos=True, stream=True)
                    for i in range(64)]
        completed = asyncio.run(stream_round(server.url, requests))
        deadline = time.monotonic() + 10
        while server.engine.engine.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        out.append((index, completed, blocks.num_blocks - blocks.num_free_blocks, rss_mib()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shutdown-limit", type=float, default=45.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["stall", "queued", "shutdown", "surrogates", "rounds"])
    args = parser.parse_args(argv)
    if "stall" not in args.skip:
        with start_server(step_sleep=0.01, model=DEMO_MODEL) as server:
            print(f"{'stall probe':40s} {'status':>6s} {'heavy s':>8s} {'max gap s':>10s} {'max /health s':>14s}")
            for name, row in stall_probes(server.url):
                print(f"{name:40s} {row['status']:6d} {row['heavy_s']:8.2f} {row['max_gap_s']:10.3f} "
                      f"{row['max_health_s']:14.3f}", flush=True)
    if "queued" not in args.skip:
        with start_server(step_sleep=0.02, max_num_seqs=1) as server:
            row = queued_abort(server)
            print(f"queued clients that gave up: {row['waiting']}, reached prefill: {row['prefilled']}, "
                  f"dropped by the engine {row['drop_s']:.3f} s after the last hang-up", flush=True)
    if "shutdown" not in args.skip:
        row = shutdown_probe(args.shutdown_limit)
        print(f"SIGTERM with a client not reading: exited after {row['exit_s']:.2f} s, status {row['exit_code']}",
              flush=True)
    if "surrogates" not in args.skip:
        with start_server(step_sleep=0.0) as server:
            for where, status, leaks in surrogate_probes(server.url):
                print(f"lone surrogate in {where:12s}: {status}{'  (body names an exception)' if leaks else ''}")
    if "rounds" not in args.skip:
        with start_server(step_sleep=0.002) as server:
            for index, completed, held, rss in rounds_probe(server, args.rounds):
                print(f"round {index}: {completed}/64 streams ran to the end, {held} KV blocks held, RSS {rss:.0f} MiB",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
