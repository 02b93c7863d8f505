"""Structured outputs: a request's `response_format`, `structured_outputs` and forced tool choice -> one constraint.

What the server accepts (vLLM's fields) and what each becomes (pyengine.structured
compiles it; docs/06-structured-outputs.md):

- `response_format`: `text` (nothing), `json_object` (any JSON object), `json_schema` (its
  `schema`; `name`/`strict` ignored, as vLLM does), `structural_tag` (either shape, passed on as
  JSON text).
- `structured_outputs`: exactly one of `json`, `regex`, `choice`, `grammar` (GBNF, or Lark without `::=`),
  `json_object`, `structural_tag`, plus the switches `disable_any_whitespace`,
  `whitespace_pattern`, `disable_additional_properties`, which work per request here (vLLM V1
  reads them from the server config). A `structured_outputs` with only switches
  takes its constraint from `response_format`; two constraints at once are a 400.
- `tool_choice: "required"` or a named function: the output is forced to Hermes tool-call blocks
  (the format of this server's tool parser and of the demo model), each naming a tool and with
  arguments valid under its `parameters`: one or more calls for `required` (exactly one with
  `parallel_tool_calls: false`), exactly one call to the named function otherwise. vLLM forces a
  JSON array (required) or the bare arguments (named) instead; the parsed calls are the same.
  Forced tool choice with another constraint is a 400; `response_format` is dropped (vLLM).

Every constraint is checked and compiled here, once, by the engine's public
`compile_structured_outputs`, before the request is queued: an invalid schema, regex or grammar,
or one past the compile limits, is a 400 naming the parameter, never a 500, and the compiled
grammar travels on the constraint to the engine, which uses it as it is. Which kinds a
constraint may be, and that it is exactly one of them, is `StructuredOutputsParams`'s to say.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from pyengine import StructuredOutputsParams
from pyengine_server.errors import APIError, bad_request
from pyengine_server.reasoning import END as THINK_END, START as THINK_START

if TYPE_CHECKING:
    from pyengine_server.protocol import ChatCompletionRequest, CompletionRequest
    from pyengine_server.tool_parsers import ToolCall
    from pyengine_server.tools import ToolPlan

GRAMMAR_ENGINE_AVAILABLE = True
# The constraint kinds a request names; `tool_calls`, the last of pyengine's, comes from forced tool choice.
REQUEST_KINDS = tuple(kind for kind in StructuredOutputsParams.KINDS if kind != "tool_calls")
Compile = Callable[[StructuredOutputsParams], StructuredOutputsParams]  # AsyncEngine.compile_structured_outputs


def check_structured_outputs(request: "ChatCompletionRequest | CompletionRequest") -> None:
    """The field rules alone (400s); `structured_outputs_for` builds the constraint."""
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_schema" and response_format.json_schema is None:
        raise bad_request("response_format type is 'json_schema', so json_schema must be provided",
                          "response_format")


def structured_outputs_for(request: "ChatCompletionRequest | CompletionRequest", plan: "ToolPlan",
                           compile: Compile, reasoning: bool = False) -> StructuredOutputsParams | None:
    """The request's one output constraint, compiled by `compile` (once); None when there is none.

    With `reasoning` (the server parses <think> blocks for this model) the model may think
    first: the engine holds the whole output to an optional think block, then the constraint,
    so it can neither end inside the block nor answer outside the constraint.

    Raises:
        APIError: 400 for conflicting constraints, or one that does not compile (the reason, and
            the parameter it came from: response_format, structured_outputs or tools).
    """
    check_structured_outputs(request)
    so = request.structured_outputs
    switches: dict[str, Any] = {"reasoning_tags": (THINK_START, THINK_END)} if reasoning else {}
    given: dict[str, Any] = {}
    if so is not None:
        switches |= {"disable_any_whitespace": so.disable_any_whitespace,
                    "disable_additional_properties": so.disable_additional_properties,
                    "whitespace_pattern": so.whitespace_pattern, "unsound_one_of": so.unsound_one_of}
        given = {k: v for k, v in _so_kinds(so).items() if v is not None}
    if plan.is_forced:
        if given:
            raise bad_request("You can only either use constraints for structured outputs or tools, not both.",
                              "structured_outputs")
        tools = [t for t in plan.tools if plan.choice == "required" or t.function.name == plan.named_function]
        spec = (tuple((t.function.name, t.function.parameters) for t in tools), 1,
                1 if plan.choice == "named" or not plan.parallel else None)
        return _compiled(compile, {"tool_calls": spec}, switches, "tools")
    source = "structured_outputs"
    from_format = _from_response_format(request)
    if from_format:
        if given:
            raise bad_request("response_format and structured_outputs each set a constraint; use one of them",
                              "response_format")
        given, source = from_format, "response_format"
    if not given and so is None:
        return None
    return _compiled(compile, given, switches, source)  # none or several kinds: a 400 from there


def _so_kinds(so: Any) -> dict[str, Any]:
    if so.json_object is False:
        raise bad_request("structured_outputs.json_object must be true when given", "structured_outputs")
    return {kind: getattr(so, "json_" if kind == "json" else kind) for kind in REQUEST_KINDS}


def _from_response_format(request: "ChatCompletionRequest | CompletionRequest") -> dict[str, Any]:
    rf = request.response_format
    if rf is None or rf.type == "text":
        return {}
    if rf.type == "json_object":
        return {"json_object": True}
    if rf.type == "json_schema":
        schema = rf.json_schema.schema_ if rf.json_schema is not None else None
        if schema is None:
            raise bad_request("response_format json_schema needs json_schema.schema", "response_format")
        return {"json": schema}
    if "format" in rf.model_fields_set:
        return {"structural_tag": json.dumps({"type": "structural_tag", "format": rf.format})}
    return {"structural_tag": json.dumps({"type": "structural_tag", "structures": rf.structures,
                                          "triggers": rf.triggers})}


def _check_spec(kind: str, spec: Any, source: str) -> None:
    """vLLM's field checks that come before compiling."""
    if kind == "choice" and not spec:
        raise bad_request("choice must contain at least one string", source)
    if kind == "grammar" and not spec.strip():
        raise bad_request("grammar must not be empty", source)
    if kind == "json" and isinstance(spec, str):
        if not spec.strip():
            raise bad_request("json must not be empty", source)
        try:
            json.loads(spec)
        except json.JSONDecodeError as exc:
            raise bad_request(f"json is not valid JSON: {exc}", source) from None
    if kind == "regex" and "\x00" in spec:
        raise bad_request("regex must not contain a NUL character", source)


