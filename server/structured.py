"""Structured outputs: the one place that knows the grammar engine is not there yet (issue #8).

What is waiting on the grammar engine, and what the server does meanwhile:

- `response_format` `json_object` / `json_schema` / `structural_tag`, and `structured_outputs`:
  400, "structured outputs are not supported yet". `response_format: {"type": "text"}` is
  plain generation and works.
- `tool_choice: "required"` and named tool choice: vLLM forces these with a JSON-schema mask
  (api-semantics.md §8). Until the mask exists the model generates freely, the server parses
  its text with the tool-call parser, and `check_forced_tool_calls` turns "no valid call" into
  a 400 rather than a plain-text answer. Because validity is known only at the end, such a
  request is generated to completion before any byte is sent, streaming or not.

Issue #8 switches this on by setting `GRAMMAR_ENGINE_AVAILABLE` and building the constraint in
`structured_outputs_for`; the forced-choice paths then become ordinary streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import APIError, bad_request

if TYPE_CHECKING:
    from server.protocol import ChatCompletionRequest
    from server.tools import ToolPlan
    from server.tool_parsers import ToolCall

GRAMMAR_ENGINE_AVAILABLE = False
_NOT_YET = ("structured outputs are not supported yet by this server (the grammar engine is "
            "not built); send response_format {\"type\": \"text\"} or leave it out")


def check_structured_outputs(request: "ChatCompletionRequest") -> None:
    """400 for any output constraint; `response_format: text` passes."""
    response_format = request.response_format
    if response_format is not None and response_format.type != "text":
        if response_format.type == "json_schema" and response_format.json_schema is None:
            raise bad_request("response_format of type json_schema needs 'json_schema'", "response_format")
        raise bad_request(f"response_format {response_format.type!r}: {_NOT_YET}", "response_format")
    if request.structured_outputs is not None:
        raise bad_request(f"structured_outputs: {_NOT_YET}", "structured_outputs")


def forced_choice_needs_whole_output(plan: "ToolPlan") -> bool:
    """Without a grammar, a forced tool choice is checked on the whole output before replying."""
    return plan.is_forced and not GRAMMAR_ENGINE_AVAILABLE


def check_forced_tool_calls(plan: "ToolPlan", calls: list["ToolCall"]) -> list["ToolCall"]:
    """The calls that satisfy `required` / the named function, or a 400 saying none came out."""
    known = {tool.function.name for tool in plan.tools}
    if plan.choice == "required":
        valid = [c for c in calls if c.name in known]
        if valid:
            return valid
        raise APIError("tool_choice 'required': the model did not produce a valid call to one of the "
                       f"tools {sorted(known)} (forcing a call needs the grammar engine, which this "
                       "server does not have yet); retry, or use tool_choice 'auto'", 400, "tool_choice")
    named = [c for c in calls if c.name == plan.named_function]
    if named:
        return named[:1]
    raise APIError(f"tool_choice names function {plan.named_function!r}, but the model did not produce "
                   "a valid call to it (forcing a call needs the grammar engine, which this server "
                   "does not have yet); retry, or use tool_choice 'auto'", 400, "tool_choice")
