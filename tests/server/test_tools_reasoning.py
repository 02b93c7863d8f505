"""Tools and reasoning: request rules end to end, and the response/stream assembly on given text.

The tiny test model cannot be made to write `<tool_call>` or `<think>`, so the assembly tests
take a real `ChatService` (real engine, tokenizer, template and request validation) and hand it
engine outputs whose text is written here: exactly what the engine would return if the model
had written that text.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pyengine import CompletionOutput, EngineConfig, RequestOutput
from pyengine.async_engine import AsyncEngine
from pyengine_server.serving_chat import ChatService, ServingConfig
from pyengine_server.streaming import ChatStream
from tests.server.conftest import MODEL_NAME, QWEN2, chat_body, serve

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


# -- end to end: what the real model run allows us to check --------------------------------------------


def test_auto_tool_choice_with_plain_text_output(client):
    completion = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}],
                                                tools=TOOLS, max_tokens=4, temperature=0)
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and not choice.message.tool_calls
    assert isinstance(choice.message.content, str)


# Forced tool choice (required / named) is generated under a grammar: tests/server/test_structured.py.


def test_tools_are_rendered_into_the_prompt(http):
    with_tools = http.post("/tokenize", json={"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}).json()
    without = http.post("/tokenize", json={"messages": [{"role": "user", "content": "x"}]}).json()
    assert with_tools["count"] >= without["count"]  # the ChatML fixture template ignores tools


def test_tool_parser_can_be_switched_off():
    with serve(tool_call_parser=None) as running, httpx.Client(base_url=running.url) as http:
        response = http.post("/v1/chat/completions", json=chat_body(tools=TOOLS))
        assert response.status_code == 400 and "tool-call parser" in response.json()["error"]["message"]
        response = http.post("/v1/chat/completions", json=chat_body(tools=TOOLS, tool_choice="none"))
        assert response.status_code == 200


def test_reasoning_end_to_end_with_a_thinking_template():
    """A template that opens <think> in the prompt: everything generated is reasoning until </think>."""
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")
    with serve(chat_template=template) as running, httpx.Client(base_url=running.url) as http:
        body = http.post("/v1/chat/completions", json=chat_body(temperature=0, max_tokens=5)).json()
        message = body["choices"][0]["message"]
        assert message["content"] is None and message["reasoning"]
        hidden = http.post("/v1/chat/completions", json=chat_body(temperature=0, max_tokens=5,
                                                                  include_reasoning=False)).json()
        assert hidden["choices"][0]["message"]["reasoning"] is None
        events = []
        with http.stream("POST", "/v1/chat/completions", json=chat_body(temperature=0, max_tokens=5, stream=True)) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        streamed = "".join(e["choices"][0]["delta"].get("reasoning", "") for e in events[1:])
        assert streamed == message["reasoning"]


# -- assembly on given text ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service():
    engine = AsyncEngine(EngineConfig(model=str(QWEN2), num_kv_blocks=16))
    yield ChatService(engine, ServingConfig(served_model_names=[MODEL_NAME], reasoning_parser="think"))
    engine.shutdown()


def outputs_for(text: str, cuts: list[int], finish_reason: str = "stop") -> list[RequestOutput]:
    """Engine outputs of kind DELTA for `text` arriving in pieces cut at `cuts` (one token per piece);
    with no cuts, the one output is also the whole (cumulative) one."""
    ends = [*cuts, len(text)]
    result = []
    for step, end in enumerate(ends):
        last = step == len(ends) - 1
        start = ends[step - 1] if step else 0
        completion = CompletionOutput(0, text[start:end], [step + 1], None, None,
                                      finish_reason if last else None, None)
        result.append(RequestOutput("r", None, [1, 2, 3], None, [completion], last, 0))
    return result


def run_stream(service, body, outputs):
    job = service.prepare(body, None)
    writer = ChatStream(service, job)
    events = writer.start(outputs[0])
    for output in outputs:
        events += writer.step(output)
    events += writer.end(outputs[-1])
    return [json.loads(e[6:]) for e in events if e.startswith("data: {")], job


@pytest.mark.parametrize("cuts", [[], [5], [3, 12, 30, 44, 60], list(range(1, 90, 7))])
def test_streamed_tool_calls_add_up_to_the_whole_response(service, cuts):
    text = "<think>weather?</think>Checking. " + CALL
    body = chat_body(tools=TOOLS, stream=True)
    events, job = run_stream(service, body, outputs_for(text, cuts))
    whole = service.build_response(service.prepare({**body, "stream": False}, None), outputs_for(text, [])[-1])
    message = whole["choices"][0]["message"]
    assert message["reasoning"] == "weather?" and message["content"] == "Checking. "
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    [call] = message["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    deltas = [e["choices"][0]["delta"] for e in events[1:]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "weather?"
    assert "".join(d.get("content", "") for d in deltas) == "Checking. "
    tool_deltas = [t for d in deltas for t in d.get("tool_calls", [])]
    assert tool_deltas[0]["function"]["name"] == "get_weather" and tool_deltas[0]["type"] == "function"
    assert tool_deltas[0]["id"].startswith("chatcmpl-tool-")
    assert "".join(t["function"].get("arguments", "") for t in tool_deltas) == '{"city": "Paris"}'
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_parallel_tool_calls_false_keeps_the_first(service):
    text = CALL + CALL.replace("Paris", "Oslo")
    body = chat_body(tools=TOOLS, parallel_tool_calls=False)
    whole = service.build_response(service.prepare(body, None), outputs_for(text, [])[-1])
    assert len(whole["choices"][0]["message"]["tool_calls"]) == 1
    events, _ = run_stream(service, {**body, "stream": True}, outputs_for(text, [40, 80]))
    indexes = {t["index"] for e in events[1:] for t in e["choices"][0]["delta"].get("tool_calls", [])}
    assert indexes == {0}
    whole = service.build_response(service.prepare({**body, "parallel_tool_calls": True}, None),
                                   outputs_for(text, [])[-1])
    assert len(whole["choices"][0]["message"]["tool_calls"]) == 2


def test_tool_choice_none_leaves_calls_in_the_content(service):
    body = chat_body(tools=TOOLS, tool_choice="none")
    whole = service.build_response(service.prepare(body, None), outputs_for(CALL, [])[-1])
    message = whole["choices"][0]["message"]
    assert message["content"] == CALL and message["tool_calls"] == []


def test_forced_choices_accept_a_valid_call(service):
    named = chat_body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    whole = service.build_response(service.prepare(named, None), outputs_for('{"city": "Rome"}', [])[-1])
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == ""  # named keeps "stop"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Rome"}'
    required = chat_body(tools=TOOLS, tool_choice="required")
    whole = service.build_response(service.prepare(required, None), outputs_for(CALL, [])[-1])
    assert whole["choices"][0]["finish_reason"] == "tool_calls"


def test_reasoning_without_tools_streams_like_the_whole(service):
    text = "<think>a</think>b"
    events, _ = run_stream(service, chat_body(stream=True), outputs_for(text, [2, 9, 15]))
    deltas = [e["choices"][0]["delta"] for e in events[1:]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "a"
    assert "".join(d.get("content", "") for d in deltas) == "b"
    whole = service.build_response(service.prepare(chat_body(), None), outputs_for(text, [])[-1])
    assert (whole["choices"][0]["message"]["reasoning"], whole["choices"][0]["message"]["content"]) == ("a", "b")
