"""From messages to prompt token ids: content parts, the chat template, truncation, context checks.

Order and rules follow vLLM:

1. Each message becomes the dict a chat template expects. Text parts are joined with "\n"
   (vLLM's "string" content format, which plain templates such as ChatML need). This engine
   reads text only, so image, audio, video, file and embedding parts are a 400 that says so.
   Assistant tool-call `arguments` are decoded from JSON text to objects for the template.
2. The template renders (the server's, or the request's if the server trusts request
   templates), with `tools`, `documents`, `add_generation_prompt`, `continue_final_message`,
   `reasoning_effort` and `chat_template_kwargs`. Template errors are 400.
3. The text is tokenized (`add_special_tokens`, default false for chat).
4. `truncate_prompt_tokens` keeps the last N ids; then the context-length rules pick
   `max_tokens` or answer 400.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pyengine import ChatTemplateError
from pyengine_server.errors import bad_request
from pyengine_server.protocol import ChatCompletionRequest, RequestMessage

# Template variables that the request's own fields set; chat_template_kwargs may not smuggle these.
_RESERVED_KWARGS = {"messages", "tokenize", "tools", "documents"}
_NON_TEXT_PARTS = {
    "image_url": "image", "input_image": "image", "image_embeds": "image", "image_pil": "image",
    "input_audio": "audio", "audio_url": "audio", "audio_embeds": "audio",
    "video_url": "video", "file": "file",
}


@dataclasses.dataclass
class Prompt:
    text: str
    token_ids: list[int]
    response_role: str
    echo_text: str | None  # what `echo` prepends, if the last message has the response role


# -- messages --------------------------------------------------------------------------------------


def content_text(content: Any, where: str) -> str | None:
    """Message content (a string or parts) as one string; non-text parts are a 400."""
    if content is None or isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type")
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            texts.append(part[kind])
        elif kind == "thinking":
            continue  # reasoning of an earlier turn; see template_message
        else:
            media = _NON_TEXT_PARTS.get(kind) or next((_NON_TEXT_PARTS[k] for k in _NON_TEXT_PARTS if k in part), None)
            what = f"{media} input" if media else f"content part of type {kind!r}"
            raise bad_request(f"{where}.content[{i}]: {what} is not supported: this server runs a "
                              "text-only model; send text parts ({\"type\": \"text\", \"text\": ...})",
                              "messages")
    return "\n".join(texts)


def template_message(message: RequestMessage, index: int) -> dict[str, Any]:
    """One request message as the dict a chat template reads."""
    where = f"messages[{index}]"
    if message.role is None:
        raise bad_request(f"{where}: harmony-format messages ('author', 'channel') are not supported; "
                          "send 'role' and 'content'", "messages")
    out: dict[str, Any] = {"role": message.role, "content": content_text(message.content, where)}
    if out["content"] is None and message.role != "assistant":
        out["content"] = ""
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [_template_tool_call(call, where) for call in message.tool_calls]
    parts = message.content if isinstance(message.content, list) else []  # not the characters of a string
    thinking = [p["thinking"] for p in parts if isinstance(p, dict)
                and p.get("type") == "thinking" and isinstance(p.get("thinking"), str)]
    reasoning = message.reasoning if message.reasoning is not None else ("\n".join(thinking) or None)
    if reasoning is not None:
        out["reasoning"] = out["reasoning_content"] = reasoning
    if message.tools:
        raise bad_request(f"{where}.tools: per-message tools are not supported; send them in the "
                          "request's `tools`", "messages")
    return out


def _template_tool_call(call: Any, where: str) -> dict[str, Any]:
    if call.type != "function" or call.function is None:
        raise bad_request(f"{where}.tool_calls: custom tool calls are not supported", "messages")
    arguments: Any = call.function.arguments
    try:  # templates such as Qwen's serialise arguments with tojson: give them the object
        arguments = json.loads(arguments)
    except json.JSONDecodeError:
        pass
    return {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": arguments}}


# -- rendering -------------------------------------------------------------------------------------


def render(request: ChatCompletionRequest, tokenizer: Any, tools: list[dict] | None,
           chat_template: str | None, trust_request_template: bool, response_role: str = "assistant") -> Prompt:
    """Messages -> (prompt text, ids, response role, echo text); 400 on any template problem.

    The response role is `response_role` (`--response-role`) after a generation prompt, else the
    last message's role (the model continues that message).
    """
    if request.add_generation_prompt and request.continue_final_message and \
            request.was_set("add_generation_prompt"):
        raise bad_request("Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                          "continue_final_message")
    kwargs = dict(request.chat_template_kwargs or {})
    template = request.chat_template or kwargs.pop("chat_template", None)
    if template is not None and not trust_request_template:
        raise bad_request("Chat template is passed with request, but --trust-request-chat-template is "
                          "not set. Refused request with untrusted chat template.", "chat_template")
    if template is not None and not isinstance(template, str):
        raise bad_request("chat_template_kwargs.chat_template must be a string", "chat_template_kwargs")
    reserved = sorted(_RESERVED_KWARGS & kwargs.keys())
    if reserved:
        raise bad_request(f"chat_template_kwargs may not set {reserved}: use the request's own fields",
                          "chat_template_kwargs")
    if request.reasoning_effort is not None:
        kwargs.setdefault("reasoning_effort", request.reasoning_effort)
    kwargs = {k: v for k, v in kwargs.items() if v is not None and v != "auto"}  # vLLM drops these
    kwargs.setdefault("add_generation_prompt", request.add_generation_prompt)
    kwargs.setdefault("continue_final_message", request.continue_final_message)
    messages = [template_message(m, i) for i, m in enumerate(request.messages)]
    try:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, documents=request.documents,
            chat_template=template or chat_template, tokenize=False, **kwargs)
    except ChatTemplateError as exc:
        raise bad_request(str(exc), "messages") from None
    except RecursionError:
        raise bad_request("chat template recursed too deeply", "messages") from None
    token_ids = tokenizer.encode(text, add_special_tokens=request.add_special_tokens)
    role = response_role if kwargs["add_generation_prompt"] else (messages[-1]["role"] if messages else response_role)
    echo_text = None
    if request.echo and messages and messages[-1]["role"] == role:
        echo_text = messages[-1]["content"] or ""
    return Prompt(text, token_ids, role, echo_text)


# -- length ----------------------------------------------------------------------------------------


def fit_context(request: ChatCompletionRequest, prompt_ids: list[int], max_model_len: int,
                default_max_tokens: int | None) -> tuple[list[int], int]:
    """A chat request's `fit_prompt`: `max_completion_tokens`, else `max_tokens`, else the rest of the context."""
    param = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    requested = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    return fit_prompt(prompt_ids, max_model_len, requested, param, request.truncate_prompt_tokens,
                      default_max_tokens, "messages")


