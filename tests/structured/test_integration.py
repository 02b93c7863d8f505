"""Structured outputs through the offline API: every constrained generation is valid.

The tiny random-weight Qwen2 (vocabulary 300: every byte is a token) writes noise, so whatever it
produces under a grammar shows the mask doing all the work; the demo model writes real tool calls.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from pyengine import LLM, SamplingParams, StructuredOutputsParams
from pyengine.structured import compile_grammar
from pyengine.structured.constraints import TOOL_CALL_END, TOOL_CALL_START
from pyengine.structured.matcher import EarleyParser

QWEN2 = "tests/fixtures/parity/qwen2"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "pet": {"enum": ["cat", "dog", None]}},
          "required": ["name", "age", "pet"], "additionalProperties": False}


@pytest.fixture(scope="module")
def llm():
    return LLM(model=QWEN2)


def generate(llm, structured, n=1, seed=0, max_tokens=80, temperature=1.0):
    params = SamplingParams(n=n, temperature=temperature, seed=seed, max_tokens=max_tokens,
                            structured_outputs=structured)
    [output] = llm.generate(["Tell me about a person"], params)
    return output.outputs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_schema_outputs_validate(llm, seed):
    outputs = generate(llm, StructuredOutputsParams(json=SCHEMA, disable_any_whitespace=True), n=3, seed=seed)
    for out in outputs:
        assert out.finish_reason == "stop", out.text
        jsonschema.validate(json.loads(out.text), SCHEMA)
        assert ": " not in out.text and ", " not in out.text  # compact


def test_json_schema_as_text_and_greedy(llm):
    [out] = generate(llm, StructuredOutputsParams(json=json.dumps(SCHEMA), disable_any_whitespace=True),
                     temperature=0.0)
    jsonschema.validate(json.loads(out.text), SCHEMA)


def test_json_object_and_flexible_whitespace(llm):
    for out in generate(llm, StructuredOutputsParams(json_object=True), n=2, max_tokens=200):
        if out.finish_reason == "stop":
            assert isinstance(json.loads(out.text), dict)
        else:  # random weights may ramble inside a long string: still a prefix of an object
            assert out.finish_reason == "length"
            parser = EarleyParser(compile_grammar("json_object", True))
            assert out.text.startswith("{") and all(parser.push_byte(b) for b in out.text.encode()), out.text


@pytest.mark.parametrize("structured, check", [
    (StructuredOutputsParams(regex=r"[a-c]{2,4}-\d{3}"), lambda t: re.fullmatch(r"[a-c]{2,4}-\d{3}", t)),
    (StructuredOutputsParams(choice=["yes", "no", "maybe so"]), lambda t: t in ("yes", "no", "maybe so")),
    (StructuredOutputsParams(grammar='root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]?'),
     lambda t: re.fullmatch(r"\([1-9][0-9]?(\+[1-9][0-9]?)*\)", t)),
])
def test_regex_choice_grammar(llm, structured, check):
    for out in generate(llm, structured, n=4, max_tokens=40):
        if out.finish_reason == "stop":
            assert check(out.text), out.text
        else:
            assert out.finish_reason == "length"


def test_structural_tag_spans_match_their_schema(llm):
    tag = json.dumps({"structures": [{"begin": "<f>", "schema": {"type": "object", "properties": {
        "x": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["x"], "additionalProperties": False},
        "end": "</f>"}], "triggers": ["<f"]})
    for out in generate(llm, StructuredOutputsParams(structural_tag=tag, disable_any_whitespace=True), n=4,
                        max_tokens=60):
        for span in re.findall(r"<f>(.*?)</f>", out.text, re.DOTALL):
            jsonschema.validate(json.loads(span), {"properties": {"x": {"maximum": 9}}, "required": ["x"]})
        assert out.text.count("<f") == out.text.count("<f>")  # a trigger always opens a tag


def test_a_bad_constraint_fails_only_its_request(llm):
    engine = llm.llm_engine
    engine.add_request("good", "hi", SamplingParams(max_tokens=30, structured_outputs=StructuredOutputsParams(
        choice=["alpha", "beta"])))
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword"):
        engine.add_request("bad", "hi", SamplingParams(structured_outputs=StructuredOutputsParams(
            json={"type": "array", "uniqueItems": True})))
    finished = []
    while engine.has_unfinished_requests():
        finished += [o for o in engine.step() if o.finished]
    assert [o.request_id for o in finished] == ["good"] and finished[0].outputs[0].text in ("alpha", "beta")


def test_a_constraint_compiled_ahead_is_checked_once_and_not_compiled_again(llm, monkeypatch):
    """What a server does: compile while validating (a bad one is a ValueError then), the engine reuses it."""
    engine = llm.llm_engine
    with pytest.raises(ValueError, match="regex"):
        engine.compile_structured_outputs(StructuredOutputsParams(regex="(unclosed"))
    with pytest.raises(ValueError, match="nested too deeply"):
        engine.compile_structured_outputs(StructuredOutputsParams(json=_nested(3000)))
    structured = engine.compile_structured_outputs(StructuredOutputsParams(choice=["alpha", "beta"]))
    assert structured.compiled is not None

    def no_second_compile(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr("pyengine.structured.compile_grammar", no_second_compile)
    assert [o.text for o in generate(llm, structured)] in (["alpha"], ["beta"])


def _nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def test_parameter_rules():
    with pytest.raises(ValueError, match="only use one kind"):
        StructuredOutputsParams(regex="a", choice=["a"])
    with pytest.raises(ValueError, match="none are specified"):
        StructuredOutputsParams()
    with pytest.raises(ValueError, match="beam search"):
        SamplingParams(n=2, use_beam_search=True, structured_outputs=StructuredOutputsParams(regex="a"))
    params = SamplingParams(structured_outputs={"json": {"type": "integer"}})
    assert params.structured_outputs.kind == "json"


# -- the demo model: real tool calls under the grammar -------------------------------------------------

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city"], "additionalProperties": False}


def test_demo_model_forced_tool_call_is_valid():
    llm = LLM(model="pyengine/demo_model")
    tools = (("get_weather", WEATHER), ("get_time", {"type": "object", "properties": {"zone": {"type": "string",
                                                                                                "maxLength": 8}}}))
    structured = StructuredOutputsParams(tool_calls=(tools, 1, 1))
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    [output] = llm.chat(messages, SamplingParams(temperature=0, max_tokens=80, structured_outputs=structured),
                        tools=[{"type": "function", "function": {"name": n, "parameters": p}} for n, p in tools])
    text = output.outputs[0].text
    assert output.outputs[0].finish_reason == "stop", text
    assert text.startswith(TOOL_CALL_START) and text.endswith(TOOL_CALL_END) and text.count("<tool_call>") == 1
    call = json.loads(text[len(TOOL_CALL_START):-len(TOOL_CALL_END)])
    assert call["name"] in ("get_weather", "get_time")
    jsonschema.validate(call["arguments"], dict(tools)[call["name"]])


# -- reasoning first, then the constraint: the whole output is a think block, then the answer --------

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
THINK_FIRST = [{"role": "system", "content": "Think step by step before you answer."},
               {"role": "user", "content": "Extract the name and age as JSON: Omar is 41 years old."}]


def _json_after_thinking(llm, tags):
    structured = StructuredOutputsParams(json=PERSON, reasoning_tags=tags)
    [output] = llm.chat(THINK_FIRST, SamplingParams(temperature=0, max_tokens=120, structured_outputs=structured))
    return output.outputs[0]


def test_with_reasoning_tags_the_model_thinks_then_the_answer_matches_the_schema():
    llm = LLM(model="pyengine/demo_model")
    out = _json_after_thinking(llm, ("<think>", "</think>"))
    assert out.text.startswith("<think>\n") and "</think>" in out.text, out.text  # free while thinking
    jsonschema.validate(json.loads(out.text.split("</think>", 1)[1]), PERSON)
    assert out.finish_reason == "stop"
    out = _json_after_thinking(llm, None)  # without: the grammar holds from the first token
    assert "<think>" not in out.text
    jsonschema.validate(json.loads(out.text), PERSON)


def test_a_matcher_limit_mid_walk_ends_only_its_own_request(monkeypatch):
    """A request's own ambiguous grammar makes its parse grow with every token; when the matcher
    passes its item limit half way, that request ends ("stop") and the batch beside it goes on."""
    from pyengine.structured import matcher

    monkeypatch.setattr(matcher, "MAX_EARLEY_ITEMS", 40)
    llm = LLM(model=QWEN2, kernels="python")
    engine = llm.llm_engine
    engine.add_request("ambiguous", "hi", SamplingParams(max_tokens=40, temperature=0, structured_outputs=(
        StructuredOutputsParams(grammar='root ::= x\nx ::= x x | "a"'))))
    finished = _finish_beside_two_others(engine)
    assert finished["ambiguous"].finish_reason == "stop"
    assert 0 < len(finished["ambiguous"].token_ids) < 40 and set(finished["ambiguous"].text) <= {"a"}


def _finish_beside_two_others(engine) -> dict:
    """Queue a constrained and a free request beside the engine's, run all to their end, check the two
    went on unharmed; the finished outputs by request id."""
    engine.add_request("choice", "hi", SamplingParams(max_tokens=30, structured_outputs=StructuredOutputsParams(
        choice=["alpha", "beta"])))
    engine.add_request("free", "hi", SamplingParams(max_tokens=12, temperature=0, ignore_eos=True))
    finished = {}
    while engine.has_unfinished_requests():
        finished |= {o.request_id: o.outputs[0] for o in engine.step() if o.finished}
    assert finished["choice"].text in ("alpha", "beta") and finished["choice"].finish_reason == "stop"
    assert len(finished["free"].token_ids) == 12 and finished["free"].finish_reason == "length"
    return finished


def test_a_matcher_bug_mid_walk_ends_only_its_own_request(monkeypatch, caplog):
    """A matcher that fails by a bug (the Rust twin raises a caught panic as GrammarInternalError)
    ends its own request ("stop", logged as an error); the batch beside it goes on."""
    from pyengine.constrained import ConstrainedDecoding
    from pyengine.structured.grammar import GrammarInternalError

    class Panics:
        """A matcher whose third mask fails the way a caught panic does, and every call after it."""

        def __init__(self, inner):
            self.inner, self.masks = inner, 0

        def fill_bitmask(self, words):
            self.masks += 1
            if self.masks >= 3:
                raise GrammarInternalError("internal error: the grammar kernel panicked: index out of bounds")
            self.inner.fill_bitmask(words)

        def accept_token(self, token_id):
            if self.masks >= 3:
                raise GrammarInternalError("internal error: this matcher panicked earlier and cannot be used")
            return self.inner.accept_token(token_id)

    new_matcher = ConstrainedDecoding.new_matcher

    def breaking(self, grammar, params=None, prompt_ids=()):
        matcher = new_matcher(self, grammar, params, prompt_ids)
        return Panics(matcher) if params is not None and params.structured_outputs.regex else matcher

    monkeypatch.setattr(ConstrainedDecoding, "new_matcher", breaking)
    engine = LLM(model=QWEN2).llm_engine
    engine.add_request("broken", "hi", SamplingParams(max_tokens=40, temperature=0, structured_outputs=(
        StructuredOutputsParams(regex="a{1,39}"))))
    with caplog.at_level("ERROR", logger="pyengine.constrained"):
        finished = _finish_beside_two_others(engine)
    assert finished["broken"].finish_reason == "stop" and finished["broken"].text == "aa"
    assert any("bug in its matcher" in r.message and r.exc_info for r in caplog.records)
