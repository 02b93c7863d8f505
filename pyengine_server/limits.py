"""Bounded inputs: cheap refusals before a request costs work in proportion to its size.

- `RequestLimits`: caps on the list fields that cost work per entry (`messages`, `tools`, `stop`,
  `bad_words`, `logit_bias`, `allowed_token_ids`); each broken cap is a 400 naming the field and
  the cap.
- `check_prompt_chars` / `check_text_chars`: a prompt can never hold fewer tokens than its characters
  divided by the longest token's length, so a message (or a completion prompt) past
  `max_model_len * longest token` is refused before the template renders or the tokenizer runs
  (unless `truncate_prompt_tokens` keeps only part of it).
- `decode_json` / `find_lone_surrogate`: JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), which is not text
  and which no tokenizer can encode; the place it sits in, for a 400 that names it.
- `log_safe`: a client-chosen string (a request id) as it may appear in a log line.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pyengine_server.errors import bad_request, parse_json_body

_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_UNSAFE_FOR_LOGS = re.compile(r"[^A-Za-z0-9._:/@+=-]")


@dataclasses.dataclass
class RequestLimits:
    """The most entries a request may send in each list field (None: the vocabulary size)."""

    messages: int = 10_000
    tools: int = 1_024
    stop: int = 256
    bad_words: int = 4_096
    logit_bias: int = 4_096
    allowed_token_ids: int | None = None
    prompts: int = 1_024  # prompts in one text completion request (vLLM's VLLM_MAX_COMPLETION_PROMPTS)

    def check(self, request: Any, vocab_size: int) -> None:
        """400 naming the first list field with more entries than its cap."""
        for name in ("messages", "tools", "stop", "bad_words", "logit_bias", "allowed_token_ids"):
            value = getattr(request, name, None)
            if value is None or isinstance(value, str):
                continue
            cap = getattr(self, name)
            cap = vocab_size if cap is None else cap
            if len(value) > cap:
                raise bad_request(f"`{name}` has {len(value)} entries; this server accepts at most {cap}.", name)


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters one token can stand for (its vocabulary string is never shorter)."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    return max((len(token) for token in vocab), default=1)


def message_chars(messages: list[Any]) -> int:
    """Characters of text in the messages' content (strings and text parts)."""
    total = 0
    for message in messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    total += len(part)
                elif isinstance(part, dict):
                    total += sum(len(v) for k, v in part.items() if k in ("text", "refusal") and isinstance(v, str))
    return total


def check_prompt_chars(request: Any, max_model_len: int, chars_per_token: int) -> None:
    """400 when the messages alone must tokenize past `max_model_len` (skipped with truncation)."""
    if request.truncate_prompt_tokens is not None:
        return
    check_text_chars(message_chars(request.messages), max_model_len, chars_per_token, "The messages hold",
                     "messages")


def check_text_chars(num_chars: int, max_model_len: int, chars_per_token: int, what: str, param: str) -> None:
    """400 when `num_chars` characters must tokenize past `max_model_len` ("{what} N characters ...")."""
    if num_chars > max_model_len * chars_per_token:
        raise bad_request(f"{what} {num_chars} characters, which cannot fit this model's maximum "
                          f"context length of {max_model_len} tokens (at most {chars_per_token} characters "
                          f"per token). Please reduce the length of the input {param}.", param)


def decode_json(raw: bytes) -> Any:
    """A request body as JSON: 422 when it is not JSON, 400 naming the field that holds a lone surrogate."""
    body = parse_json_body(raw)
    where = find_lone_surrogate(raw, body)
    if where is not None:
        field = where.removeprefix("body.").split(".")[0].split("[")[0].split(" ")[0]
        raise bad_request(f"{where}: the string holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                          "escape), which is not text", field if field != "body" else None)
    return body


def find_lone_surrogate(raw: bytes, body: Any) -> str | None:
    """Where in the decoded JSON `body` a string (or key) holds a lone surrogate, or None.

    Raw UTF-8 cannot carry surrogates, so only a `\\uD800`-`\\uDFFF` escape in `raw` can: without
    one the walk is skipped. Valid pairs were already joined by the JSON decoder.
    """
    if not _ESCAPED_SURROGATE.search(raw):
        return None
    stack: list[tuple[str, Any]] = [("body", body)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _is_text(key):
                    return f"{where} (a key)"
                stack.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def log_safe(value: str | None, limit: int = 128) -> str:
    """A client-chosen id for a log line: unusual characters become "?", long ones are cut."""
    if value is None:
        return "-"
    return _UNSAFE_FOR_LOGS.sub("?", value[:limit]) + ("..." if len(value) > limit else "")
