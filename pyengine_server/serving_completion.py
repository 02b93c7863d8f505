"""`POST /v1/completions`: raw prompts in, text out, with vLLM's meaning of every field.

    {"model": "m", "prompt": "Once upon a time", "max_tokens": 16}
    -> {"object": "text_completion", "choices": [{"index": 0, "text": ", there was", ...}], "usage": ...}

How it differs from chat (serving_chat.py, whose machinery it shares: the request slots, the
worker threads, the sampling-field rules and the SamplingParams map in params.py, the output
constraints in structured.py, the context-length rules in prompt.py, abort on disconnect):

- `prompt` is a string, a list of strings, a list of token ids, or a list of such lists. Each
  prompt is its own engine request with `n` choices; choices are numbered prompt-major
  (prompt 0's n choices, then prompt 1's), as vLLM numbers them. Strings are tokenized with
  `add_special_tokens` (default true: the tokenizer's BOS, if it has one); no chat template.
- `max_tokens` defaults to 16 (chat's default is the rest of the context).
- `echo` puts the prompt's text before each choice's text; with `max_tokens: 0` a choice is the
  echo alone. With `logprobs`, `echo` turns on prompt logprobs too, so the legacy logprobs cover
  the prompt's tokens (the first one null) and then the generated ones.
- `logprobs: N` asks for OpenAI's legacy shape (pyengine_server/formatting.py `completion_logprobs`).
- No tools and no reasoning parser: the text is the model's text.

The streamed answer's chunks are written by completion_stream.py.

Fields of vLLM's request that need machinery this engine does not have (`suffix`,
`prompt_embeds`, `logprob_token_ids`, `watermarking`, a thinking budget, KV or encoder-cache
transfer, extensions' `vllm_xargs`, a `stream_interval` above 1) are a 400 that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any, AsyncGenerator, AsyncIterator

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyengine import RequestOutput, RequestOutputKind, SamplingParams
from pyengine_server import params as request_params
from pyengine_server.concurrency import DisconnectWatch
from pyengine_server.errors import APIError, bad_request, validation_error
from pyengine_server.formatting import completion_logprobs, prompt_logprobs_json, usage
from pyengine_server.limits import check_text_chars, decode_json, log_safe
from pyengine_server.prompt import fit_prompt
from pyengine_server.protocol import CompletionRequest
from pyengine_server.serving_chat import ChatService, engine_result
from pyengine_server.completion_stream import MergedOutputs, completion_stream
from pyengine_server.streaming import EventStreamResponse
from pyengine_server.structured import structured_outputs_for
from pyengine_server.tools import ToolPlan

logger = logging.getLogger("pyengine_server.completion")
DEFAULT_MAX_TOKENS = 16
NO_TOOLS = ToolPlan(tools=[], choice="none")


@dataclasses.dataclass
class CompletionPrompt:
    """One prompt of a request: its token ids, the text `echo` prepends, its engine request id."""

    token_ids: list[int]
    text: str
    engine_request_id: str


@dataclasses.dataclass
class CompletionJob:
    """One validated request, ready for the engine."""

    request: CompletionRequest
    prompts: list[CompletionPrompt]
    params: SamplingParams
    echo_only: bool  # echo with max_tokens 0: each choice is the prompt's text, nothing generated
    response_id: str
    created: int
    model: str
    as_token_ids: bool

    @property
    def num_choices(self) -> int:
        """Choices per prompt."""
        return self.params.n


class CompletionService:
    """Handles text completion requests with the engine, slots and worker threads of `chat`."""

    def __init__(self, chat: ChatService):
        self.chat = chat
        self.engine = chat.engine
        self.config = chat.config
        self.tokenizer = chat.tokenizer

    # -- the endpoint ------------------------------------------------------------------------------

    async def create(self, raw_body: bytes, http_request: Request) -> Response:
        """Answer one request whose body has been read; every stage stops if the client leaves."""
        chat = self.chat
        chat.admit()
        handed_off = False  # a stream releases its slot when it closes
        watch = DisconnectWatch(http_request)
        job: CompletionJob | None = None
        streams: list[AsyncGenerator[RequestOutput, None]] = []
        try:
            job = await watch.guard(chat.workers.run(self.prepare_body, raw_body,
                                                     http_request.headers.get("x-request-id")))
            if job.request.stream:  # each engine output carries that step's tokens and text
                job.params.output_kind = RequestOutputKind.DELTA
            for prompt in job.prompts:
                streams.append(self.engine.generate(prompt.engine_request_id, {"prompt_token_ids": prompt.token_ids},
                                                    job.params, priority=job.request.priority,
                                                    cache_salt=job.request.cache_salt))
                chat.in_flight.add(prompt.engine_request_id)
            firsts = await watch.guard(_all(
                chat.first_output(prompt.engine_request_id, stream) for prompt, stream in zip(job.prompts, streams)))
            if job.request.stream:
                watch.stop()  # the streaming response notices a hang-up itself
                outputs = MergedOutputs(streams, list(firsts))
                response = EventStreamResponse(completion_stream(self, job, outputs),
                                               on_close=lambda: self._release(job, streams, outputs))
                handed_off = True
                return response
            finals = await watch.guard(_all(
                engine_result(_last(stream, first), prompt.engine_request_id)
                for prompt, stream, first in zip(job.prompts, streams, firsts)))
            return JSONResponse(self.build_response(job, list(finals)))
        finally:
            watch.stop()
            if not handed_off:
                await self._release(job, streams)

    async def _release(self, job: CompletionJob | None, streams: list[AsyncGenerator[RequestOutput, None]],
                       outputs: MergedOutputs | None = None) -> None:
        """The request is over (answered, failed, disconnected, or its stream closed): free its slot,
        abort its engine requests (a no-op for finished ones) and close their streams."""
        self.chat.num_pending -= 1
        if job is None:
            return
        for prompt in job.prompts:
            self.chat.in_flight.discard(prompt.engine_request_id)
            self.engine.abort(prompt.engine_request_id)
        if outputs is not None:
            await outputs.close()
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()

    # -- preparation (on a worker thread) ----------------------------------------------------------

    def prepare_body(self, raw_body: bytes, header_request_id: str | None) -> CompletionJob:
        return self.prepare(decode_json(raw_body), header_request_id)

    def prepare(self, body: Any, header_request_id: str | None) -> CompletionJob:
        """Everything before the engine: the 422, 400 and 404 errors come from here. Blocking work."""
        chat = self.chat
        try:
            request = CompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        request_params.check_request(request, self.config.max_n)
        _check_unsupported(request)
        if request.model and request.model not in self.config.served_model_names:
            raise APIError(f"The model `{request.model}` does not exist.", 404, "model")
        self.config.limits.check(request, chat.vocab_size)
        prompts = self._split_prompts(request)
        structured = structured_outputs_for(request, NO_TOOLS, self.engine.compile_structured_outputs)
        requested = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
        echo_only = bool(request.echo) and requested == 0
        texts, token_ids = [], []
        for where, prompt in prompts:
            text, ids = self._tokenize(request, prompt, where)
            kept, max_tokens = fit_prompt(ids, chat.max_model_len, 1 if echo_only else requested, "max_tokens",
                                          request.truncate_prompt_tokens, None, "prompt",
                                          keep_last=request.truncation_side != "right")
            if len(kept) != len(ids):  # truncated: the echo is what the model saw
                text = self.tokenizer.decode(kept, skip_special_tokens=False)
            texts.append(text)
            token_ids.append(kept)
        try:
            params = request_params.sampling_params(request, max_tokens, chat.defaults,
                                                    structured_outputs=structured)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        chat.tokenize_bad_words(params)
        base_id = header_request_id or request.request_id or uuid.uuid4().hex
        if self.config.log_requests:
            logger.info("request %s: %d prompts, %d prompt tokens, max_tokens %d%s", log_safe(base_id), len(prompts),
                        sum(len(ids) for ids in token_ids), requested,
                        "" if request.user is None else f", user {log_safe(request.user)}")
        unknown = sorted(request.model_extra or {})
        if unknown:
            logger.debug("request %s: ignoring fields not in the spec: %s", log_safe(base_id),
                         [log_safe(name) for name in unknown])
        suffix = uuid.uuid4().hex[:8]  # duplicate client ids never collide
        as_ids = request.return_tokens_as_token_ids
        return CompletionJob(
            request=request, params=params, echo_only=echo_only,
            prompts=[CompletionPrompt(ids, text, f"{base_id}-{i}-{suffix}")
                     for i, (text, ids) in enumerate(zip(texts, token_ids))],
            response_id=f"cmpl-{base_id}", created=int(time.time()), model=self.config.served_model_names[0],
            as_token_ids=self.config.return_tokens_as_token_ids if as_ids is None else as_ids,
        )

    def _split_prompts(self, request: CompletionRequest) -> list[tuple[str, str | list[int]]]:
        """`prompt` as (where, prompt) pairs, a prompt being a string or token ids; 400 when empty or too many."""
        prompt = request.prompt
        if prompt is None or prompt == "" or prompt == []:
            raise bad_request("`prompt` must be given and not empty: a string, a list of strings, a list of "
                              "token ids or a list of token id lists", "prompt")
        if isinstance(prompt, str) or isinstance(prompt[0], int):
            prompts: list[tuple[str, Any]] = [("prompt", prompt)]
        else:
            prompts = [(f"prompt[{i}]", item) for i, item in enumerate(prompt)]
        cap = self.config.limits.prompts
        if len(prompts) > cap:
            raise bad_request(f"`prompt` holds {len(prompts)} prompts; this server accepts at most {cap}.", "prompt")
        return prompts

    def _tokenize(self, request: CompletionRequest, prompt: str | list[int], where: str) -> tuple[str, list[int]]:
        """(the text `echo` shows, the token ids) of the prompt at `where`; 400 for ids outside the vocabulary."""
        if isinstance(prompt, str):
            if request.truncate_prompt_tokens is None:  # refused by its length before the tokenizer runs
                check_text_chars(len(prompt), self.chat.max_model_len, self.chat.chars_per_token,
                                 f"{where} holds", "prompt")
            return prompt, self.tokenizer.encode(prompt, add_special_tokens=request.add_special_tokens)
        vocab_size = self.chat.vocab_size
        bad = [t for t in prompt if t >= vocab_size]
        if bad:
            raise bad_request(f"{where}: token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})", "prompt")
        return self.tokenizer.decode(prompt, skip_special_tokens=False), list(prompt)

    # -- the complete response ---------------------------------------------------------------------

    def build_response(self, job: CompletionJob, finals: list[RequestOutput]) -> dict[str, Any]:
        """The `CompletionResponse` body (every field, nulls included, as vLLM sends it)."""
        choices: list[dict[str, Any]] = []
        num_prompt = num_completion = 0
        for prompt, final in zip(job.prompts, finals):
            for output in final.outputs:
                choices.append(self._choice(job, prompt, final, output, len(choices)))
                num_completion += 0 if job.echo_only else len(output.token_ids)
            num_prompt += len(final.prompt_token_ids)
        return {
            "id": job.response_id, "object": "text_completion", "created": job.created, "model": job.model,
            "choices": choices, "service_tier": None, "system_fingerprint": None,
            "usage": usage(num_prompt, num_completion, self.chat.cached_tokens(finals[-1])),
            "kv_transfer_params": None,
        }

    def _choice(self, job: CompletionJob, prompt: CompletionPrompt, final: RequestOutput, output: Any,
                index: int) -> dict[str, Any]:
        request = job.request
        text, token_ids, steps = self.echoed(job, prompt, final.prompt_logprobs, output)
        logprobs = None
        if request.logprobs is not None:
            logprobs = completion_logprobs(token_ids, steps, request.logprobs, self.tokenizer, job.as_token_ids)
        return {"index": index, "text": text, "logprobs": logprobs,
                "finish_reason": "length" if job.echo_only else output.finish_reason,
                "stop_reason": None if job.echo_only else output.stop_reason,
                "prompt_logprobs": prompt_logprobs_json(final.prompt_logprobs),
                "token_ids": ([] if job.echo_only else list(output.token_ids)) if request.return_token_ids else None,
                "prompt_token_ids": list(final.prompt_token_ids) if request.return_token_ids else None}

    @staticmethod
    def echoed(job: CompletionJob, prompt: CompletionPrompt, prompt_logprobs: list | None,
               output: Any) -> tuple[str, list[int], list]:
        """(text, token ids, logprob steps) of a choice's first (or whole) output, the prompt
        before them when echoing: the ids and steps the legacy logprobs list."""
        generated_steps = list(output.logprobs or [])
        if not job.request.echo:
            return output.text, list(output.token_ids), generated_steps
        prompt_steps = list(prompt_logprobs or [None] * len(prompt.token_ids))
        if job.echo_only:
            return prompt.text, list(prompt.token_ids), prompt_steps
        return (prompt.text + output.text, [*prompt.token_ids, *output.token_ids],
                [*prompt_steps, *generated_steps])


def _check_unsupported(request: CompletionRequest) -> None:
    """vLLM's completion fields that need machinery this engine does not have: a 400 that says why."""
    if request.suffix is not None:
        raise bad_request("suffix is not supported: the models this server runs have no fill-in-the-middle "
                          "mode; put the text in `prompt`", "suffix")
    if request.prompt_embeds is not None:
        raise bad_request("prompt_embeds are not supported: this server takes text or token ids in `prompt`",
                          "prompt_embeds")
    if request.logprob_token_ids is not None:
        raise bad_request("logprob_token_ids is not supported; use `logprobs` (the top N per token)",
                          "logprob_token_ids")
    if request.watermarking:
        raise bad_request("watermarking is not supported by this engine's sampler", "watermarking")
    if request.thinking_token_budget not in (None, -1):
        raise bad_request("thinking_token_budget is not supported: this server has no reasoning budget",
                          "thinking_token_budget")
    if request.ec_transfer_params:
        raise bad_request("ec_transfer_params needs an encoder-cache connector, which this server does not have",
                          "ec_transfer_params")
    if request.stream_interval is not None and request.stream_interval > 1:
        raise bad_request("stream_interval above 1 is not supported: streams send every engine step",
                          "stream_interval")
    if request.stream and request.use_beam_search:
        raise bad_request("Streaming is not currently supported with beam search", "use_beam_search")


async def _all(awaitables: Any) -> list[Any]:
    """Every result, in order; when one fails (or this is cancelled), the others are cancelled
    and have finished their cleanup (closing their engine streams) before the error is raised."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _last(stream: AsyncIterator[RequestOutput], first: RequestOutput) -> RequestOutput:
    final = first
    while not final.finished:
        final = await stream.__anext__()
    return final
