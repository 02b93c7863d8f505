"""Server-sent events for `stream: true`, chunk for chunk as vLLM sends them.

For each choice: a role chunk (`delta: {"role": "assistant", "content": ""}`) when the first
engine output arrives; the echoed last message if `echo`; then one chunk per engine step with
the new text (`content`, and `reasoning` / `tool_calls` when a parser is on); the step that
finishes the choice carries `finish_reason` and `stop_reason`. After every choice has finished:
the usage chunk (`choices: []`) if `stream_options.include_usage`, then `data: [DONE]`.
With `continuous_usage_stats`, every chunk also carries that choice's usage so far.

The engine's outputs are deltas (RequestOutputKind.DELTA: each carries that step's text and
token ids); each choice counts what it has sent. Parsers may hold text back (a partial
`<tool_call>` tag); the token ids and logprobs of text held back go out with the next chunk sent.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pyengine import CompletionOutput, RequestOutput
from pyengine_server.errors import error_chunk
from pyengine_server.formatting import chat_logprobs, usage
from pyengine_server.reasoning import ThinkReasoningParser
from pyengine_server.tool_parsers import ToolParser

if TYPE_CHECKING:
    from pyengine_server.serving_chat import ChatJob, ChatService

DONE = "data: [DONE]\n\n"


# Characters a JSON string may hold raw that str.splitlines reads as line breaks (and so does any
# client that splits a stream with it, httpx's iter_lines among them): written as escapes, the
# same JSON, so generated text never cuts an event's line in two.
LINE_BREAKS_IN_STRINGS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def sse_event(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(',', ':'))
    for char, escape in LINE_BREAKS_IN_STRINGS:
        if char in text:
            text = text.replace(char, escape)
    return f"data: {text}\n\n"


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that always runs `on_close`, even if no byte was sent."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], Awaitable[None]] | None = None):
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                await self.on_close()


@dataclasses.dataclass
class ChoiceState:
    """What one choice has sent so far, and its parsers."""

    index: int
    reasoning: ThinkReasoningParser | None
    tools: ToolParser | None
    num_tokens: int = 0  # token ids (and logprobs) sent
    held_token_ids: list[int] = dataclasses.field(default_factory=list)  # received, not sent yet
    held_logprobs: list[Any] = dataclasses.field(default_factory=list)  # their logprobs
    finished: bool = False


class ChatStream:
    """Turns one request's RequestOutputs into SSE events: deltas (`step`), or a whole one (`replay_stream`)."""

    def __init__(self, service: "ChatService", job: "ChatJob"):
        self.service, self.job = service, job
        request = job.request
        options = request.stream_options
        # --enable-force-include-usage: the usage chunk whether or not the client asked
        self.include_usage = bool(options and options.include_usage) or service.config.enable_force_include_usage
        self.continuous_usage = self.include_usage and bool(options and options.continuous_usage_stats)
        self.num_top = request.top_logprobs if request.top_logprobs is not None else 0
        self.choices: list[ChoiceState] = []
        self.num_prompt_tokens = len(job.prompt.token_ids)
        self.num_completion_tokens: int | None = None  # counted from the deltas, when `step` consumes them

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.job.response_id, "object": "chat.completion.chunk", "created": self.job.created,
                "model": self.job.model, "choices": choices, **extra}

    def _usage(self, num_completion: int) -> dict[str, Any]:
        out = usage(self.num_prompt_tokens, num_completion, None)
        del out["prompt_tokens_details"]  # streamed usage omits nulls (vLLM's exclude_unset)
        return out

    def start(self, first: RequestOutput) -> list[str]:
        """Role chunks (and echo chunks) for every choice."""
        job, events = self.job, []
        for output in first.outputs:
            self.choices.append(ChoiceState(output.index, job.new_reasoning_parser(),
                                            job.tools.new_parser() if job.tools.parses else None))
            extra: dict[str, Any] = {"prompt_token_ids": list(first.prompt_token_ids)
                                     if job.request.return_token_ids else None}
            if self.continuous_usage:
                extra["usage"] = self._usage(0)
            delta = {"role": job.prompt.response_role, "content": ""}
            events.append(sse_event(self.chunk([{"index": output.index, "delta": delta, "logprobs": None,
                                              "finish_reason": None}], **extra)))
            if job.prompt.echo_text is not None:
                events.append(sse_event(self.chunk([{"index": output.index, "delta": {"content": job.prompt.echo_text},
                                                  "logprobs": None, "finish_reason": None}])))
        return events

    def step(self, output: RequestOutput) -> list[str]:
        """Events for one engine output of kind DELTA (this step's tokens and text of each choice)."""
        self.num_completion_tokens = self.num_completion_tokens or 0
        self.num_completion_tokens += sum(len(completion.token_ids) for completion in output.outputs)
        events = []
        for completion in output.outputs:
            state = self.choices[completion.index]
            if not state.finished:
                event = self._choice_event(state, completion)
                if event is not None:
                    events.append(event)
        return events

    def _choice_event(self, state: ChoiceState, completion: CompletionOutput) -> str | None:
        job, request = self.job, self.job.request
        finishing = completion.finish_reason is not None
        new_text = completion.text  # this step's text
        state.held_token_ids += completion.token_ids
        state.held_logprobs += completion.logprobs or []
        if not new_text and not state.held_token_ids and not finishing:
            return None
        delta: dict[str, Any] = {}
        content, reasoning, tool_deltas = self._parse(state, new_text, finishing)
        if reasoning:
            delta["reasoning"] = reasoning
        plain = state.reasoning is None and state.tools is None
        if content or (plain and not finishing) or (finishing and not delta and not tool_deltas):
            delta["content"] = content
        if tool_deltas:
            delta["tool_calls"] = [d.to_json() for d in tool_deltas if job.tools.parallel or d.index == 0]
            if not delta["tool_calls"]:
                del delta["tool_calls"]
        if not delta and not finishing and not request.return_token_ids:
            return None  # a parser holds this text back; its logprobs go with the next chunk
        held = dataclasses.replace(completion, token_ids=state.held_token_ids, logprobs=state.held_logprobs)
        end = state.num_tokens + len(held.token_ids)
        choice: dict[str, Any] = {"index": state.index, "delta": delta, "logprobs": None, "finish_reason": None}
        if request.logprobs:
            choice["logprobs"] = chat_logprobs(held, 0, len(held.token_ids), self.num_top,
                                               self.service.tokenizer, job.as_token_ids)
        choice["token_ids"] = held.token_ids if request.return_token_ids else None
        state.num_tokens, state.held_token_ids, state.held_logprobs = end, [], []
        if finishing:
            state.finished = True
            reason = completion.finish_reason
            # "length" stays: the calls streamed so far may be cut, as the complete answer says too
            if state.tools is not None and state.tools.num_calls_streamed and \
                    job.tools.choice in ("auto", "required") and reason != "length":
                reason = "tool_calls"
            choice["finish_reason"], choice["stop_reason"] = reason, completion.stop_reason
        extra = {"usage": self._usage(end)} if self.continuous_usage else {}
        return sse_event(self.chunk([choice], **extra))

    def _parse(self, state: ChoiceState, text: str, finishing: bool) -> tuple[str, str, list]:
        """New engine text -> (content, reasoning, tool-call deltas) through the parsers."""
        reasoning = ""
        if state.reasoning is not None:
            split = state.reasoning.feed(text)
            reasoning, text = split.reasoning, split.content
            if finishing:
                rest = state.reasoning.finish()
                reasoning, text = reasoning + rest.reasoning, text + rest.content
            if not self.job.request.include_reasoning:
                reasoning = ""
        tool_deltas: list = []
        if state.tools is not None:
            text, tool_deltas = state.tools.feed(text)
            if finishing:
                rest, more = state.tools.finish()
                text, tool_deltas = text + rest, tool_deltas + more
        return text, reasoning, tool_deltas

    def end(self, final: RequestOutput | None) -> list[str]:
        events = []
        if self.include_usage and final is not None:
            num_completion = self.num_completion_tokens
            if num_completion is None:  # a whole output (replay_stream), not deltas
                num_completion = sum(len(o.token_ids) for o in final.outputs)
            total = usage(self.num_prompt_tokens, num_completion, self.service.cached_tokens(final))
            if total["prompt_tokens_details"] is None:
                del total["prompt_tokens_details"]
            events.append(sse_event(self.chunk([], usage=total)))
        events.append(DONE)
        return events


