"""Mistral tool calls: `[TOOL_CALLS]` followed by a JSON list of calls, or by `name[ARGS]{...}`.

Mistral's instruct models mark calls with the special token `[TOOL_CALLS]`. Tokenizers up to
v7 follow it with a JSON list, `[TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]`; newer
ones (v11 on, Mistral Small 3.2, Magistral, Devstral) write each call as
`[TOOL_CALLS]f[ARGS]{...}`. Both are read. Content is the text before the first `[TOOL_CALLS]`
(null when empty); text after the calls is dropped.

The marker is a special token, so a request parsed with this parser keeps special tokens in
its text (`keeps_special_tokens`), as vLLM does for Mistral.

Whole output: every call must parse, or there are no calls and the whole text is content.
Streaming: content flows until `[TOOL_CALLS]` (a partial marker at a delta's end is held back);
each call's header goes out when its name is known, then its arguments piece by piece
(json_calls.CallStream). Output after the marker that turns out not to be calls, before any
call was sent, is released as content.
"""

from __future__ import annotations

import re

from pyengine_server.tool_parsers.base import ExtractedToolCalls, ToolCall, ToolCallDelta, register
from pyengine_server.tool_parsers.json_calls import (
    WHITESPACE, CallListParser, call_from_object, decode_object, partial_suffix)

MARKER, ARGS = "[TOOL_CALLS]", "[ARGS]"
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _named_call(piece: str) -> tuple[ToolCall | None, int]:
    """`name[ARGS]{...}` at the start of `piece` -> (call, index after its arguments), or (None, 0)."""
    name, sep, rest = piece.partition(ARGS)
    name = name.strip(WHITESPACE)
    if not sep or not _FUNCTION_NAME.fullmatch(name):
        return None, 0
    decoded = decode_object(rest)
    if decoded is None or not isinstance(decoded[0], dict):
        return None, 0
    call = call_from_object({"name": name, "arguments": decoded[0]})
    return call, len(piece) - len(rest) + decoded[1]


def _list_calls(piece: str) -> list[ToolCall] | None:
    decoded = decode_object(piece)
    if decoded is None or not isinstance(decoded[0], list) or not decoded[0]:
        return None
    calls = [call_from_object(item) for item in decoded[0]]
    return None if any(c is None for c in calls) else calls  # type: ignore[return-value]


@register("mistral")
class MistralToolParser(CallListParser):
    """`[TOOL_CALLS]` calls in either Mistral format; see the module docstring for the rules."""

    keeps_special_tokens = True

    def __init__(self) -> None:
        super().__init__()
        # content | marker (just past [TOOL_CALLS]) | list | name | args | between | after | rest (content again)
        self.mode = "content"
        self.content_sent = 0  # raw[:content_sent] went out as content
        self.name = ""

    # -- whole output ------------------------------------------------------------------------------

    def extract(self, text: str) -> ExtractedToolCalls:
        start = text.find(MARKER)
        if start < 0:
            return ExtractedToolCalls(False, [], text)
        calls: list[ToolCall] = []
        for piece in text[start:].split(MARKER)[1:]:
            body = piece.lstrip(WHITESPACE)
            if body.startswith("["):
                found = _list_calls(body)
            else:
                call, _ = _named_call(body)
                found = None if call is None else [call]
            if found is None:
                return ExtractedToolCalls(False, [], text)
            calls += found
        return ExtractedToolCalls(True, calls, text[:start] or None)

    # -- streaming ---------------------------------------------------------------------------------

    def feed(self, delta: str) -> tuple[str, list[ToolCallDelta]]:
        self.raw += delta
        if self.mode == "rest":
            return self._content_to(len(self.raw)), []
        if self.mode == "after":
            return "", []
        self.buffer += delta
        content, deltas = "", list[ToolCallDelta]()
        while True:
            if self.mode == "content":
                start = self.buffer.find(MARKER)
                if start < 0:
                    keep = partial_suffix(self.buffer, MARKER)
                    content += self._content_to(len(self.raw) - keep)
                    return content, deltas
                content += self._content_to(len(self.raw) - len(self.buffer) + start)
                self.buffer, self.mode = self.buffer[start + len(MARKER):], "marker"
            elif self.mode == "marker":
                body = self.buffer.lstrip(WHITESPACE)
                if not body:
                    return content, deltas
                if body.startswith("["):
                    self.buffer, self.pos, self.mode = body[1:], 0, "list"
                else:
                    self.buffer, self.mode = body, "name"
            elif self.mode == "list":
                more_content, more = self._advance_list()
                return content + more_content, deltas + more
            elif self.mode == "name":
                end = self.buffer.find(ARGS)
                if end < 0:  # wait while the text can still be a name followed by [ARGS]
                    head = self.buffer[:len(self.buffer) - partial_suffix(self.buffer, ARGS)].rstrip(WHITESPACE)
                    if not head or _FUNCTION_NAME.fullmatch(head):
                        return content, deltas
                    return self._give_up(content, deltas)
                self.name = self.buffer[:end].strip(WHITESPACE)
                if not _FUNCTION_NAME.fullmatch(self.name):
                    return self._give_up(content, deltas)
                self.current = self._new_stream()
                deltas += self.current.header(self.name)
                self.buffer, self.mode = self.buffer[end + len(ARGS):], "args"
            elif self.mode == "args":
                assert self.current is not None
                decoded = decode_object(self.buffer)
                if decoded is None:
                    return content, deltas + self.current.partial_arguments(self.buffer.lstrip(WHITESPACE))
                if not isinstance(decoded[0], dict):
                    return self._give_up(content, deltas)
                call = call_from_object({"name": self.name, "arguments": decoded[0]})
                assert call is not None
                deltas += self.current.close(call)
                self.buffer, self.mode, self.current = self.buffer[decoded[1]:], "between", None
            elif self.mode == "between":
                start = self.buffer.find(MARKER)
                if start < 0:
                    self.buffer = self.buffer[len(self.buffer) - partial_suffix(self.buffer, MARKER):]
                    return content, deltas
                self.buffer, self.mode = self.buffer[start + len(MARKER):], "marker"
            else:
                return content, deltas

    def finish(self) -> tuple[str, list[ToolCallDelta]]:
        if self.mode in ("content", "rest"):
            return self._content_to(len(self.raw)), []
        if self.mode in ("between", "after"):
            return "", []
        return self._give_up("", [])  # cut off inside a call: the whole-output path finds none

    def _advance_list(self) -> tuple[str, list[ToolCallDelta]]:
        """The list form: complete objects close their call, a cut-off one streams what it has."""
        deltas: list[ToolCallDelta] = []
        while True:
            char = self._next_in_list()
            if not char:
                return "", deltas
            streamed = self._stream_object() if char == "{" else None
            if streamed is None:
                return self._give_up("", deltas)
            deltas += streamed[0]
            if not streamed[1]:
                return "", deltas

    def _content_to(self, end: int) -> str:
        piece = self.raw[self.content_sent:end]
        self.content_sent = max(self.content_sent, end)
        return piece

    def _give_up(self, content: str, deltas: list[ToolCallDelta]) -> tuple[str, list[ToolCallDelta]]:
        """Not calls after all: the text from the marker on is content if no call was sent."""
        if any(s.header_sent for s in self.streams):
            self.mode = "after"
            return content, deltas
        self.mode = "rest"
        return content + self._content_to(len(self.raw)), deltas
