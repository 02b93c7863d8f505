"""Llama 3.1 / 3.2 JSON tool calls: `{"name": "f", "parameters": {...}}`, several joined by `;`.

The format of Meta's Llama 3.1 and 3.2 model cards ("JSON based tool calling"): when the model
calls tools, its whole answer is one or more JSON objects, each with `name` and `parameters`
(`arguments` is accepted too), separated by semicolons, optionally after the `<|python_tag|>`
token. Answers that start with anything else are plain content.

Whole output: every object must be a call, or there are no calls and the whole text is content
(a JSON answer such as `{"name": "Ada", "age": 36}` stays content: it has no `parameters`).
With calls, content is null. Arguments are re-serialised with `json.dumps(..., ensure_ascii=False)`.

Streaming: the first non-blank characters decide. `{` (or `<|python_tag|>`) holds the text back
as a possible call; anything else streams as content from the start. A call's header goes out
once its name and its `parameters` key have appeared, then its arguments piece by piece
(json_calls.CallStream). Output that turns out not to be calls before any call was sent is
released as content, so it reads as the whole-output path gives it; a malformed object after a
sent call is dropped, since a stream cannot take back what it sent.
"""

from __future__ import annotations

from pyengine_server.tool_parsers.base import ExtractedToolCalls, ToolCall, ToolCallDelta, register
from pyengine_server.tool_parsers.json_calls import WHITESPACE, CallListParser, call_from_object, decode_object

PYTHON_TAG = "<|python_tag|>"
SEPARATORS = WHITESPACE + ";"


def _strip_prefix(text: str) -> str:
    text = text.lstrip(WHITESPACE)
    if text.startswith(PYTHON_TAG):
        text = text[len(PYTHON_TAG):].lstrip(WHITESPACE)
    return text


@register("llama3_json")
class Llama3JsonToolParser(CallListParser):
    """Semicolon-separated JSON call objects; see the module docstring for the rules.

    In mode "calls", `buffer` is the text from the first "{" on.
    """

    # -- whole output ------------------------------------------------------------------------------

    def extract(self, text: str) -> ExtractedToolCalls:
        body = _strip_prefix(text)
        if not body.startswith("{"):
            return ExtractedToolCalls(False, [], text)
        calls: list[ToolCall] = []
        pos = 0
        while True:
            while pos < len(body) and body[pos] in SEPARATORS:
                pos += 1
            if pos == len(body):
                return ExtractedToolCalls(True, calls, None)
            decoded = decode_object(body, pos)
            if decoded is None or (call := call_from_object(decoded[0])) is None:
                return ExtractedToolCalls(False, [], text)
            calls.append(call)
            pos = decoded[1]

    # -- streaming ---------------------------------------------------------------------------------

    def _start(self) -> tuple[str, list[ToolCallDelta]] | None:
        body = _strip_prefix(self.raw)
        stripped = self.raw.lstrip(WHITESPACE)
        if not body or (PYTHON_TAG.startswith(stripped) and stripped != PYTHON_TAG):
            return "", []  # blank, or a partial <|python_tag|>: wait
        if not body.startswith("{"):
            self.mode = "content"
            return self.raw, []
        self.mode, self.buffer = "calls", body
        return None

    def finish(self) -> tuple[str, list[ToolCallDelta]]:
        if self.mode == "start":
            self.mode = "content"
            return self.raw, []
        if self.mode == "calls" and self.buffer[self.pos:].strip(SEPARATORS):
            return self._give_up()  # an unterminated or malformed last object
        return "", []

    def _advance(self) -> tuple[str, list[ToolCallDelta]]:
        deltas: list[ToolCallDelta] = []
        while True:
            char = self._next_char(SEPARATORS)
            if not char:
                return "", deltas
            streamed = self._stream_object() if char == "{" else None
            if streamed is None:
                content, more = self._give_up()
                return content, deltas + more
            deltas += streamed[0]
            if not streamed[1]:
                return "", deltas

    def _give_up(self) -> tuple[str, list[ToolCallDelta]]:
        """Not calls after all: all of it is content if nothing was sent, else the rest is dropped."""
        if any(s.header_sent for s in self.streams):
            self.mode = "after"
            return "", []
        self.mode = "content"
        return self.raw, []