def _compiled(compile: Compile, given: dict[str, Any], switches: dict[str, Any],
              source: str) -> StructuredOutputsParams:
    """The constraint, built (exactly one kind: StructuredOutputsParams checks) and compiled now, so a
    bad one is a 400 here; the compiled grammar stays on it for the engine."""
    try:
        params = StructuredOutputsParams(**given, **switches)
    except ValueError as exc:
        raise bad_request(str(exc), source) from None
    _check_spec(params.kind, params.spec, source)
    try:
        return compile(params)
    except ValueError as exc:  # GrammarError, GrammarLimitError, too deeply nested, tags of several tokens
        raise bad_request(f"invalid {source}: {exc}", source) from None


def forced_choice_needs_whole_output(plan: "ToolPlan") -> bool:
    """Without a grammar, a forced tool choice is checked on the whole output before replying."""
    return plan.is_forced and not GRAMMAR_ENGINE_AVAILABLE


def check_forced_tool_calls(plan: "ToolPlan", calls: list["ToolCall"]) -> list["ToolCall"]:
    """The calls that satisfy `required` / the named function.

    With the grammar engine the output is forced to valid calls, so this only filters (an output
    cut short by max_tokens may hold none, and then there are none, as in vLLM). Without it, no
    valid call is a 400.
    """
    known = {tool.function.name for tool in plan.tools}
    if plan.choice == "required":
        valid = [c for c in calls if c.name in known]
        if valid or GRAMMAR_ENGINE_AVAILABLE:
            return valid
        raise APIError("tool_choice 'required': the model did not produce a valid call to one of the "
                       f"tools {sorted(known)} (forcing a call needs the grammar engine, which this "
                       "server does not have); retry, or use tool_choice 'auto'", 400, "tool_choice")
    named = [c for c in calls if c.name == plan.named_function]
    if named or GRAMMAR_ENGINE_AVAILABLE:
        return named[:1]
    raise APIError(f"tool_choice names function {plan.named_function!r}, but the model did not produce "
                   "a valid call to it (forcing a call needs the grammar engine, which this server "
                   "does not have); retry, or use tool_choice 'auto'", 400, "tool_choice")
