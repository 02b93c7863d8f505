"""Hermes-style tool calls: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.

The format of Nous Hermes 2 Pro, adopted by Qwen2.5 and Qwen3 chat templates: each call is a
JSON object between tags; text before the first call is the message content.

Whole output (vLLM's `Hermes2ProToolParser.extract_tool_calls`): every `<tool_call>` block
(the last may be unterminated, when the model ran out of tokens) must hold a JSON object with
a `name`; `arguments` is re-serialised with `json.dumps(..., ensure_ascii=False)`. If any block
fails to parse, there are no calls and the whole text is content. Content is the text before the
first `<tool_call>`, or null when there is none.

Streaming: content flows until `<tool_call>` (a partial tag at the end of a delta is held back);
inside a call the parser emits the header delta (`id`, `type`, `name`) as soon as the name is
complete, then the arguments piece by piece as the model writes them, as vLLM does: each delta
extends the stable prefix of their canonical serialisation (partial_json.py), and the call's
close sends the rest, so the pieces concatenate to exactly the non-streaming `arguments`. Text
after the first call is dropped, as in the whole-output path, so both paths give the same message.
(Only a call that turns out not to parse, after pieces of it were sent, differs: the stream
cannot take them back. vLLM shares this.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyengine_server.tool_parsers.partial_json import arguments_start, stable_prefix
from pyengine_server.tool_parsers.base import ExtractedToolCalls, ToolCall, ToolCallDelta, ToolParser, make_tool_call_id, register

START, END = "<tool_call>", "</tool_call>"
_BLOCKS = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def parse_call(text: str) -> tuple[str, str]:
    """One call's JSON text -> (name, arguments JSON). Raises ValueError if it is not a call."""
    try:
        call: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool call is not valid JSON: {exc}") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ValueError("a tool call must be a JSON object with a string 'name'")
    arguments = call.get("arguments", call.get("parameters", {}))
    return call["name"], json.dumps(arguments, ensure_ascii=False)


@register("hermes")
class HermesToolParser(ToolParser):
    """`<tool_call>` JSON blocks; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.mode = "content"  # "content" | "call" | "after" (past the first call)
        self.buffer = ""
        self.calls = 0  # calls opened so far; the current one has index calls - 1
        self.header_sent = False
        self.arguments_sent = ""  # the current call's arguments streamed so far

    # -- whole output ------------------------------------------------------------------------------

    def extract(self, text: str) -> ExtractedToolCalls:
        if START not in text:
            return ExtractedToolCalls(False, [], text)
        try:
            calls = [ToolCall(*parse_call(closed or open_)) for closed, open_ in _BLOCKS.findall(text)]
        except ValueError:
            return ExtractedToolCalls(False, [], text)
        content = text[:text.find(START)]
        return ExtractedToolCalls(True, calls, content or None)

    # -- streaming ---------------------------------------------------------------------------------

    @property
    def num_calls_streamed(self) -> int:
        return self.calls

    def feed(self, delta: str) -> tuple[str, list[ToolCallDelta]]:
        self.buffer += delta
        content, deltas = "", []
        while True:
            if self.mode in ("content", "after"):
                start = self.buffer.find(START)
                if start < 0:
                    keep = _partial_suffix(self.buffer, START)
                    if self.mode == "content":
                        content += self.buffer[:len(self.buffer) - keep]
                    self.buffer = self.buffer[len(self.buffer) - keep:]
                    return content, deltas
                if self.mode == "content":
                    content += self.buffer[:start]
                self.buffer = self.buffer[start + len(START):]
                self.mode, self.calls, self.header_sent = "call", self.calls + 1, False
                self.arguments_sent = ""
                self.call_id = make_tool_call_id()
            else:  # inside a call
                end = self.buffer.find(END)
                if end < 0:
                    deltas += self._header_if_named(self.buffer)
                    deltas += self._arguments_so_far(self.buffer)
                    return content, deltas
                deltas += self._close_call(self.buffer[:end])
                self.buffer, self.mode = self.buffer[end + len(END):], "after"

    def finish(self) -> tuple[str, list[ToolCallDelta]]:
        text, self.buffer = self.buffer, ""
        if self.mode == "call":  # unterminated: parse what there is, as the whole-output path does
            self.mode = "after"
            return "", self._close_call(text)
        return (text if self.mode == "content" else ""), []

    def _header_if_named(self, call_text: str) -> list[ToolCallDelta]:
        if self.header_sent:
            return []
        match = _NAME.search(call_text)
        if match is None:
            return []
        self.header_sent = True
        name = json.loads(f'"{match.group(1)}"')
        return [ToolCallDelta(self.calls - 1, id=self.call_id, name=name)]

    def _arguments_so_far(self, call_text: str) -> list[ToolCallDelta]:
        """A delta with the arguments' newly stable text, once the header is out."""
        start = arguments_start(call_text) if self.header_sent else None
        if start is None:
            return []
        stable = stable_prefix(call_text[start:])
        if len(stable) <= len(self.arguments_sent) or not stable.startswith(self.arguments_sent):
            return []
        piece, self.arguments_sent = stable[len(self.arguments_sent):], stable
        return [ToolCallDelta(self.calls - 1, arguments=piece)]

    def _close_call(self, call_text: str) -> list[ToolCallDelta]:
        try:
            name, arguments = parse_call(call_text)
        except ValueError:
            return []  # not a call after all; the header (if sent) stands alone
        if not self.header_sent:
            self.header_sent = True
            return [ToolCallDelta(self.calls - 1, id=self.call_id, name=name, arguments=arguments)]
        rest = arguments[len(self.arguments_sent):] if arguments.startswith(self.arguments_sent) else ""
        return [ToolCallDelta(self.calls - 1, arguments=rest)] if rest or not self.arguments_sent else []


def _partial_suffix(text: str, tag: str) -> int:
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
