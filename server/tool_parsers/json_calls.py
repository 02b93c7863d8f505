"""Shared pieces of the parsers whose calls are JSON objects (llama3_json, mistral).

`CallStream` streams one call the way the Hermes parser does: the header delta (`id`, `type`,
`name`) once the name is known, then the newly stable prefix of the canonical arguments text
(partial_json.py) as the model writes them, and the rest when the call closes, so the pieces
concatenate to the non-streaming `arguments`.

`decode_object(text, start)` reads one complete JSON value starting at `start` (whitespace
skipped), or says it is not complete yet.
"""

from __future__ import annotations

import json
import re
from typing import Any

from server.tool_parsers.base import ToolCall, ToolCallDelta, make_tool_call_id
from server.tool_parsers.partial_json import arguments_start, stable_prefix

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
