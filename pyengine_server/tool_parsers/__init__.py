"""Tool-call parsers: find the calls a model wrote into its text, whole or while it streams.

Each model family writes calls in its own format; a parser turns that text into OpenAI tool
calls. They are pluggable: a parser class registers under a name (`@register("hermes")`) and
`pyengine serve --tool-call-parser NAME` picks one, under vLLM's names. Hermes is the default, so
a chat request with `tools` gets its calls parsed without any flag.

| name | models | format |
|---|---|---|
| `hermes` (default) | Qwen2.5, Qwen3, Hermes, many fine-tunes | `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` |
| `llama3_json` | Llama 3.1, Llama 3.2 | `{"name": ..., "parameters": {...}}`, several joined by `;` |
| `mistral` | Mistral, Ministral, Mistral Small | `[TOOL_CALLS][{...}]` or `[TOOL_CALLS]name[ARGS]{...}` |
| `pythonic` | Llama 3.2 (1B/3B), Llama 4 | `[get_weather(city="Paris")]` |
"""

from __future__ import annotations

from pyengine_server.tool_parsers.base import (
    ExtractedToolCalls,
    ToolCall,
    ToolCallDelta,
    ToolParser,
    get_tool_parser,
    make_tool_call_id,
    register,
    tool_parser_names,
)
from pyengine_server.tool_parsers.hermes import HermesToolParser
from pyengine_server.tool_parsers.llama3_json import Llama3JsonToolParser
from pyengine_server.tool_parsers.mistral import MistralToolParser
from pyengine_server.tool_parsers.pythonic import PythonicToolParser

__all__ = [
    "ExtractedToolCalls",
    "HermesToolParser",
    "Llama3JsonToolParser",
    "MistralToolParser",
    "PythonicToolParser",
    "ToolCall",
    "ToolCallDelta",
    "ToolParser",
    "get_tool_parser",
    "make_tool_call_id",
    "register",
    "tool_parser_names",
]