def fit_prompt(prompt_ids: list[int], max_model_len: int, requested: int | None, param: str,
               truncate: int | None, default_max_tokens: int | None, prompt_param: str,
               keep_last: bool = True) -> tuple[list[int], int]:
    """Apply `truncate_prompt_tokens`, then choose max_tokens; 400 when they cannot fit.

    `requested` is the client's output budget (named `param`), None for the rest of the context
    (then capped by `default_max_tokens`); truncation keeps the last tokens (`keep_last`), or
    the first; `prompt_param` names the prompt's field in errors.
    """
    if requested is not None and requested < 1:
        raise bad_request(f"{param} must be at least 1, got {requested}.", param)
    if requested is not None and requested > max_model_len:
        raise bad_request(f"'{param}' is too large: {requested}. This model's maximum context length is "
                          f"{max_model_len} tokens.", param)
    if truncate is not None:
        max_input = max_model_len - (requested or 0)
        if truncate == -1:
            truncate = max_input
        if truncate == 0:
            raise bad_request("truncate_prompt_tokens=0 leaves an empty prompt", "truncate_prompt_tokens")
        if truncate > max_input:
            raise bad_request(f"truncate_prompt_tokens value ({truncate}) is greater than the maximum input "
                              f"length ({max_input}) of this request (max_model_len {max_model_len} minus "
                              f"{requested or 0} requested output tokens).", "truncate_prompt_tokens")
        prompt_ids = prompt_ids[-truncate:] if keep_last else prompt_ids[:truncate]
    num_prompt = len(prompt_ids)
    if num_prompt == 0:
        raise bad_request("The decoder prompt cannot be empty", prompt_param)
    if requested is not None and num_prompt > max_model_len - requested:
        raise bad_request(f"You passed {num_prompt} input tokens and requested {requested} output tokens. "
                          f"However, the model's context length is only {max_model_len} tokens, resulting "
                          f"in a maximum input length of {max_model_len - requested} tokens. Please reduce "
                          "the length of the input prompt.", "input_tokens")
    if num_prompt >= max_model_len:
        raise bad_request(f"This model's maximum context length is {max_model_len} tokens. However, your "
                          f"request has {num_prompt} input tokens, leaving no room to generate. Please "
                          f"reduce the length of the input {prompt_param}.", "input_tokens")
    max_tokens = max_model_len - num_prompt
    if requested is not None:
        max_tokens = min(max_tokens, requested)
    elif default_max_tokens is not None:
        max_tokens = min(max_tokens, default_max_tokens)
    return prompt_ids, max_tokens
