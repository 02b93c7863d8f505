"""The tool-parser interface and its registry.

A parser has two faces, as vLLM's `ToolParser` does (vllm/tool_parsers/abstract_tool_parser.py):

- `extract(text)`: the whole output of a finished request -> calls and leftover content;
- `feed(delta)` / `finish()`: the output as it streams -> content text and `ToolCallDelta`s,
  OpenAI's streaming shape: the first delta of a call carries its `id`, `type` and `name`,
  later ones carry pieces of `arguments`, all with the call's `index`.

A streaming parser instance is used for one choice of one request and then dropped.
"""

from __future__ import annotations

import abc

import dataclasses
import uuid
from typing import Callable

_REGISTRY: dict[str, type["ToolParser"]] = {}


def make_tool_call_id() -> str:
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


@dataclasses.dataclass
class ToolCall:
    name: str
    arguments: str  # a JSON text
    id: str = dataclasses.field(default_factory=make_tool_call_id)

    def to_json(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclasses.dataclass
class ExtractedToolCalls:
    tools_called: bool
    tool_calls: list[ToolCall]
    content: str | None


@dataclasses.dataclass
class ToolCallDelta:
    """One streamed piece of call `index`: its header (id + name) and/or a piece of arguments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None

    def to_json(self) -> dict:
        out: dict = {"index": self.index}
        function: dict = {}
        if self.id is not None:
            out["id"], out["type"] = self.id, "function"
        if self.name is not None:
            function["name"] = self.name
        if self.arguments is not None:
            function["arguments"] = self.arguments
        out["function"] = function
        return out


class ToolParser(abc.ABC):
    """Base class: subclasses implement `extract`, `feed` and `finish`."""

    name = "base"
    # True when the format's markers are special tokens (Mistral's [TOOL_CALLS]): requests parsed
    # with this parser then keep special tokens in their text, whatever skip_special_tokens says
    keeps_special_tokens = False

    @abc.abstractmethod
    def extract(self, text: str) -> ExtractedToolCalls:
        """The whole output in; the calls (or none) and the content out."""

    @abc.abstractmethod
    def feed(self, delta: str) -> tuple[str, list[ToolCallDelta]]:
        """Streamed text in; (content to show now, tool-call deltas) out."""

    @abc.abstractmethod
    def finish(self) -> tuple[str, list[ToolCallDelta]]:
        """End of output: flush held-back text and any unterminated call."""

    @property
    def num_calls_streamed(self) -> int:
        return 0


def register(name: str) -> Callable[[type[ToolParser]], type[ToolParser]]:
    def add(cls: type[ToolParser]) -> type[ToolParser]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return add


def get_tool_parser(name: str) -> type[ToolParser]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tool-call parser {name!r}; known: {sorted(_REGISTRY)}") from None


def tool_parser_names() -> list[str]:
    return sorted(_REGISTRY)
