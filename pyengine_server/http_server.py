"""uvicorn for this app: connection limits, a header-read timeout, and a graceful shutdown with a bound.

    server = GracefulServer(uvicorn_config(app, host="127.0.0.1", port=8000, shutdown_timeout=30))
    server.run()          # `pyengine serve` and BackgroundServer both run this

- Headers: at most `MAX_HEADER_BYTES` of request line and headers (h11's incomplete-event cap;
  the app answers 431 past `MAX_HEADERS` headers), and a client has `header_timeout` seconds
  from connecting, or from the end of its previous response, to send them whole; then the
  connection is closed. A request with both `Content-Length` and `Transfer-Encoding` is refused
  by h11 with a 400 and the connection closed.
- Shutdown (SIGTERM, SIGINT, or `should_exit`): uvicorn stops accepting and closes idle
  connections; chat requests arriving meanwhile get 503; streams still running after
  `shutdown_timeout` seconds get an error event and end; a connection still open a grace period
  later (a client that does not read) is cut; then the engine stops.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT = 30.0  # seconds to send a request's headers
SHUTDOWN_GRACE = 2.0  # seconds after the shutdown deadline for the last error events to go out


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                   root_path: str = "", shutdown_timeout: float = 30.0,
                   header_timeout: float = HEADER_TIMEOUT) -> uvicorn.Config:
    """The uvicorn settings `pyengine serve` runs with."""
    app.state.shutdown_timeout = shutdown_timeout
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, root_path=root_path,
                          http=_h11_with_header_timeout(header_timeout),
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                          timeout_graceful_shutdown=shutdown_timeout + SHUTDOWN_GRACE)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, telling the app when shutdown starts so streams end by the deadline."""

    async def shutdown(self, sockets: list | None = None) -> None:
        app = self.config.app
        state = getattr(app, "state", None)
        server = getattr(state, "server", None)
        if server is not None:
            server.chat.begin_shutdown(getattr(state, "shutdown_timeout", 30.0))
        await super().shutdown(sockets)


def _h11_with_header_timeout(timeout: float) -> type[H11Protocol]:
    class HeaderTimeoutProtocol(H11Protocol):
        """h11, closing connections that take longer than `timeout` to send a request's headers."""

        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_header_timer()

        def data_received(self, data: bytes) -> None:
            between_requests = self.cycle is None or self.cycle.response_complete
            if between_requests:
                self._start_header_timer()  # no-op when it is already running
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._stop_header_timer()  # a request's headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._stop_header_timer()  # uvicorn's keep-alive timeout covers the idle time

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _start_header_timer(self) -> None:
            if self.header_timer is None:
                self.header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def _stop_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _headers_too_slow(self) -> None:
            self.header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
