"""Structured outputs through a real server with the openai client: every constrained answer is valid.

The tiny random model writes noise, so a valid answer here is the grammar's doing.
"""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest

from tests.server.conftest import MODEL_NAME

MESSAGES = [{"role": "user", "content": "Hello"}]
SCHEMA = {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99},
                                           "ok": {"type": "boolean"}, "tag": {"enum": ["a", "b"]}},
          "required": ["id", "ok", "tag"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "days": {"type": "integer", "minimum": 1,
                                                                            "maximum": 7}},
    "required": ["unit", "days"], "additionalProperties": False}}},
         {"type": "function", "function": {"name": "ping", "parameters": {
             "type": "object", "properties": {}, "additionalProperties": False}}}]
COMPACT = {"structured_outputs": {"disable_any_whitespace": True}}


def create(client, **kwargs):
    kwargs.setdefault("max_tokens", 100)  # the fixture holds 128 tokens; the prompt takes 21
    kwargs.setdefault("temperature", 0.8)
    return client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, seed=7, **kwargs)


def test_response_format_json_schema(client):
    completion = create(client, n=3, extra_body=COMPACT,
                        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA}})
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), SCHEMA)


def test_response_format_json_schema_streamed(client):
    stream = create(client, stream=True, extra_body=COMPACT,
                    response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA}})
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_response_format_json_object(client):
    completion = create(client, response_format={"type": "json_object"}, temperature=0)
    choice = completion.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)
    else:
        assert choice.message.content.startswith("{")


@pytest.mark.parametrize("constraint, check", [
    ({"regex": r"[0-9]{3}-[a-z]{2}"}, lambda t: re.fullmatch(r"[0-9]{3}-[a-z]{2}", t)),
    ({"choice": ["red", "green", "blue"]}, lambda t: t in ("red", "green", "blue")),
    ({"grammar": 'root ::= "x=" [0-9] [0-9]? ";"'}, lambda t: re.fullmatch(r"x=[0-9][0-9]?;", t)),
])
def test_structured_outputs_regex_choice_grammar(client, constraint, check):
    completion = create(client, n=3, extra_body={"structured_outputs": constraint})
    for choice in completion.choices:
        assert choice.finish_reason == "stop" and check(choice.message.content), choice.message.content



TAG_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
LEGACY_TAG = {"type": "structural_tag", "structures": [{"begin": "<f>", "schema": TAG_SCHEMA, "end": "</f>"}],
              "triggers": ["<f"]}
FORMAT_TAG = {"type": "structural_tag", "format": {
    "type": "triggered_tags", "triggers": ["<f"],
    "tags": [{"begin": "<f>", "content": {"type": "json_schema", "json_schema": TAG_SCHEMA}, "end": "</f>"}]}}


@pytest.mark.parametrize("request_kwargs", [
    dict(response_format=LEGACY_TAG),
    dict(response_format=FORMAT_TAG),
    dict(extra_body={"structured_outputs": {"structural_tag": json.dumps(LEGACY_TAG)}}),
], ids=["response_format legacy", "response_format format", "structured_outputs"])
def test_structural_tag_spans_match_their_schema(client, request_kwargs):
    kwargs = {**request_kwargs, "max_tokens": 100}
    body = {**kwargs.pop("extra_body", {})}
    body.setdefault("structured_outputs", {}).update(disable_any_whitespace=True)
    # the fixture's tokenizer spells "<f" as "<" "f": a bias makes the random model write them often
    kwargs["logit_bias"] = {"27": 4, "69": 4}
    spans = 0
    # free text may open a tag at any point; whatever follows "<f" must be "<f>{...}</f>"
    for choice in create(client, n=4, extra_body=body, **kwargs).choices:
        text = choice.message.content
        for start in [m.start() for m in re.finditer("<f", text)]:
            span = re.match(r"<f>(.*?)</f>", text[start:], re.S)
            if span is None:  # only a reply cut off by max_tokens may end inside a tag
                assert choice.finish_reason == "length", text
                continue
            jsonschema.validate(json.loads(span.group(1)), TAG_SCHEMA)
            spans += 1
    assert spans > 0  # the tags were exercised


def test_whitespace_pattern_and_additional_properties_switches(client):
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "boolean"}},
              "required": ["a", "b"]}  # additionalProperties not set: extra keys are allowed
    switches = {"whitespace_pattern": "[ ]{2}", "disable_additional_properties": True}
    for choice in create(client, n=3, extra_body={"structured_outputs": {"json": schema, **switches}}).choices:
        value = json.loads(choice.message.content)
        assert set(value) == {"a", "b"}  # no extra keys: disable_additional_properties
        outside = re.sub(r'"[^"]*"', "s", choice.message.content)  # whitespace between tokens only
        assert set(re.findall(r"\s+", outside)) <= {"  "}, choice.message.content

