"""Chat templates: render a conversation to the prompt text the model was trained on.

A checkpoint's `tokenizer_config.json` carries a Jinja template. We render it the way
transformers' `apply_chat_template` does, so the prompt ids match token for token: jinja2's
`ImmutableSandboxedEnvironment` (a template is code from the internet: it may not touch Python
objects' internals or mutate our data), `trim_blocks` and `lstrip_blocks`, the `loopcontrols`
extension, and the helpers templates expect: `raise_exception`, `strftime_now`, and a `tojson`
filter that keeps non-ASCII characters. Reference: transformers' `utils/chat_template_utils.py`.
"""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """The template could not be compiled or raised while rendering."""


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(f"chat template raised: {message}")


def _strftime_now(format_string: str) -> str:
    return datetime.datetime.now().strftime(format_string)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Unlike jinja2's own tojson, no HTML escaping: the output is a prompt, not a web page.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


@functools.lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"chat template has a syntax error at line {exc.lineno}: {exc.message}") from exc


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    special_tokens: dict[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Render `messages` with `template`; returns the prompt text.

    `continue_final_message` leaves the last (assistant) message open, so generation continues
    it: the text is cut right after that message's content, dropping the end-of-turn markup.

    Raises:
        ChatTemplateError: a syntax error, an error raised by the template, or an invalid
            combination of options.
    """
    if add_generation_prompt and continue_final_message:
        raise ChatTemplateError("add_generation_prompt and continue_final_message cannot both be true")
    if continue_final_message and not messages:
        raise ChatTemplateError("continue_final_message needs at least one message")
    variables = dict(special_tokens or {})
    variables.update(kwargs)
    variables.update(messages=messages, tools=tools, documents=documents,
                     add_generation_prompt=add_generation_prompt)
    try:
        rendered = _compile(template).render(**variables)
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as exc:  # undefined names, sandbox violations, ...
        raise ChatTemplateError(f"chat template failed: {exc}") from exc
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from exc
    if continue_final_message:
        rendered = _cut_after_final_message(rendered, messages[-1])
    return rendered


def _cut_after_final_message(rendered: str, final: dict[str, Any]) -> str:
    """Cut the rendered text right after the final message's content, as transformers does."""
    content = final.get("content")
    if isinstance(content, (list, tuple)):  # content parts: continue the last text part
        texts = [p["text"] for p in content if isinstance(p, dict) and "text" in p]
        if not texts:
            raise ChatTemplateError("continue_final_message: the final message has no text to continue")
        content = texts[-1]
    if not isinstance(content, str) or content.strip() not in rendered:
        raise ChatTemplateError("continue_final_message: the final message does not appear in the "
                                "rendered chat (the template rewrites or drops it)")
    start = rendered.rindex(content.strip())
    if rendered[start:start + len(content.lstrip())] == content:
        return rendered[: start + len(content.lstrip())]  # the template kept its spacing
    return rendered[: start + len(content.strip())]  # trailing spaces were trimmed by the template
