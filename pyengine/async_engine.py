"""The async engine: the main loop on a background thread, one async stream per request.

    engine = AsyncEngine(EngineConfig(model=...))
    async for output in engine.generate("r1", prompt, params):   # a RequestOutput per step
        ...

Each output is what `params.output_kind` asks for: the whole request so far (CUMULATIVE, the
default), or only what the step added (DELTA, what a streaming server wants: no step copies a
whole output), or one output at the end (FINAL_ONLY).

The loop thread owns the `Engine` (which is not thread-safe): requests, aborts and their
answers cross over through a command queue and `call_soon_threadsafe`. A request is built
(`Engine.build_request`: token ids, grammar matchers) on a worker thread and only queued on
the loop thread, so one request with a large grammar does not hold up every other's steps. Numpy releases the GIL
inside its kernels, so the event loop keeps serving HTTP while a step computes.

Cancelling the consumer (a client that disconnects) aborts the request and frees its blocks.
A request whose parameters are invalid fails in `generate` with the engine's ValueError; an
internal error in a step fails the requests of that step and the loop carries on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from typing import Any, AsyncIterator, Callable

from pyengine.backend.cpu_tuning import tune_process_for
from pyengine.beam_requests import beam_search_requests
from pyengine.engine import Engine
from pyengine.engine_config import EngineConfig
from pyengine.model_info import EngineStats, ModelInfo
from pyengine.outputs import RequestOutput
from pyengine.sampling import SamplingParams
from pyengine.sampling.nested_params import StructuredOutputsParams

logger = logging.getLogger(__name__)


class EngineDeadError(RuntimeError):
    """The engine loop has stopped; no request can be served."""


class AsyncEngine:
    """Runs `Engine.step()` in a background thread and streams outputs to asyncio consumers."""

    def __init__(self, config: EngineConfig | None = None, engine: Engine | None = None):
        if engine is None:  # this process's engine: tune the process for it
            engine = Engine(config)
            tune_process_for(engine)
        self.engine = engine
        self.model_info = ModelInfo.of(engine)  # read once: what a server needs to know of the model
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pyengine-engine-loop", daemon=True)
        self._thread.start()

    # -- public API (called from the event loop) ---------------------------------------------------

    async def generate(self, request_id: str, prompt: Any, params: SamplingParams,
                       priority: int = 0, cache_salt: str | None = None) -> AsyncIterator[RequestOutput]:
        """Add a request and yield its RequestOutput after every step that advances it."""
        if params.use_beam_search:
            yield await self._beam_search(request_id, prompt, params, priority, cache_salt)
            return
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()
        # Built on a worker thread (a large grammar's matchers take seconds), queued between steps.
        request = await asyncio.to_thread(self.engine.build_request, request_id, prompt, params, priority, cache_salt)
        await self._call(lambda: self._add(request, loop, outputs))
        finished = False
        try:
            while True:
                item = await outputs.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
                if item.finished:
                    finished = True
                    return
        finally:
            if not finished:  # the consumer went away (disconnect, cancellation): free its blocks
                self.abort(request_id)

    async def _beam_search(self, request_id: str, prompt: Any, params: SamplingParams, priority: int,
                           cache_salt: str | None) -> RequestOutput:
        """Beam search (pyengine/beam_requests.py), each step's requests run concurrently on this engine."""
        text, prompt_ids = await self._call(lambda: self.engine.prompt_ids(prompt, params))
        counter = itertools.count()

        async def last_output(seq: list[int], step: SamplingParams) -> RequestOutput:
            final = None
            async for final in self.generate(f"{request_id}-beam-{next(counter)}", {"prompt_token_ids": seq},
                                             step, priority=priority, cache_salt=cache_salt):
                pass
            return final

        driver = beam_search_requests(request_id, text, prompt_ids, params, self.engine)
        sequences, step = next(driver)
        while True:
            outputs = list(await asyncio.gather(*(last_output(seq, step) for seq in sequences)))
            try:
                sequences, step = driver.send(outputs)
            except StopIteration as done:
                return done.value

    def abort(self, request_id: str, error: BaseException | None = None) -> None:
        """Drop the request and free its blocks between steps; `error`, if given, is raised to its consumer."""
        self._commands.put(lambda: self._abort(request_id, error))

    async def stats(self) -> EngineStats:
        """Running and waiting requests and the KV cache in use, read on the loop thread between steps."""
        return await self._call(lambda: EngineStats.of(self.engine))

    def compile_structured_outputs(self, structured_outputs: StructuredOutputsParams) -> StructuredOutputsParams:
        """`Engine.compile_structured_outputs`: check and compile a constraint now, on the caller's thread
        (compiling reads no engine state but the grammar cache). Raises ValueError."""
        return self.engine.compile_structured_outputs(structured_outputs)

    def shutdown(self) -> None:
        self._stopping.set()
        self._commands.put(lambda: None)  # wake the loop
        self._thread.join(timeout=10)

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    # -- the loop thread ---------------------------------------------------------------------------

    async def _call(self, function: Callable[[], Any]) -> Any:
        if not self.is_running:
            raise EngineDeadError("the engine loop is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def run() -> None:
            try:
                result = function()
            except BaseException as exc:  # noqa: BLE001  (hand every error back to the caller)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        self._commands.put(run)
        return await future

    def _add(self, request: Any, loop: asyncio.AbstractEventLoop, outputs: asyncio.Queue) -> None:
        self.engine.add_built_request(request)
        self._streams[request.request_id] = (loop, outputs)

    def _abort(self, request_id: str, error: BaseException | None = None) -> None:
        self.engine.abort_request(request_id)
        if error is not None:
            self._deliver(request_id, error)
        self._streams.pop(request_id, None)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            block = not self.engine.has_unfinished_requests()
            try:
                while True:  # apply every queued command; wait for one only when idle
                    command = self._commands.get(block=block, timeout=0.5 if block else None)
                    command()
                    block = False
            except queue.Empty:
                pass
            if self._stopping.is_set() or not self.engine.has_unfinished_requests():
                continue
            try:
                outputs = self.engine.step()
            except Exception as exc:  # noqa: BLE001  (one bad step must not kill the server)
                logger.exception("engine step failed; failing its requests")
                self._fail_all(exc)
                continue
            for output in outputs:
                self._deliver(output.request_id, output)
                if output.finished:
                    self._streams.pop(output.request_id, None)

    def _deliver(self, request_id: str, item: Any) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            loop, outputs = stream
            loop.call_soon_threadsafe(outputs.put_nowait, item)

    def _fail_all(self, exc: Exception) -> None:
        request_ids = list(self.engine.requests)
        self.engine.abort_request(request_ids)
        for request_id in request_ids:
            self._deliver(request_id, RuntimeError(f"engine step failed: {exc}"))
            self._streams.pop(request_id, None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


__all__ = ["AsyncEngine", "EngineConfig", "EngineDeadError"]
