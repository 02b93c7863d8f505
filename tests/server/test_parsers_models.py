"""The tool-call parsers of other model families (llama3_json, mistral, pythonic) and the
reasoning parsers deepseek_r1 and qwen3, on outputs written by hand in each model card's format.

Each streamed case is checked against the whole-output parse of the same text: cut once at
every position, and fed one character at a time (a call split across many deltas).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine_server.reasoning import (
    DeepSeekR1ReasoningParser, Qwen3ReasoningParser, ThinkReasoningParser, reasoning_parser_class)
from pyengine_server.tool_parsers import (
    Llama3JsonToolParser, MistralToolParser, PythonicToolParser, get_tool_parser, tool_parser_names)

from .conftest import chat_body, serve
from .test_parsers import stream

# -- recorded outputs, in the formats of the model cards ---------------------------------------------

LLAMA3 = '{"name": "get_current_conditions", "parameters": {"location": "San Francisco, CA", "unit": "Fahrenheit"}}'
LLAMA3_TWO = ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}; '
              '{"name": "get_time", "parameters": {"zone": "Europe/Paris", "h24": true}}')
MISTRAL_LIST = ('[TOOL_CALLS][{"name": "get_current_weather", "arguments": {"location": "Paris, France", '
                '"format": "celsius"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]')
MISTRAL_NAMED = ('[TOOL_CALLS]get_current_weather[ARGS]{"location": "Paris, France", "format": "celsius"}'
                 '[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}')
PYTHONIC = '[get_user_info(user_id=7890, special=\'black\')]'
PYTHONIC_TWO = ('[get_weather(city="San Francisco", metric="celsius"), '
                'get_weather(city="Seattle", metric="celsius", extra={"days": [1, 2], "ok": True, "x": None})]')
LLAMA4 = '<|python_start|>[get_weather(city="Oslo, Norway")]<|python_end|>'

# (parser, text, expected calls as (name, arguments dict), expected content)
WELL_FORMED = [
    (Llama3JsonToolParser, LLAMA3,
     [("get_current_conditions", {"location": "San Francisco, CA", "unit": "Fahrenheit"})], None),
    (Llama3JsonToolParser, LLAMA3_TWO,
     [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "Europe/Paris", "h24": True})], None),
    (Llama3JsonToolParser, ' {"name": "ping", "arguments": {}}', [("ping", {})], None),
    (MistralToolParser, MISTRAL_LIST,
     [("get_current_weather", {"location": "Paris, France", "format": "celsius"}), ("get_time", {"zone": "CET"})],
     None),
    (MistralToolParser, "Let me look that up." + MISTRAL_NAMED,
     [("get_current_weather", {"location": "Paris, France", "format": "celsius"}), ("get_time", {"zone": "CET"})],
     "Let me look that up."),
    (PythonicToolParser, PYTHONIC, [("get_user_info", {"user_id": 7890, "special": "black"})], None),
    (PythonicToolParser, PYTHONIC_TWO,
     [("get_weather", {"city": "San Francisco", "metric": "celsius"}),
      ("get_weather", {"city": "Seattle", "metric": "celsius", "extra": {"days": [1, 2], "ok": True, "x": None}})],
     None),
    (PythonicToolParser, LLAMA4, [("get_weather", {"city": "Oslo, Norway"})], None),
]

# outputs that are not calls: the whole text is content, streamed or not
MALFORMED = [
    (Llama3JsonToolParser, "The weather in Paris is mild."),
    (Llama3JsonToolParser, '{"name": "Ada", "age": 36}'),  # a JSON answer, not a call: no parameters
    (Llama3JsonToolParser, '{"name": "get_weather" "parameters": {}}'),  # not JSON
    (Llama3JsonToolParser, "<|python_tag|>print(1)"),
    (MistralToolParser, "No tools needed: 2 + 2 = 4. [TOOL_CALLS is not a marker"),
    (MistralToolParser, "[TOOL_CALLS] sorry, I cannot call that"),
    (MistralToolParser, '[TOOL_CALLS][{"oops": 1}]'),
    (MistralToolParser, "[TOOL_CALLS]"),
    (PythonicToolParser, "[1] See the footnote."),
    (PythonicToolParser, '[get_weather("Paris")]'),  # a positional argument
    (PythonicToolParser, "[get_weather(city=open('x'))]"),  # not a literal: never evaluated
    (PythonicToolParser, "get_weather(city='Paris')"),  # not a list
]


def cuts_of(text: str) -> list[list[str]]:
    """Every single cut, and one character per delta."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


