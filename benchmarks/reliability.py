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
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyengine import EngineConfig  # noqa: E402
from pyengine.async_engine import AsyncEngine  # noqa: E402
from server.background import BackgroundServer  # noqa: E402
from server.serving_chat import ServingConfig  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
DEMO_MODEL = ROOT / "pyengine" / "demo_model"  # the stall probes: a real tokenizer
NAME = "tiny"
STEP_SLEEP = 0.03  # seconds added to every engine step: a stream of 100 tokens lasts ~3 s


def start_server(step_sleep: float = STEP_SLEEP, model: Path = MODEL, **options: Any) -> BackgroundServer:
    engine_options = {"num_kv_blocks": 512, "max_num_seqs": 128, **options}
    engine = AsyncEngine(EngineConfig(model=str(model), **engine_options))
    step = engine.engine.step

    def slow_step():
        time.sleep(step_sleep)
        return step()

    engine.engine.step = slow_step
    return BackgroundServer(engine, ServingConfig(served_model_names=[NAME], max_n=4)).run()


def body(content: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": NAME, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **fields}


# -- stall ------------------------------------------------------------------------------------------


async def watch_stream(http: httpx.AsyncClient, arrivals: list[float], stop: asyncio.Event) -> None:
    """Streams, one after another until `stop`, noting when each event arrives."""
    while not stop.is_set():
        request = body("x", max_tokens=100, ignore_eos=True, stream=True)
        async with http.stream("POST", "/v1/chat/completions", json=request) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.monotonic())


async def poll_health(http: httpx.AsyncClient, latencies: list[tuple[float, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        await http.get("/health")
        latencies.append((start, time.monotonic() - start))
        await asyncio.sleep(0.05)


async def stall(url: str, method: str, path: str, payload: Any) -> dict[str, float]:
    """The heavy request's own time, and the worst stream gap and /health latency meanwhile."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        arrivals: list[float] = []
        latencies: list[tuple[float, float]] = []
        stop = asyncio.Event()
        stream = asyncio.create_task(watch_stream(http, arrivals, stop))
        health = asyncio.create_task(poll_health(http, latencies, stop))
        while len(arrivals) < 5:
            await asyncio.sleep(0.01)
        raw = json.dumps(payload).encode()  # serialized before the clock starts: this process is the client too
        start = time.monotonic()
        response = await http.request(method, path, content=raw, headers={"Content-Type": "application/json"})
        end = time.monotonic()
        stop.set()
        await asyncio.gather(stream, health)
    window = [start] + [t for t in arrivals if start < t < end] + [min(t for t in arrivals if t >= end)]
    gaps = [b - a for a, b in zip(window, window[1:])]
    return {"status": response.status_code, "heavy_s": end - start, "max_gap_s": max(gaps),
            "max_health_s": max((lat for t, lat in latencies if start - 0.05 <= t <= end), default=0.0)}


def schema_with_properties(count: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(count)}}


def stall_probes(url: str) -> list[tuple[str, dict[str, float]]]:
    big = "hello world " * 250_000  # 3 MB
    probes = [
        ("3 MB message", "POST", "/v1/chat/completions", body(big)),
        ("3 MB message, truncate_prompt_tokens", "POST", "/v1/chat/completions",
         body(big, truncate_prompt_tokens=32)),
        ("2 MB /tokenize", "POST", "/tokenize", {"model": NAME, "prompt": big[:2_000_000]}),
        ("10k-property JSON schema", "POST", "/v1/chat/completions",
         body(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema_with_properties(10_000)}})),
        ("20k bad_words", "POST", "/v1/chat/completions", body(bad_words=[f"w{i}x" for i in range(20_000)])),
    ]
    return [(name, asyncio.run(stall(url, *probe))) for name, *probe in probes]


# -- abort while queued -----------------------------------------------------------------------------


def queued_abort(server: BackgroundServer, num_waiting: int = 6) -> dict[str, float]:
    """One request fills the batch; others queue behind it, and their clients give up."""
    engine = server.engine.engine
    prefilled: set[str] = set()
    step = engine.step

    def recording_step():
        outputs = step()
        prefilled.update(o.request_id for o in outputs)
        return outputs

    engine.step = recording_step

    async def run() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            blocker = asyncio.create_task(http.post("/v1/chat/completions", json=body(max_tokens=100, ignore_eos=True)))
            while not engine.requests:
                await asyncio.sleep(0.01)
            blocker_id = next(iter(engine.requests))
            async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(30, read=0.5)) as quitter:
                waiting = [asyncio.create_task(quitter.post("/v1/chat/completions", json=body(f"q{i}")))
                           for i in range(num_waiting)]
                await asyncio.gather(*waiting, return_exceptions=True)
            gave_up = time.monotonic()
            while len(engine.requests) > 1 and time.monotonic() - gave_up < 30:
                await asyncio.sleep(0.005)
            dropped = time.monotonic() - gave_up
            await blocker
        return {"waiting": num_waiting, "prefilled": len(prefilled - {blocker_id}), "drop_s": dropped}

    try:
        return asyncio.run(run())
    finally:
        engine.step = step


# -- shutdown ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shutdown_probe(limit: float = 45.0, extra: list[str] | None = None) -> dict[str, float]:
    """SIGTERM while a client streams and never reads; seconds until the process exits."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port),  # the demo model
                                "--served-model-name", NAME, "--log-level", "warning", *(extra or [])],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start")
        # ~15 MB of events over several seconds (16 choices, 20 top logprobs per token): far more
        # than the socket buffers hold
        request = json.dumps(body("x", max_tokens=400, ignore_eos=True, stream=True, n=16, logprobs=True,
                                  top_logprobs=20)).encode()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(request) + request)
        time.sleep(1.0)  # the stream is running and this client reads nothing
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - start
        sock.close()
        return {"exit_s": elapsed, "exit_code": code if code is not None else float("nan")}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


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


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def one_round(url: str, seed: int, num_streams: int = 64) -> int:
    rng = random.Random(seed)

    async def client(http: httpx.AsyncClient, index: int) -> bool:
        leaves = index % 3 == 0
        request = body(f"round {seed} client {index}", max_tokens=rng.randint(4, 40), ignore_eos=True, stream=True)
        async with http.stream("POST", "/v1/chat/completions", json=request) as response:
            events, done = 0, False
            async for line in response.aiter_lines():
                events += line.startswith("data: ")
                done = done or line == "data: [DONE]"
                if leaves and events == 2:
                    return False
            return done

    limits = httpx.Limits(max_connections=num_streams + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        results = await asyncio.gather(*(client(http, i) for i in range(num_streams)))
    return sum(results)


def rounds_probe(server: BackgroundServer, rounds: int) -> list[tuple[int, int, int, float]]:
    """(round, streams completed, KV blocks not free after the round, RSS MiB) per round."""
    out = []
    blocks = server.engine.engine.blocks
    for index in range(rounds):
        completed = asyncio.run(one_round(server.url, index))
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
