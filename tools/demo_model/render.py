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


def render_conversation(record: dict, add_generation_prompt: bool = False) -> str:
    messages = [{k: v for k, v in m.items() if v is not None} for m in record["messages"]]
    return _template().render(messages=messages, tools=record.get("tools"),
                              add_generation_prompt=add_generation_prompt)


def assistant_char_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) character ranges of the assistant text the loss is taken on."""
    return [m.span(1) for m in ASSISTANT_SPAN.finditer(text)]
