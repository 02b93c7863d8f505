"""Tool-call parsers: find the calls a model wrote into its text, whole or while it streams.

Each model family writes calls in its own format; a parser turns that text into OpenAI tool
calls. They are pluggable: a parser class registers under a name (`@register("hermes")`) and
`pyengine serve --tool-call-parser NAME` picks one. Hermes-style `<tool_call>{...}</tool_call>`
(Qwen2.5, Qwen3, Hermes, many fine-tunes) is the default, so a
chat request with `tools` gets its calls parsed without any flag.
"""

from __future__ import annotations

from server.tool_parsers.base import (
    ExtractedToolCalls,
    ToolCall,
    ToolCallDelta,
    ToolParser,
    get_tool_parser,
    make_tool_call_id,
    register,
    tool_parser_names,
)
from server.tool_parsers.hermes import HermesToolParser

__all__ = [
    "ExtractedToolCalls",
    "HermesToolParser",
    "ToolCall",
    "ToolCallDelta",
    "ToolParser",
    "get_tool_parser",
    "make_tool_call_id",
    "register",
    "tool_parser_names",
]
