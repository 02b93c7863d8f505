"""What a user moving between vLLM and pyengine notices, through the real server and the `openai` client.

Each test states a vLLM behaviour (from its documentation and its own server tests) and checks
that `pyengine serve` does the same: schemas that generate only their declared keys, lax request
typing, `"model": ""` and `/invocations`, vLLM command lines, streamed and whole answers that
agree when max_tokens cuts a tool call, and the details of responses and 400 messages.

The model is the tiny random-weight Qwen2 checkpoint (its ChatML template ignores `tools`, so
prompts stay short): what it writes is noise, so every structured answer here is the server's
doing, and every cut is max_tokens'.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from typing import Any

import httpx
import openai
import pytest

from pyengine_server.cli import build_parser, configs
from pyengine_server.params import generation_defaults
from tests.server.conftest import MODEL_NAME, QWEN2, chat_body, serve
from tests.server.serve_command import free_port, pyengine_serve

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
UNITS = {"type": "function", "function": {"name": "get_unit", "parameters": {
    "type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "required": ["unit"], "additionalProperties": False}}}
OPEN_SCHEMA = {"type": "object", "properties": {"a": {"type": "boolean"}}}  # silent on additionalProperties


def sse(http: httpx.Client, body: dict[str, Any], url: str = "/v1/chat/completions") -> list[dict[str, Any]]:
    """The JSON events of a streamed answer (without `[DONE]`)."""
    with http.stream("POST", url, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]


# -- JSON schemas generate only their declared keys, unless the request asks for plain semantics --


def _keys(text: str) -> set[str]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return set(value)


def test_a_schema_silent_on_additional_properties_gets_only_its_declared_keys(client):
    """vLLM's default backend (xgrammar) generates no undeclared key; neither do we, by default."""
    schema_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": OPEN_SCHEMA}}
    compact = {"disable_any_whitespace": True}  # so that every answer ends well within max_tokens
    for extra in ({"response_format": schema_format, "extra_body": {"structured_outputs": compact}},
                  {"extra_body": {"structured_outputs": {"json": OPEN_SCHEMA, **compact}}}):
        completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, n=8, seed=3, temperature=1.0,
                                                    max_tokens=60, **extra)
        for choice in completion.choices:
            assert choice.finish_reason == "stop", choice
            assert _keys(choice.message.content) <= {"a"}, choice.message.content
    tool = {"type": "function", "function": {"name": "f", "parameters": OPEN_SCHEMA}}
    completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, n=4, seed=3, temperature=1.0,
                                                max_tokens=80, tools=[tool], tool_choice="required",
                                                parallel_tool_calls=False, extra_body={"structured_outputs": compact})
    for choice in completion.choices:
        assert choice.finish_reason == "tool_calls", choice
        for call in choice.message.tool_calls:
            assert _keys(call.function.arguments) <= {"a"}, call.function.arguments


def test_explicit_false_disable_additional_properties_gives_plain_json_schema(client):
    """`"disable_additional_properties": false`: any key may follow, as JSON Schema says."""
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, n=8, seed=3, temperature=1.0, max_tokens=30,
        extra_body={"structured_outputs": {"json": OPEN_SCHEMA, "disable_additional_properties": False}})
    texts = [choice.message.content for choice in completion.choices]
    assert all(text.lstrip().startswith("{") for text in texts), texts
    assert any(re.match(r'\s*\{\s*"(?!a")', text) for text in texts), texts  # some first key is not "a"


# -- lax request typing and the spec's message params --------------------------------------------


def test_strings_and_integral_floats_are_read_as_vllm_reads_them(client):
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens="5", logprobs="true", top_logprobs=2.0, n=2.0, seed="7",
        extra_body={"ignore_eos": "false", "top_k": "3", "min_tokens": 5.0})
    assert len(completion.choices) == 2
    for choice in completion.choices:
        assert len(choice.logprobs.content) == 5 and len(choice.logprobs.content[0].top_logprobs) == 2
    again = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=5, logprobs=True,
                                           top_logprobs=2, n=2, seed=7, extra_body={"top_k": 3, "min_tokens": 5})
    assert [c.message.content for c in again.choices] == [c.message.content for c in completion.choices]


