"""Chat templates render exactly as transformers 5 does, with its helpers, sandbox and errors.

The real templates (TinyLlama's Zephyr style, Qwen2.5's and Qwen3's ChatML with tools and
thinking) come from ../shared/testdata; the expected strings there and below were produced by
transformers 5.x `apply_chat_template` from the same files.
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path

import pytest

from pyengine.text import ChatTemplateError, Tokenizer, render_chat_template
from pyengine.text import chat_template as chat_template_module


@functools.lru_cache(maxsize=None)
def load(folder: Path) -> Tokenizer:
    return Tokenizer.from_pretrained(folder)


# -- the real templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tinyllama-1.1b-chat-v1.0", "qwen2.5-tokenizer", "qwen3-tokenizer"])
def test_expected_chat_renders_and_tokenizes(shared_testdata, name):
    folder = shared_testdata / name
    tokenizer = load(folder)
    cases = json.loads((folder / "expected_chat.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 2
    for case in cases:
        kwargs = dict(add_generation_prompt=case["add_generation_prompt"])
        assert tokenizer.apply_chat_template(case["messages"], **kwargs) == case["rendered"]
        # TinyLlama's file says "ids_without_bos" (what tokenize=True gives) and "ids_with_bos"
        ids = tokenizer.apply_chat_template(case["messages"], tokenize=True, **kwargs)
        assert ids == case.get("ids", case.get("ids_without_bos"))
        if "ids_with_bos" in case:
            assert tokenizer.encode(case["rendered"]) == case["ids_with_bos"]


def test_gpt2_has_no_chat_template(shared_testdata):
    assert not (shared_testdata / "gpt2" / "expected_chat.json").exists()
    with pytest.raises(ChatTemplateError, match="no chat template"):
        load(shared_testdata / "gpt2").apply_chat_template([{"role": "user", "content": "hi"}])


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
]
TOOL_CHAT_END = (  # the same for Qwen2.5 and Qwen3, after the system turn
    '<tools>\n{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
    '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'
)
TOOLS_INTRO = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n")


@pytest.mark.parametrize("name,system", [
    ("qwen2.5-tokenizer", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"),
    ("qwen3-tokenizer", ""),
])
def test_qwen_templates_with_tools_and_a_tool_call(shared_testdata, name, system):
    tokenizer = load(shared_testdata / name)
    text = tokenizer.apply_chat_template(TOOL_CHAT, tools=TOOLS, add_generation_prompt=True)
    assert text == "<|im_start|>system\n" + system + TOOLS_INTRO + TOOL_CHAT_END


def test_qwen3_enable_thinking_kwarg(shared_testdata):
    tokenizer = load(shared_testdata / "qwen3-tokenizer")
    messages = [{"role": "user", "content": "Hi"}]
    thinking = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    silent = tokenizer.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False)
    assert silent == thinking + "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "thinking"])
def test_qwen3_reads_reasoning_under_any_of_its_names(shared_testdata, field):
    tokenizer = load(shared_testdata / "qwen3-tokenizer")
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", field: "easy"}]
    assert tokenizer.apply_chat_template(messages) == \
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\neasy\n</think>\n\n4<|im_end|>\n"


def test_qwen3_continue_final_message(shared_testdata):
    tokenizer = load(shared_testdata / "qwen3-tokenizer")
    messages = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Sure, "}]
    assert tokenizer.apply_chat_template(messages, continue_final_message=True) == \
        "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nSure, "


# -- helpers: raise_exception, strftime_now, tojson, generation --------------------------------------


def test_raise_exception_carries_the_template_message():
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok"
    assert render_chat_template(template, [{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(ChatTemplateError) as info:
        render_chat_template(template, [{"role": "system", "content": "x"}])
    assert str(info.value) == "first message must be user"
    assert isinstance(info.value, ValueError)


def test_strftime_now():
    before = datetime.datetime.now().strftime("%Y-%m-%d")
    rendered = render_chat_template("Today is {{ strftime_now('%Y-%m-%d') }}.", [])
    after = datetime.datetime.now().strftime("%Y-%m-%d")
    assert rendered in (f"Today is {before}.", f"Today is {after}.")


def test_tojson_as_transformers_defines_it():
    value = {"name": "café", "b": [1, 2], "html": "<a & 'b'>"}
    assert render_chat_template("{{ x | tojson }}", [], x=value) == \
        '{"name": "café", "b": [1, 2], "html": "<a & \'b\'>"}'  # non-ASCII kept, no HTML escaping
    assert render_chat_template("{{ x | tojson(indent=2) }}", [], x={"a": 1}) == '{\n  "a": 1\n}'
    assert render_chat_template("{{ x | tojson(separators=(',', ':'), sort_keys=true) }}", [], x={"b": 1, "a": [2]}) \
        == '{"a":[2],"b":1}'
    assert render_chat_template("{{ x | tojson(ensure_ascii=true) }}", [], x="é") == '"\\u00e9"'


def test_generation_tag_renders_its_body():
    template = "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
    assert render_chat_template(template, [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]) \
        == "[a][b]"


def test_loop_controls_and_trimmed_blocks():
    template = "{% for m in messages %}\n  {% if loop.index > 2 %}{% break %}{% endif %}\n{{ m.content }},\n{% endfor %}"
    messages = [{"role": "user", "content": str(i)} for i in range(5)]
    assert render_chat_template(template, messages) == "0,\n1,\n"


# -- variables: special tokens, tools, documents, kwargs, message cleanup --------------------------


def test_special_tokens_tools_documents_and_kwargs_reach_the_template():
    template = "{{ bos_token }}{% for d in documents %}[{{ d.title }}]{% endfor %}{{ tools | length }}{{ custom }}"
    rendered = render_chat_template(template, [], documents=[{"title": "A"}, {"title": "B"}], tools=[{}, {}],
                                    custom="!", special_tokens={"bos_token": "<s>"})
    assert rendered == "<s>[A][B]2!"
    assert render_chat_template("{{ bos_token }}", [], special_tokens={"bos_token": "<s>"}, bos_token="<x>") == "<x>"
    assert render_chat_template("{{ eos_token }}|{{ tools }}", []) == "|None"  # absent token: undefined, ""


def test_none_values_are_dropped_and_content_parts_pass_through():
    messages = [{"role": "assistant", "content": None, "tool_calls": None},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    template = "{{ messages[0].content is defined }} {{ messages[0] | length }} {{ messages[1].content[0].text }}"
    assert render_chat_template(template, messages) == "False 1 hi"
    assert messages[0]["content"] is None  # the caller's dicts are untouched


# -- continue_final_message --------------------------------------------------------------------------

PLAIN = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
TRIMMED = "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endfor %}"


@pytest.mark.parametrize("template,content,expected", [
    (PLAIN, "Hello, I am", "<user>Hi</user><assistant>Hello, I am"),
    (PLAIN, "Hello, I am ", "<user>Hi</user><assistant>Hello, I am "),  # kept spacing stays
    (TRIMMED, "Hello, I am ", "<user>Hi</user><assistant>Hello, I am"),  # trimmed by the template
    (PLAIN, [{"type": "image"}, {"type": "text", "text": "Part"}, {"type": "image"}], None),
])
def test_continue_final_message_leaves_the_turn_open(template, content, expected):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": content}]
    if expected is None:  # content parts: continue the last text part
        template = "{% for m in messages %}{% for p in m.content %}{{ p.text }}{% endfor %}|{% endfor %}"
        messages[0]["content"] = [{"type": "text", "text": "Hi"}]
        expected = "Hi|Part"
    assert render_chat_template(template, messages, continue_final_message=True) == expected
    assert "CONTINUE" not in json.dumps(messages)  # the tag went onto a copy


@pytest.mark.parametrize("messages,match", [
    ([], "conversation is empty"),
    ([{"role": "assistant"}], 'no "content" to continue'),
    ([{"role": "assistant", "content": [{"type": "image"}]}], "no text part to continue"),
])
def test_continue_final_message_errors(messages, match):
    with pytest.raises(ChatTemplateError, match=match):
        render_chat_template(PLAIN, messages, continue_final_message=True)


def test_continue_final_message_errors_when_the_template_drops_the_message():
    with pytest.raises(ChatTemplateError, match="does not appear in the rendered chat"):
        render_chat_template("{{ messages | length }}", [{"role": "assistant", "content": "x"}],
                             continue_final_message=True)


def test_continue_final_message_and_generation_prompt_are_exclusive():
    with pytest.raises(ChatTemplateError, match="add_generation_prompt and continue_final_message cannot both"):
        render_chat_template(PLAIN, [{"role": "assistant", "content": "x"}], continue_final_message=True,
                             add_generation_prompt=True)


# -- errors and the sandbox ----------------------------------------------------------------------------


def test_syntax_error_names_the_line():
    with pytest.raises(ChatTemplateError, match="syntax error at line 2"):
        render_chat_template("ok\n{% for %}", [])


@pytest.mark.parametrize("template,match", [
    ("{{ no_such_function() }}", "chat template failed: 'no_such_function' is undefined"),
    ("{{ messages.__class__.__mro__ }}", "chat template failed"),
    ("{{ messages.__class__.__mro__[1].__subclasses__() }}", "chat template failed"),
    ("{% set _ = messages.append(1) %}", "unsafe|chat template failed"),
    ("{% set ns = namespace(a=1) %}{% set ns._secret = 2 %}", "underscore-prefixed"),
    ("{{ namespace(_x=1) }}", "underscore-prefixed"),
    ("{{ 'a' + 1 }}", "TypeError"),
    ("{{ messages[5]['role'] + 'x' }}", "chat template failed"),
])
def test_runtime_errors_and_sandbox_violations(template, match):
    with pytest.raises(ChatTemplateError, match=match):
        render_chat_template(template, [{"role": "user", "content": "x"}])


@pytest.mark.parametrize("kwargs,match", [
    ({"tools": ["get_weather"]}, "tools must be a list of JSON-schema dicts"),
    ({"tools": {"type": "function"}}, "tools must be a list of JSON-schema dicts"),
    ({"documents": ["text"]}, "documents must be a list of dicts"),
])
def test_invalid_tools_and_documents(kwargs, match):
    with pytest.raises(ChatTemplateError, match=match):
        render_chat_template("x", [], **kwargs)


@pytest.mark.parametrize("messages", [["hello"], "hello", {"role": "user"}])
def test_messages_must_be_a_list_of_dicts(messages):
    with pytest.raises(ChatTemplateError, match="messages must be a list of dicts"):
        render_chat_template("x", messages)


def test_template_must_be_a_string():
    with pytest.raises(ChatTemplateError, match="must be a string of Jinja source, got NoneType"):
        render_chat_template(None, [])


def test_each_template_is_compiled_once():
    template = "compiled once: {{ messages | length }}"
    render_chat_template(template, [])
    hits = chat_template_module._compile.cache_info().hits
    assert render_chat_template(template, [{"role": "user", "content": "x"}]) == "compiled once: 1"
    assert chat_template_module._compile.cache_info().hits == hits + 1