@pytest.mark.parametrize("cls, text, expected, content", WELL_FORMED)
def test_whole_output_calls_and_content(cls, text, expected, content):
    out = cls().extract(text)
    assert out.tools_called and out.content == content
    assert [(c.name, json.loads(c.arguments)) for c in out.tool_calls] == expected
    for call in out.tool_calls:  # vLLM's serialisation: json.dumps, non-ASCII kept
        assert call.arguments == json.dumps(json.loads(call.arguments), ensure_ascii=False)
        assert call.id.startswith("chatcmpl-tool-")


@pytest.mark.parametrize("cls, text, expected, content", WELL_FORMED)
def test_streaming_matches_whole_output_at_every_cut_and_char_by_char(cls, text, expected, content):
    whole = cls().extract(text)
    for pieces in cuts_of(text):
        streamed_content, calls = stream(cls(), pieces)
        assert streamed_content == (whole.content or "")
        assert [(c["name"], c["arguments"]) for c in calls.values()] == \
            [(c.name, c.arguments) for c in whole.tool_calls]
        assert all(c["id"].startswith("chatcmpl-tool-") for c in calls.values())


@pytest.mark.parametrize("cls, text", MALFORMED)
def test_malformed_output_is_content_whole_and_streamed(cls, text):
    out = cls().extract(text)
    assert (out.tools_called, out.tool_calls, out.content) == (False, [], text)
    for pieces in cuts_of(text):
        assert stream(cls(), pieces) == (text, {})


@pytest.mark.parametrize("cls, text", [
    (Llama3JsonToolParser, '{"name": "get_weather", "parameters": {"city": "Paris"'),
    (MistralToolParser, '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}'),
    (PythonicToolParser, '[get_weather(city="Paris"), get_time('),
])
def test_a_call_cut_off_after_it_began_streaming_is_content_whole_but_was_sent(cls, text):
    """max_tokens can end a call mid-way: the complete response cannot parse it (content), while
    a stream has already sent its header and arguments: it cannot take them back."""
    assert cls().extract(text).content == text
    content, calls = stream(cls(), list(text))
    assert content == "" and calls[0]["name"] == "get_weather" and calls[0]["arguments"].startswith('{"city": "Paris')


@pytest.mark.parametrize("cls, text", [(Llama3JsonToolParser, LLAMA3), (MistralToolParser, MISTRAL_NAMED),
                                       (MistralToolParser, MISTRAL_LIST)])
def test_json_formats_send_the_name_first_then_the_arguments_in_many_pieces(cls, text):
    parser = cls()
    deltas = [d for ch in text for d in parser.feed(ch)[1]] + parser.finish()[1]
    assert deltas[0].name is not None and deltas[0].arguments is None
    pieces = [d.arguments for d in deltas if d.index == 0 and d.arguments]
    assert len(pieces) > 5  # the arguments arrive while the model writes them


def test_pythonic_sends_each_call_when_its_parenthesis_closes():
    parser = PythonicToolParser()
    first_call = PYTHONIC_TWO.index("), ") + 1
    _, deltas = parser.feed(PYTHONIC_TWO[:first_call - 1])
    assert deltas == []
    _, deltas = parser.feed(PYTHONIC_TWO[first_call - 1:first_call])
    assert [(d.index, d.name, json.loads(d.arguments)) for d in deltas] == \
        [(0, "get_weather", {"city": "San Francisco", "metric": "celsius"})]


def test_llama3_content_streams_at_once_when_it_is_not_json():
    parser = Llama3JsonToolParser()
    assert parser.feed("  Sure") == ("  Sure", [])
    assert parser.feed(", here.") == (", here.", [])


def test_mistral_content_before_the_marker_streams_and_a_partial_marker_is_held():
    parser = MistralToolParser()
    assert parser.feed("Checking [TOOL_") == ("Checking ", [])
    content, deltas = parser.feed('CALLS]f[ARGS]{"a": 1}')
    assert content == "" and deltas[0].name == "f"


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(WELL_FORMED), st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_any_chunking_gives_the_whole_output_calls(case, cuts):
    cls, text, _, _ = case
    bounds = [0, *sorted({c for c in cuts if c < len(text)}), len(text)]
    content, calls = stream(cls(), [text[a:b] for a, b in zip(bounds, bounds[1:])])
    whole = cls().extract(text)
    assert content == (whole.content or "")
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [(c.name, c.arguments) for c in whole.tool_calls]


def test_the_parsers_have_vllms_names():
    assert {"hermes", "llama3_json", "mistral", "pythonic"} <= set(tool_parser_names())
    assert get_tool_parser("pythonic") is PythonicToolParser
    assert MistralToolParser.keeps_special_tokens and not Llama3JsonToolParser.keeps_special_tokens


