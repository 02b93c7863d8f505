"""Error responses: 422 for bodies that do not fit the schema, OpenAI-style errors for the rest.

Two shapes:

- 422 `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`, the spec's
  `HTTPValidationError`, for JSON that is malformed or does not fit `ChatCompletionRequest`;
- `{"error": {"message", "type", "param", "code"}}` for everything else: 400 for a request that
  fits the schema but cannot be served as asked, 404 for an unknown model, 401 for a bad API
  key, 503 (with `Retry-After`) when the server is full or the engine has stopped.

Handlers raise `APIError`; `app.py` turns it into a response. Nothing a client sends reaches
the generic 500 handler: that one exists for our own bugs and says so.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

# OpenAI's error `type` names, by status (vLLM uses the same ones).
ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # repr() addresses say nothing to a client


class APIError(Exception):
    """An error with its HTTP status and OpenAI-style body fields."""

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = _ADDRESS.sub("", message)
        self.status = status
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, HTTPStatus(self.status).phrase),
                          "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(message, 400, param)


class RequestValidationError(Exception):
    """The body is not valid JSON or does not fit the schema: answered 422."""

    def __init__(self, detail: list[dict[str, Any]]):
        super().__init__(detail)
        self.detail = detail

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=422)


def validation_error(exc: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> RequestValidationError:
    """pydantic's errors in FastAPI's layout: `loc` starts with "body", no pydantic URLs."""
    detail = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *(part for part in error["loc"] if not _is_union_tag(part))]
        detail.append({"loc": loc, "msg": error["msg"], "type": error["type"]})
    return RequestValidationError(detail)


def _is_union_tag(part: Any) -> bool:
    # pydantic names the branch of a union it tried ("str", "list[...]", "NamedToolChoice");
    # FastAPI keeps these, but they are Python type names, not places in the client's JSON.
    from pyengine_server.protocol import SpecModel  # noqa: PLC0415  (protocol sits above this module)

    if not isinstance(part, str):
        return False
    return "[" in part or part in ("str", "int", "float", "bool", "none") or \
        part in {cls.__name__ for cls in SpecModel.__subclasses__()}


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body; malformed JSON is a 422 `json_invalid`, as FastAPI reports it."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "body is not UTF-8"
        raise RequestValidationError([{"loc": ["body", position], "msg": f"JSON decode error: {message}",
                                       "type": "json_invalid"}]) from None
    except RecursionError:
        raise RequestValidationError([{"loc": ["body"], "msg": "JSON nested too deeply",
                                       "type": "json_invalid"}]) from None


def error_chunk(error: APIError) -> str:
    """An error met while streaming (the 200 status is already sent): one `data:` event."""
    return f"data: {json.dumps(error.body())}\n\n"
