"""The Starlette application: routes, API-key check, and the error handlers.

    app = build_app(AsyncEngine(EngineConfig(model=...)), ServingConfig(served_model_names=["m"]))
    uvicorn.run(app)          # or: pyengine serve --model PATH

Routes (vLLM's paths and shapes): `POST /v1/chat/completions` (with or without the trailing
slash the spec shows), `POST /invocations` (SageMaker's route: the same handler), `GET
/v1/models`, `GET /health`, `GET /version`, `POST /tokenize`, `POST /detokenize`, `GET
/openapi.json`, and `GET /metrics` (Prometheus, vLLM's metric names: server/metrics.py).

With an API key set, every `/v1` path and `/invocations` need `Authorization: Bearer <key>`
(compared in constant time); the others stay open, as in vLLM. Errors leave as JSON: 422 `{"detail": [...]}` for bodies
that do not fit the schema, `{"error": {...}}` for the rest; an unexpected exception is logged
and answered 500, never 200 (vLLM's bug, not copied).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pyengine
from pyengine.async_engine import AsyncEngine
from server.errors import APIError, RequestValidationError, parse_json_body, validation_error
from server.metrics import Metrics
from server.openapi import openapi_document
from server.prompt import render
from server.protocol import ChatCompletionRequest, DetokenizeRequest, TokenizeChatRequest, TokenizeCompletionRequest
from server.serving_chat import ChatService, ClientDisconnected, ServingConfig

logger = logging.getLogger("server")


class Server:
    """Holds the engine and the services; its methods are the route handlers."""

    def __init__(self, engine: AsyncEngine, config: ServingConfig, api_key: str | None = None,
                 model_path: str | None = None):
        self.engine = engine
        self.config = config
        self.chat = ChatService(engine, config)
        self.api_key = api_key
        self.model_path = model_path or engine.engine.config.model
        self.created = int(time.time())

    # -- helpers -----------------------------------------------------------------------------------

    def check_api_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise APIError("Unauthorized: a valid API key is required (Authorization: Bearer <key>)", 401,
                           headers={"WWW-Authenticate": "Bearer"})

    def check_model(self, name: str | None) -> None:
        """404 for a name we do not serve; absent, null or "" means the served model."""
        if name and name not in self.config.served_model_names:
            raise APIError(f"The model `{name}` does not exist.", 404, "model")

    async def json_body(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise RequestValidationError([{"loc": ["body"], "msg": f"Content-Type must be application/json, "
                                           f"got {content_type!r}", "type": "model_attributes_type"}])
        return parse_json_body(await request.body())

    # -- routes ------------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        self.check_api_key(request)
        return await self.chat.create(await self.json_body(request), request)

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
        body = await self.json_body(request)
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
            chat = ChatCompletionRequest.model_validate(
                parsed.model_dump(exclude_unset=True, exclude={"return_token_strs"}, by_alias=True))
            tools = [t.model_dump(mode="json", exclude_none=True) for t in parsed.tools or []] or None
            ids = render(chat, tokenizer, tools, self.config.chat_template,
                         self.config.trust_request_chat_template).token_ids
        else:
            ids = tokenizer.encode(parsed.prompt, add_special_tokens=parsed.add_special_tokens)
        strs = tokenizer.convert_ids_to_tokens(ids) if parsed.return_token_strs else None
        return JSONResponse({"count": len(ids), "max_model_len": self.chat.max_model_len,
                             "tokens": ids, "token_strs": strs})

    async def detokenize(self, request: Request) -> Response:
        try:
            parsed = DetokenizeRequest.model_validate(await self.json_body(request))
        except ValidationError as exc:
            raise validation_error(exc) from None
        self.check_model(parsed.model)
        vocab_size = self.engine.engine.vocab_size
        bad = [t for t in parsed.tokens if not 0 <= t < vocab_size]
        if bad:
            raise APIError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})", 400, "tokens")
        return JSONResponse({"prompt": self.chat.tokenizer.decode(parsed.tokens)})

    async def openapi(self, request: Request) -> Response:
        document = openapi_document(secured=self.api_key is not None)
        root_path = request.scope.get("root_path", "")
        if root_path:  # behind a proxy that strips this prefix (--root-path): clients must add it
            document = {**document, "servers": [{"url": root_path}]}
        return JSONResponse(document)


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


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error in %s %s", request.method, request.url.path)
    return APIError(f"internal server error: {type(exc).__name__}: {exc}", 500).response()


def build_app(engine: AsyncEngine, config: ServingConfig, api_key: str | None = None,
              model_path: str | None = None, log_stats_interval: float | None = 5.0) -> Starlette:
    """The ASGI app for one engine; shutting the app down shuts the engine down.

    Every request the routes send to the engine feeds the metrics at /metrics; while the app
    runs, the stats line is logged every `log_stats_interval` seconds when busy (None: never).
    """
    metrics = Metrics(engine, config.served_model_names[0])
    server = Server(metrics.metered(engine), config, api_key, model_path or engine.engine.config.model)

    async def scrape(request: Request) -> Response:
        body, content_type = await metrics.exposition()
        return Response(body, media_type=content_type)

    routes = [
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/chat/completions/", server.chat_completions, methods=["POST"]),
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
        yield
        if stats is not None:
            stats.cancel()
        engine.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        APIError: _api_error, RequestValidationError: _validation_error, HTTPException: _http_error,
        ClientDisconnected: _disconnected, Exception: _internal_error,
    })
    app.state.server = server
    return app