async def chat_stream(service: "ChatService", job: "ChatJob", stream: AsyncIterator[RequestOutput],
                      first: RequestOutput) -> AsyncIterator[str]:
    """The SSE body of a streamed chat completion."""
    writer = ChatStream(service, job)
    for event in writer.start(first):
        yield event
    output = first
    try:
        for event in writer.step(first):
            yield event
        while not output.finished:
            output = await stream.__anext__()
            for event in writer.step(output):
                yield event
    except (ValueError, RuntimeError) as exc:  # the engine failed this request mid-stream
        yield error_chunk(service.stream_error(job.engine_request_id, exc))
        yield DONE
        return
    for event in writer.end(output):
        yield event


async def replay_stream(service: "ChatService", job: "ChatJob", final: RequestOutput,
                        body: dict[str, Any]) -> AsyncIterator[str]:
    """A forced tool choice, generated and checked whole, sent as a stream (see structured.py)."""
    writer = ChatStream(service, job)
    writer.choices = []
    for event in writer.start(final):
        yield event
    for choice in body["choices"]:
        message = choice["message"]
        index = choice["index"]
        calls = []
        for position, call in enumerate(message["tool_calls"] or []):
            # vLLM streams a named choice's call under the choice's index (its quirk)
            calls.append({"index": index if job.tools.choice == "named" else position, **call})
        delta: dict[str, Any] = {"content": message["content"]} if message["content"] else {}
        if calls:
            delta["tool_calls"] = calls
        payload = {"index": index, "delta": delta, "logprobs": choice["logprobs"],
                   "finish_reason": choice["finish_reason"], "stop_reason": choice["stop_reason"],
                   "token_ids": choice["token_ids"]}
        extra = {"usage": writer._usage(len(final.outputs[index].token_ids))} if writer.continuous_usage else {}
        yield sse_event(writer.chunk([payload], **extra))
    for event in writer.end(final):
        yield event
