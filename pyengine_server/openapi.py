"""`GET /openapi.json`: the contract (the spec) plus what this server adds.

`openapi_spec.json` beside this file is a verbatim copy of the spec. The served document keeps
the spec's `ChatCompletionRequest` / `ChatCompletionResponse` schemas unchanged and adds: the
path without the trailing slash, `/invocations` (the same operation), the streamed
(`text/event-stream`) 200, the OpenAI-style error responses (400, 404, 503), and the
neighbouring endpoints. `openapi_completions.json` holds `POST /v1/completions` and its schemas
(vLLM's `CompletionRequest` / `CompletionResponse`, which the spec does not cover).

The bearer scheme (and the 401 answer) is declared only when the server checks an API key, as
vLLM's document does: a client generated from the document of an open server sends no key.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pyengine

SPEC_FILE = Path(__file__).with_name("openapi_spec.json")
COMPLETIONS_FILE = Path(__file__).with_name("openapi_completions.json")
CHAT_PATH = "/v1/chat/completions/"

_ERROR_SCHEMA = {
    "type": "object", "title": "ErrorResponse", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type", "code"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "code": {"type": "integer"}}}},
}
_ERRORS = {
    "400": "The request fits the schema but cannot be served as asked",
    "401": "Missing or wrong API key",
    "404": "Unknown model",
    "413": "The request body is larger than the server's cap (--max-request-body-bytes)",
    "503": "The server is full or its engine has stopped; retry after Retry-After seconds",
}


def _error_responses(codes: list[str]) -> dict[str, Any]:
    return {code: {"description": _ERRORS[code], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} for code in codes}


def _json_op(summary: str, request: dict | None, response: dict, errors: list[str],
             operation_id: str, method: str = "post") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": operation_id, "responses": {
        "200": {"description": "Successful Response", "content": {"application/json": {"schema": response}}},
        **_error_responses(errors)}}
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
        op["responses"]["422"] = {"description": "Validation Error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
    return {method: op}


_INT_LIST = {"type": "array", "items": {"type": "integer"}}
_TOKENIZE_REQUEST = {"anyOf": [
    {"type": "object", "required": ["prompt"], "properties": {
        "model": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "prompt": {"type": "string"},
        "add_special_tokens": {"type": "boolean"}, "return_token_strs": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}},
    {"type": "object", "required": ["messages"], "properties": {
        "model": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "messages": {"$ref": "#/components/schemas/ChatCompletionRequest/properties/messages"},
        "add_generation_prompt": {"type": "boolean"}, "continue_final_message": {"type": "boolean"},
        "add_special_tokens": {"type": "boolean"}, "return_token_strs": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}},
]}
_TOKENIZE_RESPONSE = {"type": "object", "required": ["count", "max_model_len", "tokens"], "properties": {
    "count": {"type": "integer"}, "max_model_len": {"type": "integer"}, "tokens": _INT_LIST,
    "token_strs": {"anyOf": [{"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                             {"type": "null"}]}}}
_MODELS_RESPONSE = {"type": "object", "required": ["object", "data"], "properties": {
    "object": {"type": "string", "const": "list"}, "data": {"type": "array", "items": {
        "type": "object", "required": ["id", "object"], "properties": {"id": {"type": "string"},
                                                                       "object": {"type": "string"}}}}}}


def _sse_event(what: str) -> dict:
    """One event of a stream (`stream: true`): OpenAPI 3.1 has no place for a stream's items (3.2 adds
    `itemSchema`), and tools such as schemathesis read an event stream's schema as each event's."""
    return {"type": "object", "description": f"One server-sent event: its `data` is {what} object as JSON, "
                                             "and the last event's is `[DONE]`",
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
                           "retry": {"type": "integer"}},
            "required": ["data"]}


@functools.lru_cache(maxsize=2)
def openapi_document(secured: bool = False) -> dict[str, Any]:
    """The served document; `secured`: the server checks `Authorization: Bearer <key>` on /v1."""
    doc = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    completions_doc = json.loads(COMPLETIONS_FILE.read_text(encoding="utf-8"))
    doc["components"]["schemas"].update(completions_doc["components"]["schemas"])
    doc["info"] = {"title": "pyengine", "version": pyengine.__version__,
                   "description": "vLLM's OpenAI-compatible API, served by pyengine"}
    doc["components"]["schemas"]["ErrorResponse"] = _ERROR_SCHEMA
    chat = doc["paths"][CHAT_PATH]["post"]
    chat["responses"]["200"]["content"]["text/event-stream"] = {"schema": _sse_event("a chat.completion.chunk")}
    chat["responses"].update(_error_responses(["400", "404", "413", "503"]))
    completions = completions_doc["paths"]["/v1/completions"]["post"]
    completions["responses"]["200"]["content"]["text/event-stream"] = {"schema": _sse_event("a text_completion")}
    completions["responses"].update(_error_responses(["400", "404", "413", "503"]))
    models = _json_op("List models", None, _MODELS_RESPONSE, [], "list_models", "get")["get"]
    if secured:
        for op in (chat, completions, models):
            op["responses"].update(_error_responses(["401"]))
        models["security"] = [{"HTTPBearer": []}]
    else:
        del doc["components"]["securitySchemes"]
        chat.pop("security", None)
        completions.pop("security", None)
    plain = copy.deepcopy(chat)
    plain["operationId"] = "create_chat_completion_v1_chat_completions_post"
    invocations = copy.deepcopy(chat)
    invocations["operationId"] = "invocations"
    invocations["summary"] = "Invocations (SageMaker): a chat completion, as /v1/chat/completions"
    doc["paths"] = {
        "/v1/chat/completions": {"post": plain},
        CHAT_PATH: {"post": chat},
        "/v1/completions": {"post": completions},
        "/invocations": {"post": invocations},
        "/v1/models": {"get": models},
        "/health": {"get": {"summary": "Health", "operationId": "health", "responses": {
            "200": {"description": "The engine is running"}, "503": {"description": "The engine has stopped"}}}},
        "/version": _json_op("Version", None, {"type": "object", "required": ["version"],
                                               "properties": {"version": {"type": "string"}}}, [], "version", "get"),
        "/tokenize": _json_op("Tokenize", _TOKENIZE_REQUEST, _TOKENIZE_RESPONSE, ["400", "404", "413"], "tokenize"),
        "/detokenize": _json_op("Detokenize", {"type": "object", "required": ["tokens"], "properties": {
            "model": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "tokens": _INT_LIST}},
            {"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
            ["400", "404", "413"], "detokenize"),
    }
    return doc
