"""The tool-call and reasoning parsers: pure functions of text, whole and streamed.

Every streamed case is checked against the whole-output parse of the same text, for every way
of cutting the text into deltas that the case lists (tags split across deltas included).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine_server.reasoning import ThinkReasoningParser, prompt_opens_reasoning, template_uses_reasoning
from pyengine_server.tool_parsers import HermesToolParser, ToolParser, get_tool_parser, tool_parser_names

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}\n</tool_call>'


def stream(parser: ToolParser, pieces: list[str]) -> tuple[str, dict[int, dict]]:
    """Feed `pieces`, then finish; the content and the calls assembled from the deltas."""
    content, calls = "", {}
    for out_text, deltas in [parser.feed(p) for p in pieces] + [parser.finish()]:
        content += out_text
        for d in deltas:
            call = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            if d.id is not None:
                assert call["id"] is None, "the header is sent once"
                call["id"], call["name"] = d.id, d.name
            if d.arguments is not None:
                call["arguments"] += d.arguments
    return content, calls


def stream_tools(text: str, cuts: list[int]) -> tuple[str, dict[int, dict]]:
    """Feed `text` cut at `cuts` to a Hermes parser; the content and the calls assembled from the deltas."""
    return stream(HermesToolParser(), [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])])


# -- hermes, whole output --------------------------------------------------------------------------


def test_hermes_extracts_a_call_and_the_content_before_it():
    out = HermesToolParser().extract("Let me check. " + CALL)
    assert out.tools_called
    assert out.content == "Let me check. "
    [call] = out.tool_calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "°C"}
    assert "°C" in call.arguments  # ensure_ascii=False, as vLLM
    assert call.id.startswith("chatcmpl-tool-") and len(call.id) == len("chatcmpl-tool-") + 32


def test_hermes_parallel_calls_and_null_content():
    out = HermesToolParser().extract(CALL + "\n" + CALL.replace("Paris", "Oslo"))
    assert out.content is None
    assert [json.loads(c.arguments)["city"] for c in out.tool_calls] == ["Paris", "Oslo"]


def test_hermes_unterminated_call_is_parsed_like_vllm():
    out = HermesToolParser().extract('<tool_call>{"name": "f", "arguments": {}}')
    assert out.tools_called and out.tool_calls[0].name == "f" and out.tool_calls[0].arguments == "{}"


@pytest.mark.parametrize("text", ["no calls here", "<tool_call>{not json}</tool_call>",
                                  '<tool_call>{"arguments": {}}</tool_call>', "<tool_call>[1, 2]</tool_call>"])
def test_hermes_text_that_is_not_a_call_stays_content(text):
    out = HermesToolParser().extract(text)
    assert not out.tools_called and out.tool_calls == [] and out.content == text


def test_parsers_are_pluggable():
    assert "hermes" in tool_parser_names()
    assert get_tool_parser("hermes") is HermesToolParser
    with pytest.raises(ValueError, match="unknown tool-call parser"):
        get_tool_parser("nope")


# -- hermes, streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Sure. " + CALL, CALL + CALL.replace("Paris", "Rome"), "plain <tool text",
                                  "a <tool_cal", 'x<tool_call>{"name": "f", "arguments": {"a": 1}}'])
def test_hermes_stream_matches_whole_output_for_every_single_cut(text):
    whole = HermesToolParser().extract(text)
    for cut in range(len(text) + 1):
        content, calls = stream_tools(text, [cut])
        if whole.tools_called:
            assert content == (whole.content or "")
            assert [c["name"] for c in calls.values()] == [c.name for c in whole.tool_calls]
            assert [c["arguments"] for c in calls.values()] == [c.arguments for c in whole.tool_calls]
        else:
            assert content == text and calls == {}


def test_hermes_stream_sends_the_name_before_the_arguments():
    parser = HermesToolParser()
    _, deltas = parser.feed('<tool_call>{"name": "get_weather", "argu')
    assert [(d.index, d.name, d.arguments) for d in deltas] == [(0, "get_weather", None)]
    assert deltas[0].to_json()["type"] == "function"
    _, deltas = parser.feed('ments": {"city": "Paris"}}</tool_call>')
    assert [(d.index, d.id, d.arguments) for d in deltas] == [(0, None, '{"city": "Paris"}')]
    assert deltas[0].to_json() == {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}


def test_hermes_streams_the_arguments_while_the_model_writes_them():
    parser = HermesToolParser()
    _, deltas = parser.feed('<tool_call>\n{"name": "book", "arguments": {"city": "Pa')
    assert [(d.name, d.arguments) for d in deltas] == [("book", None), (None, '{"city": "Pa')]
    _, deltas = parser.feed('ris", "nights": 1')  # the number may still grow: held back
    assert [d.arguments for d in deltas] == ['ris", "nights": ']
    _, deltas = parser.feed('2}}\n</tool_call>')
    assert [d.arguments for d in deltas] == ["12}"]


def test_hermes_streamed_arguments_are_the_canonical_text_piece_by_piece():
    raw = '<tool_call>{"name": "f", "arguments":{ "x" :1.50,"s":"caf\\u00e9 \\ud83d\\ude00\\n", "l":[true ,null,-0,1E2], "o":{}}}</tool_call>'
    whole = HermesToolParser().extract(raw)
    parser, pieces = HermesToolParser(), []
    for ch in raw:
        pieces += [d.arguments for d in parser.feed(ch)[1] if d.arguments is not None]
    pieces += [d.arguments for d in parser.finish()[1] if d.arguments is not None]
    assert "".join(pieces) == whole.tool_calls[0].arguments == json.dumps(json.loads(whole.tool_calls[0].arguments), ensure_ascii=False)
    assert len(pieces) > 10 and all(pieces)  # many small deltas, none empty


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :  ")]))
def test_stable_prefix_of_any_prefix_is_a_prefix_of_the_canonical_text(value, ascii_only, separators):
    from pyengine_server.tool_parsers.partial_json import stable_prefix
    raw = json.dumps(value, ensure_ascii=ascii_only, separators=separators)
    canonical = json.dumps(json.loads(raw), ensure_ascii=False)
    previous = ""
    for end in range(len(raw) + 1):
        prefix = stable_prefix(raw[:end])
        assert canonical.startswith(prefix) and prefix.startswith(previous)
        previous = prefix
    assert previous == canonical or not isinstance(value, (dict, list, str))  # a bare number is never closed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CALL) * 2 + 6), max_size=8))
def test_hermes_stream_any_chunking(cuts):
    text = "Hi. " + CALL + CALL
    content, calls = stream_tools(text, sorted(set(cuts)))
    whole = HermesToolParser().extract(text)
    assert content == whole.content
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [(c.name, c.arguments) for c in whole.tool_calls]


# -- reasoning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt, text, expected", [
    ("", "<think>\nsteps\n</think>\n\nanswer", ("\nsteps\n", "\n\nanswer")),
    ("", "  <think>x</think>", ("x", None)),
    ("", "just an answer", (None, "just an answer")),
    ("", "<think>ran out of tokens", ("ran out of tokens", None)),
    ("<|im_start|>assistant\n<think>\n", "steps</think>answer", ("steps", "answer")),
    ("<|im_start|>assistant\n<think>\n", "still thinking", ("still thinking", None)),
    ("<think>\n\n</think>\n\n", "no thinking today", (None, "no thinking today")),  # enable_thinking: false
    ("", "<thinking is not a tag", (None, "<thinking is not a tag")),
])
def test_reasoning_whole_output(prompt, text, expected):
    assert ThinkReasoningParser(prompt).parse(text) == expected


@pytest.mark.parametrize("text", ["<think>a b</think>c d", "<think>x</thi", "<thi", "  <think></think>",
                                  "answer only"])
def test_reasoning_stream_matches_whole_output_for_every_cut(text):
    whole = ThinkReasoningParser().parse(text)
    for cut in range(len(text) + 1):
        parser = ThinkReasoningParser()
        first, second, last = parser.feed(text[:cut]), parser.feed(text[cut:]), parser.finish()
        reasoning = first.reasoning + second.reasoning + last.reasoning
        content = first.content + second.content + last.content
        assert (reasoning or None, content or None) == (whole[0] or None, whole[1])


def test_reasoning_holds_back_a_partial_end_tag():
    parser = ThinkReasoningParser("<think>")
    assert parser.feed("abc</th").reasoning == "abc"
    delta = parser.feed("ink>done")
    assert (delta.reasoning, delta.content) == ("", "done")


def test_reasoning_is_on_by_default_only_for_templates_that_use_it():
    assert template_uses_reasoning("{{ '<think>' }}")
    assert not template_uses_reasoning("{{ messages }}") and not template_uses_reasoning(None)
    assert prompt_opens_reasoning("x<think>\n") and not prompt_opens_reasoning("<think></think>")
