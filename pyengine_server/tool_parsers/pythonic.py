"""Pythonic tool calls: `[get_weather(city="Paris"), get_time(zone="CET")]`.

The format of Llama 3.2's lightweight models and Llama 4 (their model cards' "pythonic" tool
calling): the answer is a Python list of function calls with keyword arguments whose values
are literals (strings, numbers, True/False/None, lists, dicts). Llama 4 may wrap the list in
`<|python_start|>` and `<|python_end|>`. Each call's keyword arguments become its JSON
`arguments` (`json.dumps(..., ensure_ascii=False)`: True -> true, None -> null).

Whole output: the text (stripped) must be exactly such a list, read with Python's own parser
(`ast`, never evaluated: only literal values are accepted); otherwise there are no calls and
the whole text is content. With calls, content is null.

Streaming: text starting with `[name(` is held back as calls; anything else streams as content
from the start. Each call is sent whole (header and arguments in one delta) as soon as its
closing parenthesis arrives. Output that turns out not to be a call list before any call was
sent is released as content; after a sent call, the rest of a malformed list is dropped.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from pyengine_server.tool_parsers.base import ExtractedToolCalls, ToolCall, ToolCallDelta, register
from pyengine_server.tool_parsers.json_calls import WHITESPACE, CallListParser

START_TAG, END_TAG = "<|python_start|>", "<|python_end|>"
_HEAD = re.compile(r"\[\s*[A-Za-z_]\w*\s*\(")  # the start of a call list
_MAYBE_HEAD = re.compile(r"\[\s*(?:[A-Za-z_]\w*\s*)?")  # could still become one


def _unwrap(text: str) -> str:
    text = text.strip(WHITESPACE)
    if text.startswith(START_TAG):
        text = text[len(START_TAG):]
        if text.endswith(END_TAG):
            text = text[:-len(END_TAG)]
    return text.strip(WHITESPACE)


def parse_call_list(text: str) -> list[ToolCall] | None:
    """`[f(a=1), g(b="x")]` -> its calls, or None when `text` is not exactly such a list."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(tree, ast.List) or not tree.elts:
        return None
    calls = []
    for node in tree.elts:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
            return None
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:  # **kwargs
                return None
            try:
                arguments[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, SyntaxError, TypeError):
                return None
        try:
            calls.append(ToolCall(node.func.id, json.dumps(arguments, ensure_ascii=False)))
        except (TypeError, ValueError):  # a set, bytes or complex number has no JSON form
            return None
    return calls


def call_end(text: str, start: int) -> int | None:
    """Index after the call that starts at `start` (its closing parenthesis), None if cut off,
    -1 if brackets close that never opened."""
    depth, quote, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return -1
            if depth == 0:
                return i + 1
        i += 1
    return None


@register("pythonic")
class PythonicToolParser(CallListParser):
    """A Python list of keyword-argument calls; see the module docstring for the rules.

    In mode "calls", `buffer` is the text after the list's "[".
    """

    def extract(self, text: str) -> ExtractedToolCalls:
        calls = parse_call_list(_unwrap(text))
        if calls is None:
            return ExtractedToolCalls(False, [], text)
        return ExtractedToolCalls(True, calls, None)

    def _start(self) -> tuple[str, list[ToolCallDelta]] | None:
        body = self.raw.lstrip(WHITESPACE)
        if START_TAG.startswith(body):
            return "", []
        if body.startswith(START_TAG):
            body = body[len(START_TAG):].lstrip(WHITESPACE)
        if _HEAD.match(body):
            self.mode, self.buffer = "calls", body[1:]
            return None
        if not body or _MAYBE_HEAD.fullmatch(body):
            return "", []
        self.mode = "content"
        return self.raw, []

    def finish(self) -> tuple[str, list[ToolCallDelta]]:
        if self.mode == "start" or (self.mode == "calls" and not self.streams):
            self.mode = "content"
            return self.raw, []
        return "", []

    def _advance(self) -> tuple[str, list[ToolCallDelta]]:
        deltas: list[ToolCallDelta] = []
        while True:
            char = self._next_in_list()
            if not char:
                return "", deltas
            end = call_end(self.buffer, self.pos)
            if end is None:
                return "", deltas
            calls = None if end < 0 else parse_call_list("[" + self.buffer[self.pos:end] + "]")
            if calls is None or len(calls) != 1:
                if self.streams:
                    self.mode = "after"
                    return "", deltas
                self.mode = "content"
                return self.raw, deltas
            deltas += self._new_stream().close(calls[0])
            self.pos = end
