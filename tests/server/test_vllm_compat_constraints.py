"""A constraint holds with reasoning, and Lark grammars: through the real server and `openai` client.

The default demo server (the embedded demo model, reasoning parsed because its template knows
`<think>`) answers vLLM's structured-output chat requests. The demo model often opens a think
block on them, and left alone it would end inside it; the constraint covers the whole output, so
every answer that finishes "stop" satisfies it, and "length" means max_tokens ran out.
"""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any, Iterator

import jsonschema
import pytest

from pyengine import EngineConfig
from pyengine.async_engine import AsyncEngine
from pyengine_server.background import BackgroundServer
from pyengine_server.cli import DEMO_MODEL
from pyengine_server.serving_chat import ServingConfig

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file(), reason="needs the demo model")

SEEDS = range(20)
LANGUAGES = ["Python", "Java", "JavaScript", "C++", "C#", "PHP", "TypeScript", "Ruby", "Swift", "Kotlin"]
CHOICE_MESSAGES = [{"role": "system", "content": "you are a helpful assistant"},
                   {"role": "user", "content": "The best language for type-safe systems programming is "}]
RESULT = {"type": "object", "properties": {"result": {"type": "integer"}}, "additionalProperties": False}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather",
                                           "description": "Get the current weather in a given location",
                                           "parameters": WEATHER}}]


def serve(**serving: Any) -> BackgroundServer:
    engine = AsyncEngine(EngineConfig(model=str(DEMO_MODEL), max_num_seqs=64))
    return BackgroundServer(engine, ServingConfig(served_model_names=["demo"], **serving)).run()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with serve() as running, openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0,
                                           timeout=600) as c:
        yield c


def sampling(seed: int) -> dict[str, Any]:
    """Temperatures 0.7, 0.8, 0.9, 1.0 in turn; max_tokens 300 (the demo model reads 512)."""
    return {"model": "demo", "seed": seed, "temperature": 0.7 + 0.1 * (seed % 4), "max_tokens": 300}


def choice_request(client, seed: int) -> tuple[bool, Any]:
    """vLLM's test_structured_outputs_choice_chat."""
    r = client.chat.completions.create(messages=CHOICE_MESSAGES, extra_body={"structured_outputs": {"choice": LANGUAGES}},
                                       **sampling(seed))
    return r.choices[0].message.content in LANGUAGES, r.choices[0]


def json_schema_request(client, seed: int) -> tuple[bool, Any]:
    """vLLM's test_response_format_json_schema (only the declared key, whatever the server's default)."""
    r = client.chat.completions.create(messages=[{"role": "user", "content": 'what is 1+1? The format is "result": 2'}],
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "foo_test", "schema": RESULT}},
                                       **sampling(seed))
    return _valid_json(r.choices[0].message.content, RESULT), r.choices[0]


def required_tool_request(client, seed: int) -> tuple[bool, Any]:
    r = client.chat.completions.create(messages=[{"role": "user",
                                                  "content": "What is the weather like in Dallas, in fahrenheit?"}],
                                       tools=TOOLS, tool_choice="required", **sampling(seed))
    calls = r.choices[0].message.tool_calls or []
    return bool(calls) and all(c.function.name == "get_current_weather"
                               and _valid_json(c.function.arguments, WEATHER) for c in calls), r.choices[0]


def _valid_json(text: str | None, schema: dict) -> bool:
    try:
        jsonschema.validate(json.loads(text or ""), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


def run_all(client, requests: list) -> list[tuple[str, int, bool, Any]]:
    """Every (request, seed) at once, as concurrent clients would send them."""
    jobs = [(request, seed) for request in requests for seed in SEEDS]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: job[0](client, job[1]), jobs))
    return [(request.__name__, seed, valid, choice) for (request, seed), (valid, choice) in zip(jobs, results)]


def test_a_constraint_always_holds_with_reasoning_on_the_default_demo_server(client):
    """>= 18 of 20 valid per request; never "stop" (nor "tool_calls") with an answer that breaks it."""
    results = run_all(client, [choice_request, json_schema_request, required_tool_request])
    for name in ("choice_request", "json_schema_request", "required_tool_request"):
        mine = [(seed, valid, choice) for request, seed, valid, choice in results if request == name]
        broken = [(seed, choice.finish_reason, choice.message) for seed, valid, choice in mine
                  if not valid and choice.finish_reason != "length"]
        assert not broken, (name, broken)
        assert sum(valid for _, valid, _ in mine) >= 18, (name, [(s, c.finish_reason) for s, v, c in mine if not v])
    thought = [c for request, _, valid, c in results if request == "choice_request" and valid
               and getattr(c.message, "reasoning", None)]
    assert len(thought) >= 5  # the model did think first on this prompt, and still answered


EXTRACT_MESSAGES = [{"role": "system", "content": "Think step by step before you answer."},
                    {"role": "user", "content": "Extract the name and age as JSON: Omar is 41 years old."}]
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