@pytest.mark.parametrize("field, value", [
    ("max_tokens", "five"), ("max_tokens", 5.5), ("logprobs", "maybe"), ("temperature", "warm"), ("n", [2]),
])
def test_values_that_are_not_of_the_type_are_still_422(client, field, value):
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, **{field: value})
    assert raised.value.body["detail"][0]["loc"] == ["body", field]


def test_messages_the_spec_allows_without_their_usual_fields(client):
    messages = [
        {"role": "developer"},  # no content
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "Let me add."},
        {"role": "tool", "content": "4"},  # no tool_call_id
        {"role": "function", "content": "4"},  # no name
    ]
    completion = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=2,
                                                extra_body={"ignore_eos": True})
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 2


# -- "model": "" and /invocations ------------------------------------------------------------------


def test_empty_model_name_means_the_served_model(client):
    completion = client.chat.completions.create(model="", messages=HELLO, max_tokens=2, temperature=0)
    assert completion.model == MODEL_NAME and completion.usage.completion_tokens == 2


def test_invocations_answers_as_chat_completions(http):
    body = chat_body(temperature=0, max_tokens=4, return_token_ids=True)
    chat = http.post("/v1/chat/completions", json=body).json()
    invoked = http.post("/invocations", json=body)
    assert invoked.status_code == 200
    invoked = invoked.json()
    assert invoked["object"] == "chat.completion" and invoked["choices"][0]["token_ids"] == chat["choices"][0]["token_ids"]
    events = sse(http, body, url="/invocations")
    assert [e["object"] for e in events] == ["chat.completion.chunk"] * len(events)
    assert http.post("/invocations", json={"messages": "hi"}).status_code == 422


# -- vLLM command lines --------------------------------------------------------------------------


def start_error(args: list[str]) -> str:
    """`pyengine serve ARGS` must refuse to start: its exit status is 2; returns what it printed."""
    done = subprocess.run([sys.executable, "-m", "pyengine_server", "serve", *args, "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_the_tool_calling_command_line_of_vllms_docs_starts_pyengine(tmp_path):
    """`vllm serve MODEL --enable-auto-tool-choice --tool-call-parser hermes`, plus flags that mean
    nothing here (one log line names them) and flags that do."""
    generation = tmp_path / "generation"
    generation.mkdir()
    (generation / "generation_config.json").write_text(json.dumps({"max_new_tokens": 3}))
    log = tmp_path / "serve.log"
    args = [str(QWEN2), "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
            "--enforce-eager", "--trust-remote-code", "--tensor-parallel-size", "1", "--dtype", "auto",
            "--generation-config", str(generation), "--override-generation-config", '{"temperature": 0}',
            "--response-role", "bot", "--root-path", "/proxy", "--enable-prompt-tokens-details",
            "--enable-force-include-usage", "--uvicorn-log-level", "warning", "--disable-log-requests",
            "--gpu-memory-utilization", "0.5", "--num-kv-blocks", "32"]
    with pyengine_serve(args, log=log, timeout=90) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        model = client.models.list().data[0].id
        assert model == str(QWEN2)  # the positional model, as `vllm serve MODEL`
        first = client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER])
        second = client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER])
        assert first.usage.completion_tokens == 3  # max_new_tokens from --generation-config PATH
        assert first.choices[0].message.content == second.choices[0].message.content  # temperature 0
        assert first.choices[0].message.role == "bot"  # --response-role
        assert second.usage.prompt_tokens_details.cached_tokens >= 16  # --enable-prompt-tokens-details
        events = sse(http, {"messages": HELLO, "max_tokens": 2})  # no stream_options
        assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 2
        # --root-path: the proxy in front strips the prefix; the document tells clients to add it
        assert http.get("/openapi.json").json()["servers"] == [{"url": "/proxy"}]
    output = log.read_text()
    inert = [line for line in output.splitlines() if "changing nothing here" in line]
    assert len(inert) == 1, output
    for flag in ("--enforce-eager", "--trust-remote-code", "--tensor-parallel-size", "--gpu-memory-utilization"):
        assert flag in inert[0]
    assert "--dtype" not in inert[0] and "prompt tokens" not in output  # --disable-log-requests