# -- reasoning: deepseek_r1 and qwen3 -----------------------------------------------------------------

R1_PROMPT = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"


@pytest.mark.parametrize("cls, prompt, text, expected", [
    # DeepSeek-R1: the open tag in the prompt, or in the output, or nowhere: reasoning until </think>
    (DeepSeekR1ReasoningParser, R1_PROMPT, "2 plus 2 is 4.\n</think>\n\nThe answer is 4.",
     ("2 plus 2 is 4.\n", "\n\nThe answer is 4.")),
    (DeepSeekR1ReasoningParser, "<｜Assistant｜>", "<think>\nadd them\n</think>4", ("\nadd them\n", "4")),
    (DeepSeekR1ReasoningParser, "<｜Assistant｜>", "add them</think>4", ("add them", "4")),
    (DeepSeekR1ReasoningParser, R1_PROMPT, "still thinking when the tokens ran out",
     ("still thinking when the tokens ran out", None)),
    # Qwen3: tags in the output; enable_thinking false closes an empty block in the prompt
    (Qwen3ReasoningParser, "<|im_start|>assistant\n", "<think>\nLet me add.\n</think>\n\n4",
     ("\nLet me add.\n", "\n\n4")),
    (Qwen3ReasoningParser, "<|im_start|>assistant\n<think>\n\n</think>\n\n", "4", (None, "4")),
    (Qwen3ReasoningParser, "<|im_start|>assistant\n<think>\n", "adding</think>4", ("adding", "4")),
    (Qwen3ReasoningParser, "<|im_start|>assistant\n", "<think>never closed", (None, "<think>never closed")),
    (Qwen3ReasoningParser, "<|im_start|>assistant\n", "4, no thinking", (None, "4, no thinking")),
])
def test_reasoning_parsers_whole_output(cls, prompt, text, expected):
    assert cls(prompt).parse(text) == expected


@pytest.mark.parametrize("cls, prompt, text", [
    (DeepSeekR1ReasoningParser, R1_PROMPT, "2 plus 2 is 4.\n</think>\n\nThe answer is 4."),
    (DeepSeekR1ReasoningParser, "", "<think>\nadd them\n</think>4"),
    (DeepSeekR1ReasoningParser, "", "  add</thin"),
    (Qwen3ReasoningParser, "", "<think>\nLet me add.\n</think>\n\n4"),
    (Qwen3ReasoningParser, "<think>\n\n</think>\n\n", "4"),
    (Qwen3ReasoningParser, "", "<thi is not a tag"),
])
def test_reasoning_stream_matches_whole_output(cls, prompt, text):
    whole = cls(prompt).parse(text)
    for pieces in cuts_of(text):
        parser = cls(prompt)
        deltas = [parser.feed(p) for p in pieces] + [parser.finish()]
        reasoning = "".join(d.reasoning for d in deltas)
        content = "".join(d.content for d in deltas)
        assert (reasoning or None, content or None) == (whole[0] or None, whole[1])


def test_reasoning_parsers_by_name():
    assert reasoning_parser_class("deepseek_r1", None) is DeepSeekR1ReasoningParser
    assert reasoning_parser_class("qwen3", None) is Qwen3ReasoningParser
    assert reasoning_parser_class("auto", "{{ '<think>' }}") is ThinkReasoningParser
    assert reasoning_parser_class("auto", "{{ messages }}") is None
    assert reasoning_parser_class("none", "{{ '<think>' }}") is None
    with pytest.raises(ValueError, match="unknown reasoning parser 'r2'"):
        reasoning_parser_class("r2", None)


# -- through the server -------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_served_with_deepseek_r1_an_output_without_the_end_tag_is_all_reasoning():
    with serve(reasoning_parser="deepseek_r1") as running:
        import httpx
        body = chat_body(max_tokens=6, ignore_eos=True)
        message = httpx.post(f"{running.url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
    assert message["content"] is None and len(message["reasoning"]) > 0


@pytest.mark.parametrize("parser, keeps", [("mistral", True), ("hermes", False), ("pythonic", False)])
def test_the_mistral_parser_keeps_special_tokens_in_the_text_it_reads(parser, keeps):
    with serve(tool_call_parser=parser) as running:
        chat = running.app.state.server.chat
        with_tools = chat.prepare(chat_body(tools=TOOLS), None)
        without = chat.prepare(chat_body(), None)
    assert with_tools.params.skip_special_tokens is (not keeps)
    assert without.params.skip_special_tokens is True
