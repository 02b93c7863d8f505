"""The async engine's loop outlives a step that fails: the requests it holds end with the step's error,
their KV blocks are freed, and the next request is served. A Rust text kernel that panics (a bug) fails
this way, as `TextKernelError`, not as PyO3's `PanicException`, which would end the loop itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pyengine import AsyncEngine, EngineConfig, SamplingParams
from pyengine.output_processor import OutputProcessor
from pyengine.text.kernels import TextKernelError

LLAMA = "tests/fixtures/parity/llama"


def test_a_text_kernel_bug_fails_its_step_and_the_engine_goes_on(monkeypatch, caplog):
    process_token = OutputProcessor.process_token

    def failing(self, seq, token_id):
        if seq.request.request_id == "bad" and len(seq.output_token_ids) == 2:
            raise TextKernelError("internal error: a text kernel panicked: index out of bounds")
        process_token(self, seq, token_id)

    monkeypatch.setattr(OutputProcessor, "process_token", failing)
    engine = AsyncEngine(EngineConfig(model=LLAMA, num_kv_blocks=32, block_size=4))
    params = SamplingParams(max_tokens=4, temperature=0)

    async def last_output(request_id):
        async def outputs():
            return [output async for output in engine.generate(request_id, "Hello", params)]

        return (await asyncio.wait_for(outputs(), timeout=60))[-1]  # a dead loop would never answer

    async def main():
        with pytest.raises(RuntimeError, match="engine step failed: internal error: a text kernel panicked"):
            await last_output("bad")
        return await last_output("after")

    try:
        with caplog.at_level(logging.ERROR, logger="pyengine.async_engine"):
            after = asyncio.run(main())
        assert engine.is_running
    finally:
        engine.shutdown()
    assert after.finished and len(after.outputs[0].token_ids) == 4
    assert "engine step failed" in caplog.text
    assert engine.engine.blocks.num_free_blocks == 32 and not engine.engine.requests
    assert issubclass(TextKernelError, RuntimeError)