@pytest.mark.parametrize("args, needles", [
    (["--tensor-parallel-size", "2"], ["--tensor-parallel-size 2", "only 1"]),
    (["--quantization", "awq"], ["--quantization awq", "not supported"]),
    (["--dtype", "bfloat16"], ["--dtype bfloat16", "--device cpu runs auto, float32"]),
    (["--max-model-len", "4096"], ["4096", "128"]),
    (["--gpu-memory-utilization", "1.5"], ["--gpu-memory-utilization", "(0, 1]"]),
    (["--override-generation-config", '{"temprature": 0.5}'], ["temprature"]),
])
def test_what_pyengine_cannot_honour_stops_the_start_with_a_reason(args, needles):
    message = start_error(["--model", str(QWEN2), *args])
    for needle in needles:
        assert needle in message, message


def test_generation_config_vllm_ignores_the_models_defaults(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.3, "top_k": 5}))
    assert generation_defaults(str(tmp_path)) == {"temperature": 0.3, "top_k": 5}
    assert generation_defaults(str(tmp_path), "vllm") == {}
    assert generation_defaults(str(tmp_path), "vllm", {"top_p": 0.5}) == {"top_p": 0.5}


# -- a tool call cut by max_tokens: the same answer streamed or not ---------------------------------


CALL_REGEX = r'<tool_call>\{"name": "get_weather", "arguments": \{"city": "[a-z]{12}"\}\}</tool_call>'


def _call_request(max_tokens: int, **fields: Any) -> dict[str, Any]:
    """tool_choice auto, with a regex that makes the random model write a Hermes call."""
    return chat_body(tools=[WEATHER], max_tokens=max_tokens, seed=11, temperature=1.0,
                     structured_outputs={"regex": CALL_REGEX}, **fields)


def test_a_cut_tool_call_finishes_length_streamed_or_not(http):
    whole = http.post("/v1/chat/completions", json=_call_request(100, return_token_ids=True)).json()["choices"][0]
    assert whole["finish_reason"] == "tool_calls" and whole["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    ids = whole["token_ids"]
    # the shortest output that has started the city: the call is cut inside its arguments
    cut = next(n for n in range(1, len(ids)) if re.search(r'"city": "[a-z]', http.post(
        "/detokenize", json={"tokens": ids[:n]}).json()["prompt"]))
    text = http.post("/detokenize", json={"tokens": ids[:cut]}).json()["prompt"]

    choice = http.post("/v1/chat/completions", json=_call_request(cut)).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"] == [] and choice["message"]["content"] == text  # the raw text

    events = sse(http, _call_request(cut))
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["length"]
    deltas = [d for e in events for c in e["choices"] for d in c["delta"].get("tool_calls", [])]
    assert deltas[0]["function"]["name"] == "get_weather"  # what was sent stays sent
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)  # and it is visibly unfinished


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_a_forced_call_cut_by_max_tokens_is_null_not_empty(client, http, tool_choice):
    completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, tools=[WEATHER],
                                                tool_choice=tool_choice, max_tokens=5)
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and choice.message.tool_calls is None
    assert choice.message.content.startswith("<")  # the cut text, not a call
    assert completion.model_dump()["choices"][0]["message"]["tool_calls"] is None
    events = sse(http, chat_body(tools=[WEATHER], tool_choice=tool_choice, max_tokens=5))
    assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] == ["length"]


