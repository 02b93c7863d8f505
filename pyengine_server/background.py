"""Run the server in a background thread of this process: for notebooks, docs and tests.

    server = BackgroundServer.start(model="tests/fixtures/parity/qwen2", served_model_name="tiny")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    ...
    server.stop()

It is the same app and the same uvicorn settings that `pyengine serve` runs, bound to a free port
on 127.0.0.1; `stop()` is the same graceful shutdown, with `shutdown_timeout` (2 s by default)
for streams still running.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from pyengine import AsyncEngine, EngineConfig
from pyengine_server.app import build_app
from pyengine_server.cli import served_model_names
from pyengine_server.http_server import HEADER_TIMEOUT, GracefulServer, uvicorn_config
from pyengine_server.serving_chat import ServingConfig


class BackgroundServer:
    """A uvicorn server on 127.0.0.1:<free port> in a daemon thread; `url` is its base URL."""

    def __init__(self, engine: AsyncEngine, config: ServingConfig, api_key: str | None = None,
                 shutdown_timeout: float = 2.0, header_timeout: float = HEADER_TIMEOUT):
        self.engine = engine
        self.app = build_app(engine, config, api_key=api_key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = GracefulServer(uvicorn_config(self.app, log_level="warning", shutdown_timeout=shutdown_timeout,
                                                    header_timeout=header_timeout))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @classmethod
    def start(cls, model: str, served_model_name: str | None = None, api_key: str | None = None,
              serving: dict[str, Any] | None = None, **engine_options: Any) -> "BackgroundServer":
        """Load `model`, start serving it, and return once the server accepts connections."""
        engine = AsyncEngine(EngineConfig(model=model, **engine_options))
        names = served_model_names(model, [served_model_name] if served_model_name else None)
        config = ServingConfig(served_model_names=names, **(serving or {}))
        return cls(engine, config, api_key).run()

    def run(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving; the app's shutdown also stops the engine."""
        self.server.should_exit = True
        self.thread.join(timeout=self.server.config.timeout_graceful_shutdown + 10)
        self.sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
