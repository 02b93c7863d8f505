"""Chat templates render exactly as transformers does (expected_chat.json), with its helpers."""

from __future__ import annotations

import datetime
import json

import pytest

from pyengine.text import ChatTemplateError, Tokenizer, render_chat_template

FOLDERS = ["tinyllama-1.1b-chat-v1.0", "qwen2.5-tokenizer", "qwen3-tokenizer"]


@pytest.mark.parametrize("name", FOLDERS)
def test_expected_chat_renders_and_tokenizes(shared_testdata, name):
    folder = shared_testdata / name
    tokenizer = Tokenizer.from_pretrained(folder)
    cases = json.loads((folder / "expected_chat.json").read_text())["cases"]
    assert cases
    for case in cases:
        kwargs = dict(add_generation_prompt=case.get("add_generation_prompt", False), tools=case.get("tools"))
        assert tokenizer.apply_chat_template(case["messages"], **kwargs) == case["rendered"]
        ids = tokenizer.apply_chat_template(case["messages"], tokenize=True, **kwargs)
        assert ids == case.get("ids", case.get("ids_without_bos"))
        if "ids_with_bos" in case:
            assert tokenizer.encode(case["rendered"]) == case["ids_with_bos"]


def test_qwen_template_with_tools_lists_them(shared_testdata):
    tokenizer = Tokenizer.from_pretrained(shared_testdata / "qwen2.5-tokenizer")
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Weather in Paris?"}], tools=tools,
                                         add_generation_prompt=True)
    assert "<tools>" in text and '"name": "get_weather"' in text
    assert text.endswith("<|im_start|>assistant\n")


def test_qwen3_enable_thinking_kwarg(shared_testdata):
    tokenizer = Tokenizer.from_pretrained(shared_testdata / "qwen3-tokenizer")
    messages = [{"role": "user", "content": "Hi"}]
    thinking = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    silent = tokenizer.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False)
    assert silent == thinking + "<think>\n\n</think>\n\n"


def test_raise_exception_is_a_clear_error():
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok"
    assert render_chat_template(template, [{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(ChatTemplateError, match="first message must be user"):
        render_chat_template(template, [{"role": "system", "content": "x"}])


def test_syntax_error_names_the_line():
    with pytest.raises(ChatTemplateError, match="syntax error at line 2"):
        render_chat_template("ok\n{% for %}", [])


def test_sandbox_blocks_python_internals():
    with pytest.raises(ChatTemplateError):
        render_chat_template("{{ messages.__class__.__mro__[1].__subclasses__() }}", [])
    with pytest.raises(ChatTemplateError):
        render_chat_template("{% set _ = messages.append(1) %}", [{"role": "user", "content": "x"}])


def test_strftime_now_and_tojson():
    today = datetime.datetime.now().strftime("%Y")
    assert render_chat_template("{{ strftime_now('%Y') }}", []) == today
    rendered = render_chat_template("{{ tools | tojson }}", [], tools=[{"name": "café", "n": 1}])
    assert rendered == '[{"name": "café", "n": 1}]'  # non-ASCII kept, no HTML escaping
    assert render_chat_template("{{ x | tojson(indent=2) }}", [], x={"a": 1}) == '{\n  "a": 1\n}'


def test_continue_final_message_leaves_the_turn_open():
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, I am"}]
    assert render_chat_template(template, messages, continue_final_message=True) == \
        "<user>Hi</user><assistant>Hello, I am"
    with pytest.raises(ChatTemplateError, match="cannot both be true"):
        render_chat_template(template, messages, continue_final_message=True, add_generation_prompt=True)


def test_documents_and_extra_kwargs_reach_the_template():
    template = "{% for d in documents %}[{{ d.title }}]{% endfor %}{{ custom }}"
    assert render_chat_template(template, [], documents=[{"title": "A"}, {"title": "B"}], custom="!") == "[A][B]!"


def test_undefined_function_is_a_template_error():
    with pytest.raises(ChatTemplateError, match="failed"):
        render_chat_template("{{ no_such_function() }}", [])
