"""Chat templates: render a conversation to the prompt text the model was trained on.

Contract: `render_chat_template(template, messages, ...)` returns exactly the string that
transformers' `apply_chat_template(..., tokenize=False)` returns for the same inputs, and every
failure (a syntax error, `raise_exception`, an undefined name, a sandbox violation, a Python error
inside the template) is a `ChatTemplateError`, a `ValueError` carrying a readable message.

A checkpoint's template is Jinja code from the internet, so it runs in jinja2's
`ImmutableSandboxedEnvironment` (no Python internals, no mutation of our data) and only ever sees
plain JSON-like copies of the inputs. The environment is the one transformers builds:
`trim_blocks`, `lstrip_blocks`, the `loopcontrols` extension, the `{% generation %}` tag, and the
helpers templates expect (`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII text).
Reference: transformers' `utils/chat_template_utils.py` (`render_jinja_template`).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """The template could not be compiled, raised while rendering, or got invalid options."""


# -- the sandboxed environment ---------------------------------------------------------------------


def _raise_exception(message: str) -> None:
    # Templates validate the conversation with this (e.g. "roles must alternate"); the message is
    # the template author's words, passed on unchanged as transformers and vLLM do.
    raise ChatTemplateError(str(message))


def _strftime_now(format_string: str) -> str:
    return datetime.datetime.now().strftime(format_string)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # jinja2's own tojson escapes <, >, & and ' for HTML; a prompt is not a web page.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks.

    transformers uses the marks to build an assistant-token mask; for inference the block simply
    renders its body (in its own scope, like transformers' call block).
    """

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body).set_lineno(lineno)


class _Namespace(jinja2.utils.Namespace):
    """jinja2's `namespace()`, refusing underscore names (no route toward Python internals)."""

    def __init__(*args: Any, **kwargs: Any):  # jinja2's signature trick: `self` may be a kwarg name
        self, args = args[0], args[1:]
        for name in dict(*args, **kwargs):
            _check_namespace_name(name)
        jinja2.utils.Namespace.__init__(self, *args, **kwargs)

    def __setitem__(self, name: str, value: Any) -> None:
        _check_namespace_name(name)
        super().__setitem__(name, value)


def _check_namespace_name(name: Any) -> None:
    if isinstance(name, str) and name.startswith("_"):
        raise jinja2.exceptions.SecurityError(
            f"chat templates may not store underscore-prefixed attributes on a namespace: {name!r}")


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["namespace"] = _Namespace
    return env


@functools.lru_cache(maxsize=64)
def _compile(template: str) -> jinja2.Template:
    """Compile each distinct template once (a server renders the same one for every request)."""
    try:
        return _environment().from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"chat template has a syntax error at line {exc.lineno}: {exc.message}") from exc


# -- rendering -------------------------------------------------------------------------------------

# transformers appends this marker to the message being continued, renders, and cuts at it.
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
# Names a message's reasoning travels under; templates read the first (gpt-oss reads "thinking").
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    special_tokens: dict[str, str] | None = None,
    **kwargs: Any,
) -> str:
    """Render `messages` (and `tools`, `documents`, extra template variables) to prompt text.

    Args:
        template: the Jinja source (a checkpoint's `chat_template`).
        messages: OpenAI-style dicts; keys whose value is None are dropped (as transformers does)
            and list-of-parts content is passed through to the template untouched.
        tools, documents: JSON-schema tool dicts and RAG documents, as the template expects them.
        add_generation_prompt: end with the header that opens an assistant turn.
        continue_final_message: leave the last message open so generation continues it; the text
            is cut right after that message's content, dropping its end-of-turn markup.
        special_tokens: the tokenizer's named special tokens (`bos_token`, `eos_token`, ...).
        **kwargs: extra template variables (vLLM's `chat_template_kwargs`, e.g. Qwen3's
            `enable_thinking`); they override same-named special tokens.

    Raises:
        ChatTemplateError: a syntax error, an error raised inside the template, non-dict tools
            or documents, or an invalid option combination.
    """
    if not isinstance(template, str):
        raise ChatTemplateError(f"a chat template must be a string of Jinja source, got {type(template).__name__}")
    if add_generation_prompt and continue_final_message:
        raise ChatTemplateError("add_generation_prompt and continue_final_message cannot both be true: "
                                "continue_final_message continues the last message instead of opening a new one")
    if tools is not None and not (isinstance(tools, (list, tuple)) and all(isinstance(t, Mapping) for t in tools)):
        raise ChatTemplateError("tools must be a list of JSON-schema dicts")
    if documents is not None and not (isinstance(documents, (list, tuple))
                                      and all(isinstance(d, Mapping) for d in documents)):
        raise ChatTemplateError("documents must be a list of dicts (with 'title' and 'text' keys)")
    # Plain copies: the template sees only JSON-like data, and tagging never touches the caller's dicts.
    chat = _plain(list(messages)) if isinstance(messages, (list, tuple)) else None
    if chat is None or not all(isinstance(message, dict) for message in chat):
        raise ChatTemplateError("messages must be a list of dicts with 'role' and 'content'")
    chat = [_alias_reasoning({k: v for k, v in m.items() if v is not None}) for m in chat]
    final_text = _tag_final_message(chat) if continue_final_message else None
    variables = {**(special_tokens or {}), **_plain(kwargs)}
    variables.update(messages=chat, tools=_plain(tools), documents=_plain(documents),
                     add_generation_prompt=add_generation_prompt)
    compiled = _compile(template)
    try:
        rendered = compiled.render(**variables)
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as exc:  # undefined names and callables, sandbox violations, ...
        raise ChatTemplateError(f"chat template failed: {exc}") from exc
    except Exception as exc:  # a Python error inside the template: "a" + 1, [][0], recursion...
        raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from exc
    return rendered if final_text is None else _cut_at_tag(rendered, final_text)


def _tag_final_message(chat: list[dict[str, Any]]) -> str:
    """Append the continue tag to the final message's text (in place, on our copy); returns that text."""
    if not chat:
        raise ChatTemplateError("continue_final_message is set but the conversation is empty")
    final = chat[-1]
    content = final.get("content")
    if isinstance(content, list):  # content parts: continue the last text part
        for part in reversed(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                text, part["text"] = part["text"], part["text"] + _CONTINUE_TAG
                return text
        raise ChatTemplateError("continue_final_message is set but the final message has no text part to continue")
    if not isinstance(content, str):
        raise ChatTemplateError('continue_final_message is set but the final message has no "content" to continue')
    final["content"] = content + _CONTINUE_TAG
    return content


def _cut_at_tag(rendered: str, final_text: str) -> str:
    """Cut the rendered chat where the continued message's text ends, as transformers does."""
    if final_text.strip() not in rendered or _CONTINUE_TAG.strip() not in rendered:
        raise ChatTemplateError("continue_final_message is set but the final message does not appear in the "
                                "rendered chat (the template rewrites or drops part of it)")
    cut = rendered.rindex(_CONTINUE_TAG.strip())
    if rendered[cut:cut + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
        return rendered[:cut]  # the template kept the text as given
    return rendered[:cut].rstrip()  # the template trimmed the message: trim the spaces before the tag too


def _alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    """Fill `reasoning_content` (and `thinking`) from whichever reasoning field the caller used."""
    reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def _plain(value: Any) -> Any:
    """A copy made of plain JSON types; anything else becomes an inert "<TypeName>" placeholder."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):  # subclasses (str enums...) carry extra methods: strip to the base type
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if callable(getattr(value, "model_dump", None)):  # pydantic models, e.g. the openai client's messages
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"
