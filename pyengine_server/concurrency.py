"""Keeping the event loop for I/O: CPU work on worker threads, and requests that follow their client.

    workers = Workers(max_workers=4, time_budget=60.0)
    watch = DisconnectWatch(http_request)            # after the body has been read
    try:
        job = await watch.guard(workers.run(prepare, body))   # ClientDisconnected if the client left
    finally:
        watch.stop()

`Workers.run` runs a blocking function (parse, validate, render, tokenize, compile a grammar) on a
small fixed pool of threads, so `/health` and running streams keep their pace whatever one request
carries. The tokenizer and the grammar compiler let other threads run while they work. A function
that runs past the time budget is answered 400; its thread finishes in the background, and the
pool's fixed size bounds how many such threads there can be.

`quiet_collector()`, around the server's life, keeps the objects alive at start-up (modules,
model, tokenizer: ~70k) out of the garbage collector's full collections. A full collection holds
the interpreter, every thread's, the event loop's included, for as long as it walks the tracked
objects, and a worker thread that builds a large grammar (10k properties: ~100k objects) sets
several off; without the start-up heap each walks little more than the grammar.

`DisconnectWatch.guard` races any awaitable against the client hanging up: whatever stage the
request is in (waiting for a worker, being prepared, queued in the engine, generating), the
awaitable is cancelled and `ClientDisconnected` raised, so the caller can abort the request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
from typing import Any, Awaitable, Callable, Iterator, TypeVar

from starlette.requests import Request

from pyengine_server.errors import APIError

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


def default_num_workers() -> int:
    """Enough threads to keep a few requests in preparation at once, never more than 8."""
    return max(2, min(8, os.cpu_count() or 2))


class Workers:
    """A bounded pool of threads for request preparation, tokenization and detokenization."""

    def __init__(self, max_workers: int | None = None, time_budget: float = 60.0):
        self.time_budget = time_budget
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers or default_num_workers(),
                                                          thread_name_prefix="pyengine-prepare")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a worker thread; its exceptions are raised here.

        Raises:
            APIError: 400 when it does not finish within the time budget.
        """
        future = asyncio.get_running_loop().run_in_executor(self.pool, function, *args)
        try:
            return await asyncio.wait_for(future, self.time_budget)
        except TimeoutError:
            raise APIError(f"preparing this request took longer than the server's budget of "
                           f"{self.time_budget:g} s; make it smaller (fewer or shorter messages, a "
                           "simpler schema or grammar)", 400) from None

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """While the server runs, the objects alive when it started are left out of every collection."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # collectable again once the server is gone (a process may start another)


class DisconnectWatch:
    """Notices when the client of one request goes away. Start it once the body has been read."""

    def __init__(self, request: Request):
        self.task = asyncio.ensure_future(_wait_for_disconnect(request))

    @property
    def disconnected(self) -> bool:
        return self.task.done() and not self.task.cancelled()

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """The awaitable's result, unless the client leaves first (then it is cancelled).

        Raises:
            ClientDisconnected: the client hung up before the awaitable finished.
        """
        work = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait({work, self.task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # this handler itself was cancelled: take the work down with it
            work.cancel()
            raise
        if work.done():
            return work.result()
        work.cancel()
        await asyncio.wait({work})  # let its cleanup (closing the engine stream) run now
        raise ClientDisconnected()

    def stop(self) -> None:
        """Stop listening (before a streaming response takes the connection over)."""
        self.task.cancel()


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