def _check_call(call):
    arguments = json.loads(call.function.arguments)
    schema = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}[call.function.name]
    jsonschema.validate(arguments, schema)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_required(client, stream):
    kwargs = dict(tools=TOOLS, tool_choice="required", parallel_tool_calls=False, extra_body=COMPACT)
    if not stream:
        choice = create(client, **kwargs).choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content in ("", None)
        assert len(choice.message.tool_calls) == 1
        _check_call(choice.message.tool_calls[0])
        return
    names, arguments, reasons = [], "", []
    for chunk in create(client, stream=True, **kwargs):
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if delta_call.function.name:
                names.append(delta_call.function.name)
            arguments += delta_call.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            reasons.append(chunk.choices[0].finish_reason)
    assert len(names) == 1 and reasons == ["tool_calls"]
    jsonschema.validate(json.loads(arguments), {t["function"]["name"]: t["function"]["parameters"]
                                                for t in TOOLS}[names[0]])


def test_tool_choice_named(client):
    choice = create(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
                    extra_body=COMPACT).choices[0]
    assert choice.finish_reason == "stop"  # a named function keeps "stop" (vLLM, OpenAI)
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    _check_call(call)


@pytest.mark.parametrize("kwargs, param, needle", [
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "oneOf": [{"type": "integer"}, {"type": "number"}]}}}), "response_format", "oneOf at #/oneOf"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nope"}}}),
     "response_format", "points at nothing"),
    (dict(extra_body={"structured_outputs": {"regex": "(a|b"}}), "structured_outputs", "invalid structured_outputs"),
    (dict(extra_body={"structured_outputs": {"regex": "(?<=a)b"}}), "structured_outputs", "lookbehind"),
    (dict(extra_body={"structured_outputs": {"choice": []}}), "structured_outputs", "choice"),
    (dict(extra_body={"structured_outputs": {"json": "{oops"}}), "structured_outputs", "not valid JSON"),
    (dict(extra_body={"structured_outputs": {"regex": "a"}}, response_format={"type": "json_object"}),
     "response_format", "each set a constraint"),
    (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {"uniqueItems": True}}}],
          tool_choice="required"),
     "tools", "unsupported JSON Schema keyword"),
    (dict(tools=TOOLS, tool_choice="required", extra_body={"structured_outputs": {"regex": "a"}}),
     "structured_outputs", "not both"),
    (dict(extra_body={"structured_outputs": {"regex": "a", "use_beam_search": True}, "use_beam_search": True,
                      "n": 2}, max_tokens=8), None, "beam search"),
])
def test_bad_constraints_are_400_with_the_reason(client, kwargs, param, needle):
    with pytest.raises(openai.BadRequestError) as info:
        create(client, **kwargs)
    error = info.value.body if isinstance(info.value.body, dict) else {}
    assert needle.lower() in str(info.value).lower()
    assert error.get("param") == param


def test_a_bad_request_leaves_the_server_working(client, server):
    with pytest.raises(openai.BadRequestError):
        create(client, extra_body={"structured_outputs": {"json": {"type": "integer", "maximum": 10 ** 600}}})
    completion = create(client, extra_body={"structured_outputs": {"choice": ["one"]}})
    assert completion.choices[0].message.content == "one"
    server.wait_idle()
    assert server.free_blocks()[0] == server.free_blocks()[1]


def test_with_a_reasoning_model_the_schema_applies_after_the_think_block():
    """The demo model thinks when told to; the server parses <think> and constrains only the answer."""
    from pyengine_server.background import BackgroundServer

    person = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    server = BackgroundServer.start("pyengine/demo_model", served_model_name="demo", num_kv_blocks=64)
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        completion = client.chat.completions.create(
            model="demo", temperature=0, max_tokens=120,
            messages=[{"role": "system", "content": "Think step by step before you answer."},
                      {"role": "user", "content": "Extract the name and age as JSON: Omar is 41 years old."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": person}})
        message = completion.choices[0].message
        assert message.reasoning  # the think block, parsed out
        jsonschema.validate(json.loads(message.content), person)
    finally:
        server.stop()


OVERLAPPING = {"oneOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                         {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}]}


def test_a_one_of_whose_branches_may_overlap_is_a_400_unless_the_request_opts_in(client):
    """{"a": "x", "b": "y"} is valid under both branches, so oneOf rejects it; the grammar cannot
    count branches, so the server refuses, naming where; `unsound_one_of` reads oneOf as anyOf."""
    with pytest.raises(openai.BadRequestError) as info:
        create(client, extra_body={"structured_outputs": {"json": OVERLAPPING}})
    assert "oneOf at #" in str(info.value) and "unsound_one_of" in str(info.value)
    completion = create(client, temperature=0, extra_body={
        "structured_outputs": {"json": OVERLAPPING, "unsound_one_of": True, "disable_any_whitespace": True}})
    choice = completion.choices[0]
    if choice.finish_reason == "stop":  # valid under at least one branch (maybe both: that is the option)
        document = json.loads(choice.message.content)
        assert "a" in document or "b" in document
    else:
        assert choice.finish_reason == "length" and choice.message.content.startswith("{")
