"""Server-sent events for a streamed text completion (`stream: true` on `/v1/completions`).

One chunk per choice per engine step that gave it text or tokens, `object: "text_completion"`
like the complete answer; the choice's `index` is prompt-major (prompt p's choice j is
`p * n + j`). The first chunk of a choice carries the echoed prompt (with `echo`) and the
prompt's token ids (with `return_token_ids`); the chunk that finishes it carries
`finish_reason` and `stop_reason`. Legacy logprobs' `text_offset` continues from the text the
choice has sent. After every choice: the usage chunk (`choices: []`) if
`stream_options.include_usage`, then `data: [DONE]`.

Each prompt is its own engine request; `MergedOutputs` interleaves their outputs as the engine
produces them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

from pyengine import RequestOutput
from pyengine_server.errors import error_chunk
from pyengine_server.formatting import completion_logprobs, usage
from pyengine_server.streaming import DONE, sse_event

if TYPE_CHECKING:
    from pyengine_server.serving_completion import CompletionJob, CompletionService


class MergedOutputs:
    """(prompt index, output) from every prompt's stream, in the order the engine produces them.

    Each unfinished stream has one task waiting for its next output; `close` cancels them (and
    waits for their engine streams to close), whether or not anyone is still iterating.
    """

    def __init__(self, streams: Sequence[AsyncIterator[RequestOutput]], firsts: list[RequestOutput]):
        self.streams, self.firsts = streams, firsts
        self.pending: dict[asyncio.Future, int] = {}

    async def __aiter__(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        for index, first in enumerate(self.firsts):
            yield index, first
            if not first.finished:
                self._wait_for(index)
        while self.pending:
            done, _ = await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = self.pending.pop(task)
                output = task.result()
                if not output.finished:
                    self._wait_for(index)
                yield index, output

    def _wait_for(self, index: int) -> None:
        self.pending[asyncio.ensure_future(_next(self.streams[index]))] = index

    async def close(self) -> None:
        tasks = list(self.pending)
        self.pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _next(stream: AsyncIterator[RequestOutput]) -> RequestOutput:
    return await stream.__anext__()


async def completion_stream(service: "CompletionService", job: "CompletionJob",
                            outputs: MergedOutputs) -> AsyncIterator[str]:
    """The SSE body: a chunk per choice per engine step, then the usage chunk if asked, then [DONE]."""
    request, n = job.request, job.num_choices
    options = request.stream_options
    include_usage = bool(options and options.include_usage) or service.config.enable_force_include_usage
    continuous = include_usage and bool(options and options.continuous_usage_stats)
    num_choices = n * len(job.prompts)
    sent_chars = [0] * num_choices  # text sent per choice (the legacy text_offset continues from it)
    num_tokens = [0] * num_choices  # generated tokens per choice
    started = [False] * num_choices  # the echo (and prompt_token_ids) went out
    finished = [False] * num_choices
    last: RequestOutput | None = None

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse_event({"id": job.response_id, "object": "text_completion", "created": job.created,
                          "model": job.model, "choices": choices, **extra})

    try:
        async for prompt_index, output in outputs:
            last = output
            prompt = job.prompts[prompt_index]
            for completion in output.outputs:
                i = prompt_index * n + completion.index
                if finished[i]:
                    continue
                first = not started[i]
                if first and request.echo:
                    text, token_ids, steps = service.echoed(job, prompt, output.prompt_logprobs, completion)
                else:
                    text, token_ids = completion.text, list(completion.token_ids)
                    steps = list(completion.logprobs or [])
                if job.echo_only and not first:
                    text, token_ids, steps = "", [], []
                done = completion.finish_reason is not None
                if not text and not token_ids and not done:
                    continue  # nothing new for this choice in this step
                started[i] = True
                logprobs = None
                if request.logprobs is not None:
                    logprobs = completion_logprobs(token_ids, steps, request.logprobs, service.tokenizer,
                                                   job.as_token_ids, sent_chars[i])
                sent_chars[i] += len(text)
                generated = [] if job.echo_only else list(completion.token_ids)
                num_tokens[i] += len(generated)
                finished[i] = done
                choice = {"index": i, "text": text, "logprobs": logprobs,
                          "finish_reason": ("length" if job.echo_only else completion.finish_reason) if done else None,
                          "stop_reason": None if job.echo_only else completion.stop_reason,
                          "prompt_token_ids": list(prompt.token_ids) if first and request.return_token_ids else None,
                          "token_ids": generated if request.return_token_ids else None}
                extra = {}
                if continuous:
                    extra["usage"] = _stream_usage(len(prompt.token_ids), num_tokens[i])
                yield chunk([choice], **extra)
    except (ValueError, RuntimeError) as exc:  # the engine failed a request mid-stream
        yield error_chunk(service.chat.stream_error(job.prompts[0].engine_request_id, exc))
        yield DONE
        return
    if include_usage:
        total = usage(sum(len(p.token_ids) for p in job.prompts), sum(num_tokens),
                      None if last is None else service.chat.cached_tokens(last))
        if total["prompt_tokens_details"] is None:
            del total["prompt_tokens_details"]  # streamed usage omits nulls, as vLLM's does
        yield chunk([], usage=total)
    yield DONE


def _stream_usage(num_prompt: int, num_completion: int) -> dict[str, int]:
    out = usage(num_prompt, num_completion, None)
    del out["prompt_tokens_details"]
    return out
