"""Shared pieces of the parsers that stream a list of calls (llama3_json, mistral, pythonic).

`CallStream` streams one call the way the Hermes parser does: the header delta (`id`, `type`,
`name`) once the name is known, then the newly stable prefix of the canonical arguments text
(partial_json.py) as the model writes them, and the rest when the call closes, so the pieces
concatenate to the non-streaming `arguments`.

`decode_object(text, start)` reads one complete JSON value starting at `start` (whitespace
skipped), or says it is not complete yet.

`CallListParser` holds what those parsers track while streaming, and steps them share.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyengine_server.tool_parsers.base import ToolCall, ToolCallDelta, ToolParser, make_tool_call_id
from pyengine_server.tool_parsers.partial_json import arguments_start, stable_prefix

_DECODER = json.JSONDecoder()
NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
WHITESPACE = " \t\r\n"


def decode_object(text: str, start: int = 0) -> tuple[Any, int] | None:
    """(value, index after it) for the JSON value at `start`, or None if it is cut off or not JSON."""
    while start < len(text) and text[start] in WHITESPACE:
        start += 1
    try:
        return _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        return None


def call_from_object(value: Any, keys: tuple[str, ...] = ("arguments", "parameters")) -> ToolCall | None:
    """A ToolCall from `{"name": ..., "arguments" | "parameters": {...}}`, or None if it is not one.

    The arguments object is re-serialised with `json.dumps(..., ensure_ascii=False)`, as vLLM does.
    """
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    key = next((k for k in keys if k in value), None)
    if key is None or not isinstance(value[key], dict):
        return None
    return ToolCall(value["name"], json.dumps(value[key], ensure_ascii=False))


class CallStream:
    """The streaming state of one call with index `index`."""

    def __init__(self, index: int):
        self.index = index
        self.id = make_tool_call_id()
        self.header_sent = False
        self.arguments_sent = ""

    def header(self, name: str) -> list[ToolCallDelta]:
        if self.header_sent:
            return []
        self.header_sent = True
        return [ToolCallDelta(self.index, id=self.id, name=name)]

    def partial_object(self, call_text: str) -> list[ToolCallDelta]:
        """Deltas for a call object cut off mid-way: the header once valid JSON has given both the
        name and the start of the arguments (a JSON answer with a "name" field is not mistaken
        for a call), then the arguments written so far."""
        deltas: list[ToolCallDelta] = []
        start = arguments_start(call_text)
        if not self.header_sent and start is not None:
            valid = stable_prefix(call_text)  # stops where the text stops being JSON
            match = NAME.search(valid)
            if match is not None and arguments_start(valid) is not None:
                deltas += self.header(json.loads(f'"{match.group(1)}"'))
        if self.header_sent and start is not None:
            deltas += self.partial_arguments(call_text[start:])
        return deltas

    def partial_arguments(self, arguments_text: str) -> list[ToolCallDelta]:
        """A delta with the arguments' newly stable text (`arguments_text`: the raw JSON so far)."""
        stable = stable_prefix(arguments_text)
        if len(stable) <= len(self.arguments_sent) or not stable.startswith(self.arguments_sent):
            return []
        piece, self.arguments_sent = stable[len(self.arguments_sent):], stable
        return [ToolCallDelta(self.index, arguments=piece)]

    def close(self, call: ToolCall) -> list[ToolCallDelta]:
        """The call is complete: whatever of it has not been sent yet."""
        call.id = self.id
        if not self.header_sent:
            self.header_sent = True
            self.arguments_sent = call.arguments
            return [ToolCallDelta(self.index, id=self.id, name=call.name, arguments=call.arguments)]
        if not call.arguments.startswith(self.arguments_sent):
            return []  # the stream cannot take back what it sent; the rest would not fit it
        rest, self.arguments_sent = call.arguments[len(self.arguments_sent):], call.arguments
        return [ToolCallDelta(self.index, arguments=rest)] if rest else []


def partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag` (held back)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class CallListParser(ToolParser):
    """The streaming state of a parser whose answer is a list of calls, streamed call by call.

    `raw` is every character fed so far, `buffer` the text being read as calls and `pos` where
    the next call starts in it; `streams` holds one CallStream per call begun, `current` the
    one still open. The default `feed` serves formats whose first characters decide, in mode
    "start", between content (mode "content", streamed as it comes) and calls (mode "calls",
    `buffer` read by `_advance`); mode "after" drops the rest.
    """

    def __init__(self) -> None:
        self.mode = "start"
        self.raw = ""
        self.buffer = ""
        self.pos = 0
        self.streams: list[CallStream] = []
        self.current: CallStream | None = None

    @property
    def num_calls_streamed(self) -> int:
        return sum(s.header_sent for s in self.streams)

    def feed(self, delta: str) -> tuple[str, list[ToolCallDelta]]:
        self.raw += delta
        if self.mode == "content":
            return delta, []
        if self.mode == "after":
            return "", []
        if self.mode == "start":
            held = self._start()
            if held is not None:
                return held
        else:
            self.buffer += delta
        return self._advance()

    def _start(self) -> tuple[str, list[ToolCallDelta]] | None:
        """Mode "start": what to send now, or None once mode "calls" has begun with `buffer` set."""
        raise NotImplementedError

    def _advance(self) -> tuple[str, list[ToolCallDelta]]:
        """Mode "calls": read `buffer` from `pos` on as far as it goes."""
        raise NotImplementedError

    def _new_stream(self) -> CallStream:
        stream = CallStream(len(self.streams))
        self.streams.append(stream)
        return stream

    def _next_char(self, separators: str) -> str:
        """Moves `pos` past `separators`; the character there, or "" at the end of `buffer`."""
        while self.pos < len(self.buffer) and self.buffer[self.pos] in separators:
            self.pos += 1
        return self.buffer[self.pos:self.pos + 1]

    def _next_in_list(self) -> str:
        """Moves `pos` past whitespace and commas to the next call of a list: its first character,
        or "" when `buffer` ends there or the list closes (then mode "after")."""
        char = self._next_char(WHITESPACE + ",")
        if char == "]":
            self.mode = "after"
            return ""
        return char

    def _stream_object(self) -> tuple[list[ToolCallDelta], bool] | None:
        """The JSON call object at `pos`: (its deltas, whether it is complete), or None when it is
        complete but not a call. A complete call closes `current` and moves `pos` past it."""
        if self.current is None:
            self.current = self._new_stream()
        decoded = decode_object(self.buffer, self.pos)
        if decoded is None:  # cut off (or malformed: told at the end)
            return self.current.partial_object(self.buffer[self.pos:]), False
        call = call_from_object(decoded[0])
        if call is None:
            return None
        deltas = self.current.close(call)
        self.current, self.pos = None, decoded[1]
        return deltas, True
