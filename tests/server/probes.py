"""What a client measures of a live server: the reliability tests' checks and benchmarks/reliability.py's
table both come from these.

- `slow_steps`: every engine step sleeps first, so that streams last long enough to watch;
- `pace_during`: the longest gap of a running stream and the slowest /health answer while one
  heavy request is handled (and in a quiet window before it);
- `abandon_while_queued`: clients that give up while queued behind a full batch: which requests
  an engine step ever saw, and how long the engine kept the abandoned ones;
- `never_reading_client` and `sigterm`: a stream nobody reads, and how long the process takes to
  exit after SIGTERM;
- `stream_round`: many streams at once, every third client hanging up mid-stream;
- `rss_mib`: this process's resident memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import socket
import subprocess
import time
from typing import Any

import httpx

from pyengine.async_engine import AsyncEngine


def slow_steps(engine: AsyncEngine, seconds: float) -> None:
    """Every step of `engine` sleeps `seconds` before it runs."""
    step = engine.engine.step

    def slow_step():
        time.sleep(seconds)
        return step()

    engine.engine.step = slow_step


def worst(arrivals: list[float], health: list[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    """The longest gap between stream events and the slowest /health answer in [start, end]."""
    points = [start] + [t for t in arrivals if start < t < end] + [min(t for t in arrivals if t >= end)]
    gap = max(b - a for a, b in zip(points, points[1:]))
    return gap, max((latency for t, latency in health if start <= t <= end), default=0.0)


async def pace_during(url: str, path: str, payload: Any, stream_request: dict[str, Any], quiet: float = 0.0,
                      timeout: float = 300) -> tuple[httpx.Response, float, tuple[float, float], tuple[float, float]]:
    """(heavy response, its seconds, (gap, /health) while it ran, (gap, /health) in a quiet window before).

    `stream_request` (a streaming chat request) runs again and again meanwhile (the one still
    running at the end is hung up on), and /health is polled every 50 ms. The quiet window,
    `quiet` seconds without the heavy request, measures what a loaded machine does to a stream on
    its own: a request prepared on the event loop adds its whole preparation time to the gap, one
    prepared on a worker thread adds nothing.
    """
    arrivals: list[float] = []
    health: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def stream(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            async with http.stream("POST", "/v1/chat/completions", json=stream_request) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        arrivals.append(time.monotonic())

    async def poll(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            start = time.monotonic()
            assert (await http.get("/health")).status_code == 200
            health.append((start, time.monotonic() - start))
            await asyncio.sleep(0.05)

    raw = json.dumps(payload).encode()  # serialized before the clock starts: this process is the client too
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        tasks = [asyncio.create_task(stream(http)), asyncio.create_task(poll(http))]
        while len(arrivals) < 5:
            await asyncio.sleep(0.01)
        quiet_start = time.monotonic()
        await asyncio.sleep(quiet)
        start = time.monotonic()
        response = await http.post(path, content=raw, headers={"Content-Type": "application/json"})
        end = time.monotonic()
        stop.set()
        while not any(t >= end for t in arrivals) and not tasks[0].done():  # the gap running past `end`
            await asyncio.sleep(0.01)
        tasks[0].cancel()  # a stream still running is hung up on, not waited for
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                raise result
    return response, end - start, worst(arrivals, health, start, end), worst(arrivals, health, quiet_start, start)


@dataclasses.dataclass
class Abandoned:
    """What `abandon_while_queued` saw."""

    stepped: set[str]  # the request ids an engine step returned output for
    blocker_id: str
    blocker: httpx.Response
    gave_up: list[Any]  # per quitting client: the exception it got (or a response, had it been served)
    drop_s: float  # from the last hang-up until the engine held only the blocker (at most `wait`)


async def abandon_while_queued(url: str, engine: AsyncEngine, blocker: dict[str, Any], quitters: list[dict[str, Any]],
                               wait: float = 30.0) -> Abandoned:
    """`blocker` fills the batch (an engine with max_num_seqs=1); the `quitters` queue behind it,
    and their clients give up after 0.5 s without an answer."""
    core = engine.engine
    stepped: set[str] = set()
    step = core.step

    def recording_step():
        outputs = step()
        stepped.update(output.request_id for output in outputs)
        return outputs

    core.step = recording_step
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            first = asyncio.create_task(http.post("/v1/chat/completions", json=blocker))
            while not core.requests:
                await asyncio.sleep(0.01)
            blocker_id = next(iter(core.requests))
            async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=0.5)) as quitting:
                gave_up = await asyncio.gather(*(quitting.post("/v1/chat/completions", json=request)
                                                 for request in quitters), return_exceptions=True)
            left = time.monotonic()
            while len(core.requests) > 1 and time.monotonic() - left < wait:
                await asyncio.sleep(0.005)
            dropped = time.monotonic() - left
            return Abandoned(stepped, blocker_id, await first, list(gave_up), dropped)
    finally:
        core.step = step


def never_reading_client(url: str, request: dict[str, Any]) -> socket.socket:
    """POSTs `request` to `url`'s /v1/chat/completions and reads nothing (a 4 KiB receive buffer):
    a long stream to it soon fills every socket buffer. The caller closes the socket."""
    payload = json.dumps(request).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", httpx.URL(url).port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    return sock


def sigterm(process: subprocess.Popen, limit: float) -> tuple[float, int | None]:
    """SIGTERM to `process`: (seconds until it exited, its exit status); the status is None when it
    still runs after `limit` seconds."""
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code: int | None = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        code = None
    return time.monotonic() - start, code


async def stream_round(url: str, requests: list[dict[str, Any]]) -> int:
    """Streams every request at once; clients 0, 3, 6... hang up after two events. How many
    streams ran to `data: [DONE]`."""

    async def client(http: httpx.AsyncClient, index: int, request: dict[str, Any]) -> bool:
        async with http.stream("POST", "/v1/chat/completions", json=request) as response:
            events = 0
            async for line in response.aiter_lines():
                events += line.startswith("data: ")
                if index % 3 == 0 and events == 2:
                    return False  # hangs up mid-stream
                if line == "data: [DONE]":
                    return True
        return False

    limits = httpx.Limits(max_connections=len(requests) + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        return sum(await asyncio.gather(*(client(http, i, r) for i, r in enumerate(requests))))


def rss_mib() -> float:
    """This process's resident memory, MiB (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
