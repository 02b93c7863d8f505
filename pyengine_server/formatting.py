"""The JSON pieces shared by complete and streamed responses: logprobs, usage, prompt logprobs.

Shapes from the spec (`ChatCompletionLogProbs`, `UsageInfo`, `Logprob`) with vLLM's rules: a
logprob of -inf is reported as -9999.0; `top_logprobs` are the first N entries of the engine's
dict in its order (the sampled token first, as vLLM lists them); `bytes` are the UTF-8 of the
token's text; `return_tokens_as_token_ids` writes `token_id:<id>`.

Text completions use OpenAI's legacy shape instead (`completion_logprobs`): four parallel lists,
`tokens`, `token_logprobs`, `top_logprobs` (token text -> logprob) and `text_offset`.
"""

from __future__ import annotations

import math
from typing import Any

from pyengine import CompletionOutput, Logprob

MIN_LOGPROB = -9999.0


def _clamp(value: float) -> float:
    if math.isnan(value):
        return MIN_LOGPROB
    return max(value, MIN_LOGPROB)


def _token_text(token_id: int, logprob: Logprob | None, tokenizer: Any, as_ids: bool) -> str:
    if as_ids:
        return f"token_id:{token_id}"
    if logprob is not None and logprob.decoded_token is not None:
        return logprob.decoded_token
    return tokenizer.decode([token_id], skip_special_tokens=False)


def _entry(token_id: int, logprob: Logprob | None, tokenizer: Any, as_ids: bool) -> dict[str, Any]:
    token = _token_text(token_id, logprob, tokenizer, as_ids)
    value = _clamp(logprob.logprob) if logprob is not None else MIN_LOGPROB
    return {"token": token, "logprob": value, "bytes": list(token.encode("utf-8", errors="replace"))}


def chat_logprobs(output: CompletionOutput, start: int, end: int, num_top: int, tokenizer: Any,
                  as_ids: bool) -> dict[str, Any]:
    """`{"content": [...]}` for generated tokens start..end-1 of one choice."""
    content = []
    steps = output.logprobs or []
    for position in range(start, min(end, len(steps), len(output.token_ids))):
        token_id, step = output.token_ids[position], steps[position]
        entry = _entry(token_id, step.get(token_id), tokenizer, as_ids)
        items = list(step.items()) if num_top == -1 else list(step.items())[:num_top]
        entry["top_logprobs"] = [_entry(i, lp, tokenizer, as_ids) for i, lp in items]
        content.append(entry)
    return {"content": content}


def completion_logprobs(token_ids: list[int], steps: list[dict[int, Logprob] | None], num_top: int,
                        tokenizer: Any, as_ids: bool, first_offset: int = 0) -> dict[str, Any]:
    """`{"tokens", "token_logprobs", "top_logprobs", "text_offset"}` for these tokens.

    `steps` holds each token's logprobs dict (None for the first prompt token, which has no
    context: its logprob and top entries are null). `top_logprobs` maps token text to logprob
    for the engine's entries in order, the token itself first, as vLLM writes them: up to
    `num_top` + 1 of them (all with -1). `text_offset` counts the characters of the tokens
    listed before, from `first_offset` (the text a stream has sent already).
    """
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    text_offset: list[int] = []
    offset = first_offset
    for token_id, step in zip(token_ids, steps):
        if step is None:
            token = _token_text(token_id, None, tokenizer, as_ids)
            token_logprobs.append(None)
            top_logprobs.append(None)
        else:
            chosen = step.get(token_id)
            token = _token_text(token_id, chosen, tokenizer, as_ids)
            token_logprobs.append(_clamp(chosen.logprob) if chosen is not None else MIN_LOGPROB)
            items = list(step.items()) if num_top == -1 else list(step.items())[:num_top + 1]
            top_logprobs.append({_token_text(i, lp, tokenizer, as_ids): _clamp(lp.logprob) for i, lp in items})
        tokens.append(token)
        text_offset.append(offset)
        offset += len(token)
    return {"text_offset": text_offset, "token_logprobs": token_logprobs, "tokens": tokens,
            "top_logprobs": top_logprobs}


def prompt_logprobs_json(prompt_logprobs: list[dict[int, Logprob] | None] | None) -> list | None:
    """`[null, {"<id>": {"logprob", "rank", "decoded_token"}}, ...]`."""
    if prompt_logprobs is None:
        return None
    return [None if step is None else
            {str(i): {"logprob": _clamp(lp.logprob), "rank": lp.rank, "decoded_token": lp.decoded_token}
             for i, lp in step.items()}
            for step in prompt_logprobs]


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None) -> dict[str, Any]:
    """`UsageInfo`. `prompt_tokens_details` is null unless `cached_tokens` is a positive count.

    The caller passes None unless the server runs with `--enable-prompt-tokens-details`; like
    vLLM, a request that found nothing in the prefix cache reports null details even then.
    """
    out: dict[str, Any] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                           "completion_tokens": completion_tokens, "prompt_tokens_details": None}
    if cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return out
