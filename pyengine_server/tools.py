"""Tools: check `tools` / `tool_choice` / `parallel_tool_calls` and turn parsed calls into the message.

vLLM's rules: `tool_choice` absent means `auto` when there are tools and `none` otherwise; any
choice but `none` needs `tools`; a named choice must name one of them; `auto` needs a tool-call
parser (the Hermes parser is on by default). `required` and a named function need none: the
grammar forces Hermes blocks, which the Hermes parser reads. `none` never parses: text that
looks like a call stays content. `parallel_tool_calls: false` keeps only the first call (it
filters the output; it does not change generation).

Finish reason: `tool_calls` when `auto` or `required` produced calls; a named choice keeps the
engine's `stop` (vLLM's and OpenAI's behaviour for forced functions). An output cut by
max_tokens finishes `length` whatever it holds, streamed or not: a call cut in the middle never
reaches the client as a finished call (its text stays in `content`), and a forced call that
never came answers `tool_calls: null`.
"""

from __future__ import annotations

import dataclasses
import json

from pyengine_server.errors import bad_request
from pyengine_server.protocol import ChatCompletionRequest, ToolParam
from pyengine_server.structured import check_forced_tool_calls
from pyengine_server.tool_parsers import ToolCall, ToolParser, get_tool_parser


FORCED_CALL_PARSER = "hermes"


@dataclasses.dataclass
class ToolPlan:
    """What to do about tools for one request."""

    tools: list[ToolParam]
    choice: str  # "none" | "auto" | "required" | "named"
    named_function: str | None = None
    parser_name: str | None = None
    parallel: bool = True

    @property
    def is_forced(self) -> bool:
        return self.choice in ("required", "named")

    @property
    def parses(self) -> bool:
        return self.choice != "none"

    def new_parser(self) -> ToolParser:
        return get_tool_parser(self.parser_name)()  # type: ignore[arg-type]

    def template_tools(self) -> list[dict] | None:
        """The tools as the chat template sees them (dicts, as vLLM passes them)."""
        if not self.tools:
            return None
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in self.tools]


def plan_tools(request: ChatCompletionRequest, parser_name: str | None) -> ToolPlan:
    """Validate the tool fields (400 on a bad combination) and decide how to parse the output."""
    tools = request.tools or []
    choice = request.tool_choice if request.was_set("tool_choice") else None
    if choice is None:
        choice = "auto" if tools else "none"
    named = None
    if not isinstance(choice, str):
        named, choice = choice.function.name, "named"
    if choice != "none" and not tools:
        raise bad_request("When using `tool_choice`, `tools` must be set.", "tool_choice")
    if named is not None and named not in {t.function.name for t in tools}:
        raise bad_request(f"Tool '{named}' has not been passed in `tools`.", "tool_choice")
    if choice == "auto" and parser_name is None:
        raise bad_request('"auto" tool choice requires a tool-call parser, and this server runs with '
                          "--tool-call-parser none; send tool_choice \"none\", \"required\" or a named "
                          "function, or start the server with a parser", "tool_choice")
    if choice in ("required", "named"):
        parser_name = FORCED_CALL_PARSER  # what the grammar makes the model write
    parallel = request.parallel_tool_calls is not False
    return ToolPlan(tools, choice, named, parser_name, parallel)


def finish_tool_calls(plan: ToolPlan, parser: ToolParser, text: str,
                      finish_reason: str | None) -> tuple[str | None, list[ToolCall], str | None]:
    """The whole output of one choice -> (content, tool calls, finish_reason).

    A call whose JSON is cut (the output ran out of tokens inside it) makes the parser find no
    call: the raw text is the content and the finish reason stays `length`.
    """
    if not plan.parses:
        return text, [], finish_reason
    extracted = parser.extract(text)
    calls = extracted.tool_calls
    if plan.is_forced:
        if not calls and plan.choice == "named":
            calls = _bare_arguments(plan.named_function, text)  # what a forced call looks like
        calls = check_forced_tool_calls(plan, calls)
        content = "" if calls else text  # forced calls have empty content (vLLM); a cut one keeps its text
    else:
        content = extracted.content if extracted.tools_called else text
    if not plan.parallel:
        calls = calls[:1]
    if calls and plan.choice in ("auto", "required") and finish_reason != "length":
        finish_reason = "tool_calls"
    return content, calls, finish_reason


def _bare_arguments(name: str | None, text: str) -> list[ToolCall]:
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(arguments, dict) or name is None:
        return []
    return [ToolCall(name, json.dumps(arguments, ensure_ascii=False))]