# -- response and route details --------------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_only_with_an_api_key(http):
    document = http.get("/openapi.json").json()
    assert "securitySchemes" not in document["components"]
    assert not any("security" in op for path in document["paths"].values() for op in path.values())
    with serve(api_key="k") as running:
        secured = httpx.get(f"{running.url}/openapi.json").json()
        assert secured["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        assert secured["paths"]["/v1/chat/completions"]["post"]["security"] == [{"HTTPBearer": []}]
        assert httpx.post(f"{running.url}/invocations", json=chat_body()).status_code == 401


def test_prompt_tokens_details_is_null_unless_enabled(client):
    messages = [{"role": "system", "content": "You are a careful assistant. " * 3}, *HELLO]
    for _ in range(2):  # the second one finds the prompt in the prefix cache
        completion = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=2)
    assert completion.usage.prompt_tokens_details is None
    assert completion.model_dump()["usage"]["prompt_tokens_details"] is None


def test_every_bad_logit_bias_key_is_named(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, logit_bias={"abc": 1, "5": 1, "1.5": 2})
    message = raised.value.body["message"]
    assert "'abc'" in message and "'1.5'" in message and "'5'" not in message
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, logit_bias={"1000": 1, "5": 1, "2000": 1})
    assert "[1000, 2000]" in raised.value.body["message"]


def test_a_json_schema_response_format_without_its_schema_says_so(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, response_format={"type": "json_schema"})
    assert "json_schema must be provided" in raised.value.body["message"]


def test_forced_tool_choice_needs_no_parser_and_auto_names_what_it_needs():
    with serve(tool_call_parser=None) as running, httpx.Client(base_url=running.url, timeout=60) as http:
        named = {"type": "function", "function": {"name": "get_unit"}}
        response = http.post("/v1/chat/completions", json=chat_body(tools=[WEATHER, UNITS], tool_choice=named,
                                                                    max_tokens=60, temperature=0))
        assert response.status_code == 200, response.text
        call = response.json()["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_unit" and json.loads(call["function"]["arguments"])["unit"] in "cf"
        response = http.post("/v1/chat/completions", json=chat_body(tools=[WEATHER]))
        assert response.status_code == 400 and '"auto" tool choice' in response.json()["error"]["message"]


@pytest.mark.parametrize("seed", [2**63, 2**64, 10**30, -(2**63) - 1, -(10**30)])
def test_an_out_of_range_seed_is_422_whatever_its_size(http, seed):
    response = http.post("/v1/chat/completions", json=chat_body(seed=seed))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "seed"]


def test_the_largest_seeds_are_accepted(http):
    for seed in (2**63 - 1, -(2**63)):
        assert http.post("/v1/chat/completions", json=chat_body(seed=seed, max_tokens=1)).status_code == 200


def test_gpu_memory_utilization_is_the_kv_cache_share_of_device_memory(monkeypatch):
    """On --device cuda the KV cache takes that share of the device's memory (read from cupy)."""
    gib = 1 << 30
    runtime = types.SimpleNamespace(memGetInfo=lambda: (70 * gib, 80 * gib))  # (free, total)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))
    parse = build_parser().parse_args
    engine, _, inert = configs(parse([str(QWEN2), "--device", "cuda", "--gpu-memory-utilization", "0.25"]))
    assert engine.kv_cache_memory == 20 * gib and not inert
    engine, _, _ = configs(parse([str(QWEN2), "--device", "cuda", "--gpu-memory-utilization", "0.25",
                                  "--kv-cache-memory", "1000"]))
    assert engine.kv_cache_memory == 1000  # an explicit size wins, as in vLLM
    with pytest.raises(ValueError, match="only 75161927680 of the device's 85899345920 bytes are free"):
        configs(parse([str(QWEN2), "--device", "cuda", "--gpu-memory-utilization", "0.9"]))
