"""A real uvicorn server on 127.0.0.1 (a free port) around a real engine, for the server tests.

The model is the tiny random-weight Qwen2 checkpoint (vocabulary of 300, ChatML template): its
text is random bytes, which is all a protocol test needs. Outputs are bounded with max_tokens.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from pyengine import EngineConfig
from pyengine.async_engine import AsyncEngine
from pyengine_server.background import BackgroundServer
from pyengine_server.serving_chat import ServingConfig

ROOT = Path(__file__).resolve().parents[2]
QWEN2 = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
MODEL_NAME = "qwen2-tiny"
NUM_KV_BLOCKS = 256


class RunningServer(BackgroundServer):
    """A background server plus the engine counters the tests read."""

    def free_blocks(self) -> tuple[int, int]:
        blocks = self.engine.engine.blocks
        return blocks.num_free_blocks, blocks.num_blocks

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the engine has no request left (aborts are applied between steps)."""
        deadline = time.monotonic() + timeout
        while self.engine.engine.requests and time.monotonic() < deadline:
            time.sleep(0.02)


@contextlib.contextmanager
def serve(api_key: str | None = None, engine_options: dict | None = None, **serving: Any) -> Iterator[RunningServer]:
    options = {"num_kv_blocks": NUM_KV_BLOCKS, "max_num_seqs": 64, **(engine_options or {})}
    engine = AsyncEngine(EngineConfig(model=str(QWEN2), **options))
    config = ServingConfig(served_model_names=[MODEL_NAME, "alias"], **serving)
    with RunningServer(engine, config, api_key).run() as running:
        yield running


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    with serve(max_n=8) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture
def client(server: RunningServer):
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def chat_body(**fields: Any) -> dict[str, Any]:
    """A small valid request; fields override."""
    body: dict[str, Any] = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Hello"}],
                            "max_tokens": 4}
    body.update(fields)
    return body