@pytest.mark.parametrize("messages, constraint, check", [
    (EXTRACT_MESSAGES, {"response_format": {"type": "json_object"}}, _is_object),
    (EXTRACT_MESSAGES, {"extra_body": {"structured_outputs": {"json": PERSON}}}, lambda text: _valid_json(text, PERSON)),
    (EXTRACT_MESSAGES, {"extra_body": {"structured_outputs": {"json_object": True}}}, _is_object),
    (CHOICE_MESSAGES, {"extra_body": {"structured_outputs": {"regex": "(Rust|Ada|C)!?"}}},
     lambda text: text.rstrip("!") in ("Rust", "Ada", "C")),
    (CHOICE_MESSAGES, {"extra_body": {"structured_outputs": {"grammar": 'root ::= "Rust" | "Ada"'}}},
     lambda text: text in ("Rust", "Ada")),
    (CHOICE_MESSAGES, {"extra_body": {"structured_outputs": {"grammar": 'start: lang "."?\nlang: "Rust" | "Ada"'}}},
     lambda text: text.rstrip(".") in ("Rust", "Ada")),
])
def test_every_kind_of_constraint_covers_the_think_block(client, messages, constraint, check):
    """Prompts on which the demo model thinks first: each kind answers under it, or runs out of tokens."""
    def one(seed: int) -> Any:
        return client.chat.completions.create(messages=messages, **constraint, **sampling(seed)).choices[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        choices = list(pool.map(one, range(8)))
    for c in choices:
        assert c.finish_reason == "length" or check(c.message.content), (c.finish_reason, c.message)
    assert sum(c.finish_reason == "stop" for c in choices) >= 6
    assert sum(bool(getattr(c.message, "reasoning", None)) for c in choices) >= 6


def test_a_named_tool_choice_covers_the_think_block(client):
    def one(seed: int) -> Any:
        return client.chat.completions.create(
            messages=CHOICE_MESSAGES, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
            **sampling(seed) | {"max_tokens": 250}).choices[0]  # the tools make the prompt 216 tokens long

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        choices = list(pool.map(one, range(8)))
    for c in choices:
        if c.finish_reason != "length":
            [call] = c.message.tool_calls
            assert call.function.name == "get_current_weather" and _valid_json(call.function.arguments, WEATHER)
    assert sum(c.finish_reason == "stop" for c in choices) >= 6


def test_streaming_gives_the_same_answers(client):
    """The same seeds streamed: reasoning deltas, then the constrained answer, and the same finish."""
    for seed in range(4):
        whole = choice_request(client, seed)[1]
        stream = client.chat.completions.create(messages=CHOICE_MESSAGES, stream=True, **sampling(seed),
                                                extra_body={"structured_outputs": {"choice": LANGUAGES}})
        content, reasoning, finish = "", "", None
        for chunk in stream:
            for c in chunk.choices:
                content += c.delta.content or ""
                reasoning += getattr(c.delta, "reasoning", None) or ""
                finish = c.finish_reason or finish
        assert (content, reasoning, finish) == (whole.message.content or "", whole.message.reasoning or "",
                                                whole.finish_reason)


# -- the template decides: thinking off, or a block the prompt opens -------------------------------------

def _template_reading_enable_thinking() -> str:
    """The demo template, plus what Qwen3's does with enable_thinking=false (an empty closed block),
    and an opened block with enable_thinking=true (templates that make the model think)."""
    config = json.loads((DEMO_MODEL / "tokenizer_config.json").read_text())
    end = "{{- '<|im_start|>assistant\\n' }}\n{%- endif %}"
    assert config["chat_template"].endswith(end)
    return config["chat_template"][:-len("{%- endif %}")] + (
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
        "{%- if enable_thinking is defined and enable_thinking is true %}{{- '<think>\\n' }}{%- endif %}"
        "{%- endif %}")


def test_enable_thinking_false_in_the_template_turns_thinking_off():
    with serve(chat_template=_template_reading_enable_thinking()) as running, \
            openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0, timeout=600) as c:
        def one(seed: int, thinking: bool) -> Any:
            return c.chat.completions.create(messages=CHOICE_MESSAGES, **sampling(seed), extra_body={
                "structured_outputs": {"choice": LANGUAGES},
                "chat_template_kwargs": {"enable_thinking": thinking}}).choices[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            off = list(pool.map(lambda s: one(s, False), range(8)))
            opened = list(pool.map(lambda s: one(s, True), range(8)))
    for choice in off:  # no think block at all: the answer right away
        assert choice.finish_reason == "stop" and choice.message.content in LANGUAGES, choice
        assert getattr(choice.message, "reasoning", None) is None
    for choice in opened:  # the prompt opened the block: reasoning, then a valid answer
        assert choice.finish_reason == "length" or choice.message.content in LANGUAGES, choice
        assert getattr(choice.message, "reasoning", None)
    assert sum(choice.finish_reason == "stop" for choice in opened) >= 6


# -- Lark grammars ------------------------------------------------------------------------------------------

def test_a_lark_grammar_constrains_the_answer(client):
    grammar = '?start: answer "."\nanswer: "yes" | "no" | NUMBER\nNUMBER: /[0-9]{1,3}/'
    r = client.chat.completions.create(messages=[{"role": "user", "content": "Is 7 a prime number?"}], n=4,
                                       extra_body={"structured_outputs": {"grammar": grammar}}, **sampling(1))
    for c in r.choices:
        assert c.finish_reason == "stop" and c.message.content.endswith(".")
        answer = c.message.content[:-1]
        assert answer in ("yes", "no") or answer.isdigit() and len(answer) <= 3, c.message


def test_an_unsupported_lark_feature_is_a_400_that_names_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model="demo", max_tokens=5,
                                       extra_body={"structured_outputs": {"grammar": '%import common.WS\nstart: "a" WS'}})
    assert "%import" in info.value.message and "unsupported Lark feature" in info.value.message
