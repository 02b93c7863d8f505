"""The Starlette application: routes, API-key check, and the error handlers.

    app = build_app(AsyncEngine(EngineConfig(model=...)), ServingConfig(served_model_names=["m"]))
    uvicorn.run(app)          # or: pyengine serve --model PATH

Routes (vLLM's paths and shapes): `POST /v1/chat/completions` (with or without the trailing
slash the spec shows), `POST /invocations` (SageMaker's route: the same handler), `POST
/v1/completions` (text completions), `GET /v1/models`, `GET /health`, `GET /version`, `POST
/tokenize`, `POST /detokenize`, `GET /openapi.json`, and `GET /metrics` (Prometheus, vLLM's
metric names: pyengine_server/metrics.py).

With an API key set, every `/v1` path and `/invocations` need exactly `Authorization: Bearer
<key>` (compared in constant time); the others stay open, as in vLLM. Errors leave as JSON: 422
`{"detail": [...]}` for bodies that do not fit the schema, `{"error": {...}}` for the rest; an
unexpected exception is logged with a request id and answered 500 with a generic message, never
200 and never with the exception's text.

Bodies are capped (`max_request_body_bytes`: 413 before the body is read whole); requests with
more than `MAX_HEADERS` headers get 431, and those with both Content-Length and
Transfer-Encoding 400, each closing the connection. Every handler leaves parsing, tokenization
and detokenization to the worker threads (pyengine_server/concurrency.py): the event loop only does I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import pyengine
from pyengine import AsyncEngine
from pyengine_server.concurrency import ClientDisconnected, quiet_collector
from pyengine_server.errors import APIError, RequestValidationError, validation_error
from pyengine_server.limits import decode_json, log_safe
from pyengine_server.metrics import Metrics
from pyengine_server.openapi import openapi_document
from pyengine_server.prompt import render
from pyengine_server.protocol import ChatCompletionRequest, DetokenizeRequest, TokenizeChatRequest, TokenizeCompletionRequest
from pyengine_server.serving_chat import ChatService, ServingConfig
from pyengine_server.serving_completion import CompletionService

logger = logging.getLogger("pyengine_server")
MAX_HEADERS = 256  # vLLM's cap on the number of request headers


class Server:
    """Holds the engine and the services; its methods are the route handlers."""

    def __init__(self, engine: AsyncEngine, config: ServingConfig, api_key: str | None = None,
                 model_path: str | None = None):
        self.engine = engine
        self.config = config
        self.chat = ChatService(engine, config)
        self.completion = CompletionService(self.chat)
        self.api_key = api_key
        self.model_path = model_path or engine.model_info.model
        self.created = int(time.time())

    # -- helpers -----------------------------------------------------------------------------------

    def check_api_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")  # exactly one space, no padding around the key
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.api_key.encode()):
            raise APIError("Unauthorized: a valid API key is required (Authorization: Bearer <key>)", 401,
                           headers={"WWW-Authenticate": "Bearer"})

    def check_model(self, name: str | None) -> None:
        """404 for a name we do not serve; absent, null or "" means the served model."""
        if name and name not in self.config.served_model_names:
            raise APIError(f"The model `{name}` does not exist.", 404, "model")

    async def json_body(self, request: Request) -> bytes:
        """The raw JSON body (decoded later, on a worker thread); 413 as soon as it passes the cap."""
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise RequestValidationError([{"loc": ["body"], "msg": f"Content-Type must be application/json, "
                                           f"got {content_type!r}", "type": "model_attributes_type"}])
        cap = self.config.max_request_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(cap)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _too_large(cap)
            chunks.append(chunk)
        return b"".join(chunks)

    # -- routes ------------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        self.check_api_key(request)
        return await self.chat.create(await self.json_body(request), request)

    async def completions(self, request: Request) -> Response:
        self.check_api_key(request)
        return await self.completion.create(await self.json_body(request), request)

    async def models(self, request: Request) -> Response:
        self.check_api_key(request)
        data = [{
            "id": name, "object": "model", "created": self.created, "owned_by": "pyengine",
            "root": self.model_path, "parent": None, "max_model_len": self.chat.max_model_len,
            "permission": [{"id": f"modelperm-{name}", "object": "model_permission", "created": self.created,
                            "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                            "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                            "organization": "*", "group": None, "is_blocking": False}],
        } for name in self.config.served_model_names]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return Response(status_code=200 if self.engine.is_running else 503)

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": pyengine.__version__})

    async def tokenize(self, request: Request) -> Response:
        return _json_bytes(await self.chat.workers.run(self._tokenize, await self.json_body(request)))

    async def detokenize(self, request: Request) -> Response:
        return _json_bytes(await self.chat.workers.run(self._detokenize, await self.json_body(request)))

    def _tokenize(self, raw: bytes) -> bytes:
        body = decode_json(raw)
        tokenizer = self.chat.tokenizer
        try:
            if isinstance(body, dict) and "messages" in body:
                parsed: Any = TokenizeChatRequest.model_validate(body)
            else:
                parsed = TokenizeCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        self.check_model(parsed.model)
        if isinstance(parsed, TokenizeChatRequest):
            try:  # extra fields the tokenize schema lets through must still fit a chat request
                chat = ChatCompletionRequest.model_validate(
                    parsed.model_dump(exclude_unset=True, exclude={"return_token_strs"}, by_alias=True))
            except ValidationError as exc:
                raise validation_error(exc) from None
            tools = [t.model_dump(mode="json", exclude_none=True) for t in parsed.tools or []] or None
            ids = render(chat, tokenizer, tools, self.config.chat_template,
                         self.config.trust_request_chat_template).token_ids
        else:
            ids = tokenizer.encode(parsed.prompt, add_special_tokens=parsed.add_special_tokens)
        strs = tokenizer.convert_ids_to_tokens(ids) if parsed.return_token_strs else None
        return _dumps({"count": len(ids), "max_model_len": self.chat.max_model_len, "tokens": ids, "token_strs": strs})

    def _detokenize(self, raw: bytes) -> bytes:
        try:
            parsed = DetokenizeRequest.model_validate(decode_json(raw))
        except ValidationError as exc:
            raise validation_error(exc) from None
        self.check_model(parsed.model)
        vocab_size = self.engine.model_info.vocab_size
        bad = [t for t in parsed.tokens if not 0 <= t < vocab_size]
        if bad:
            raise APIError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})", 400, "tokens")
        return _dumps({"prompt": self.chat.tokenizer.decode(parsed.tokens)})

    async def openapi(self, request: Request) -> Response:
        document = openapi_document(secured=self.api_key is not None)
        root_path = request.scope.get("root_path", "")
        if root_path:  # behind a proxy that strips this prefix (--root-path): clients must add it
            document = {**document, "servers": [{"url": root_path}]}
        return JSONResponse(document)


def _dumps(payload: dict[str, Any]) -> bytes:
    """JSON for a response body; long lists are written a slice at a time, so that other threads
    (the event loop) get their turns while a million token ids are serialized."""
    parts = []
    for key, value in payload.items():
        if isinstance(value, list) and len(value) > _SLICE:
            slices = (json.dumps(value[i:i + _SLICE], ensure_ascii=False, separators=(",", ":"))[1:-1]
                      for i in range(0, len(value), _SLICE))
            text = "[" + ",".join(slices) + "]"
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{json.dumps(key)}:{text}")
    return ("{" + ",".join(parts) + "}").encode()


_SLICE = 32_768


def _json_bytes(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _too_large(cap: int) -> APIError:
    return APIError(f"the request body is larger than this server accepts ({cap} bytes)", 413,
                    headers={"Connection": "close"})


class HeaderChecks:
    """ASGI middleware: requests whose headers are not handled, answered, and the connection closed.

    More than `limit` headers: 431. Both `Content-Length` and `Transfer-Encoding`: 400, since a
    proxy in front may have framed the body differently (request smuggling).
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_HEADERS):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self.check(scope["headers"]) if scope["type"] == "http" else None
        if error is not None:
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, headers: list[tuple[bytes, bytes]]) -> APIError | None:
        close = {"Connection": "close"}
        if len(headers) > self.limit:
            return APIError(f"too many request headers ({len(headers)}; at most {self.limit})", 431, headers=close)
        names = {name.lower() for name, _ in headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            return APIError("a request may not carry both Content-Length and Transfer-Encoding", 400, headers=close)
        return None


# -- error handlers --------------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return APIError(exc.detail or "error", exc.status_code, headers=dict(exc.headers or {})).response()


async def _disconnected(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody is listening; nginx's "client closed request"


class InternalErrors:
    """ASGI middleware for our own bugs: the log gets the traceback once, under a request id; the
    client gets a generic 500 with that id, and no exception type or message."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watching_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:  # noqa: BLE001  (the last line of defence; logged right here)
            if scope["type"] != "http":
                raise
            headers = dict(scope["headers"])
            error_id = log_safe(headers[b"x-request-id"].decode("latin-1")) if b"x-request-id" in headers \
                else uuid.uuid4().hex
            logger.error("unexpected error in %s %s (request id %s)", scope["method"], scope["path"], error_id,
                         exc_info=exc)
            if not started:  # once a response has started, closing the connection is all that is left
                error = APIError(f"internal server error (request id {error_id}); the server log has the details", 500)
                await error.response()(scope, receive, send)


def build_app(engine: AsyncEngine, config: ServingConfig, api_key: str | None = None,
              model_path: str | None = None, log_stats_interval: float | None = 5.0) -> Starlette:
    """The ASGI app for one engine; shutting the app down shuts the engine down.

    Every request the routes send to the engine feeds the metrics at /metrics; while the app
    runs, the stats line is logged every `log_stats_interval` seconds when busy (None: never).
    """
    metrics = Metrics(engine, config.served_model_names[0])
    server = Server(metrics.metered(engine), config, api_key, model_path or engine.model_info.model)

    async def scrape(request: Request) -> Response:
        body, content_type = await metrics.exposition()
        return Response(body, media_type=content_type)

    routes = [
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/chat/completions/", server.chat_completions, methods=["POST"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
        Route("/invocations", server.chat_completions, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/version", server.version, methods=["GET"]),
        Route("/tokenize", server.tokenize, methods=["POST"]),
        Route("/detokenize", server.detokenize, methods=["POST"]),
        Route("/openapi.json", server.openapi, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        stats = None if log_stats_interval is None else asyncio.create_task(
            metrics.log_stats_forever(log_stats_interval))
        with quiet_collector():
            yield
        server.chat.workers.shutdown()
        if stats is not None:
            stats.cancel()
        engine.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        APIError: _api_error, RequestValidationError: _validation_error, HTTPException: _http_error,
        ClientDisconnected: _disconnected,
    }, middleware=[Middleware(HeaderChecks), Middleware(InternalErrors)])
    app.state.server = server
    return app
