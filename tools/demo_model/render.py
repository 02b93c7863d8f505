"""Render corpus conversations with the shipped chat template, the way pyengine and transformers do.

Same Jinja settings as `pyengine/text/chat_template.py` and transformers (trim_blocks, lstrip_blocks,
a `tojson` that keeps key order and non-ASCII text), so the training text is byte for byte what a
server renders at inference time.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
# The part of an assistant turn the model learns: everything after the role header, with <|im_end|>.
ASSISTANT_SPAN = re.compile(r"<\|im_start\|>assistant\n?(.*?<\|im_end\|>)", re.DOTALL)


def chat_template() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8").strip()


@functools.lru_cache(maxsize=1)
def _template():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    return env.from_string(chat_template())


def render_conversation(record: dict, add_generation_prompt: bool = False, **template_kwargs) -> str:
    """The conversation as the model reads it; `template_kwargs` are the request's chat_template_kwargs
    (`enable_thinking`), which change only the generation prompt."""
    messages = [{k: v for k, v in m.items() if v is not None} for m in record["messages"]]
    return _template().render(messages=messages, tools=record.get("tools"),
                              add_generation_prompt=add_generation_prompt, **template_kwargs)


# What the generation prompt holds after the role header for chat_template_kwargs enable_thinking
# true / false; a reply rendered with it starts with these characters, which the model reads, not writes.
THINKING_SWITCH_PREFIX = {True: "<think>\n", False: "<think>\n\n</think>\n\n"}


def assistant_char_spans(text: str, enable_thinking: bool | None = None) -> list[tuple[int, int]]:
    """[start, end) character ranges of the assistant text the loss is taken on. With the thinking
    switch, the last reply starts with what the generation prompt wrote, which is not trained."""
    spans = [m.span(1) for m in ASSISTANT_SPAN.finditer(text)]
    if enable_thinking is not None and spans:
        prefix = THINKING_SWITCH_PREFIX[enable_thinking]
        start, end = spans[-1]
        assert text.startswith(prefix, start), "a switched reply starts with the generation prompt's block"
        spans[-1] = (start + len(prefix), end)
    return spans
