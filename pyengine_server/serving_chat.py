"""`POST /v1/chat/completions`: validate, render, generate, and answer whole or streamed.

The order of checks is vLLM's, so the same bad request gets the same
error: schema (422) -> field rules (400) -> model name (404) -> tools -> structured outputs ->
chat template and tokens -> context length -> SamplingParams -> the engine's own checks.
Everything up to the engine's first output happens before a status line is sent, so every
error in a request is a proper HTTP error; only a failure in the middle of a stream is sent as
an SSE error event.

Preparation (parsing, validation, the template, tokenization, grammar compilation, bad-words
tokenization) runs on a worker thread (pyengine_server/concurrency.py), so the event loop only does I/O.

A request belongs to its client: if the client disconnects at any stage (waiting for a worker,
being prepared, queued in the engine, generating), the request is aborted and its KV blocks are
freed (the engine generator's `aclose`, plus an explicit abort to be sure).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, TypeVar

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyengine import (
    AsyncEngine,
    EngineDeadError,
    RequestOutput,
    RequestOutputKind,
    SamplingParams,
    tokenize_bad_words,
)
from pyengine_server import params as request_params
from pyengine_server.concurrency import DisconnectWatch, Workers
from pyengine_server.errors import APIError, bad_request, validation_error
from pyengine_server.formatting import chat_logprobs, prompt_logprobs_json, usage
from pyengine_server.limits import RequestLimits, check_prompt_chars, decode_json, log_safe, longest_token_chars
from pyengine_server.prompt import Prompt, fit_context, render
from pyengine_server.protocol import ChatCompletionRequest
from pyengine_server.reasoning import END as THINK_END, START as THINK_START, ThinkReasoningParser, reasoning_parser_class
from pyengine_server.streaming import EventStreamResponse, chat_stream, replay_stream
from pyengine_server.structured import forced_choice_needs_whole_output, structured_outputs_for
from pyengine_server.tool_parsers import get_tool_parser
from pyengine_server.tools import ToolPlan, finish_tool_calls, plan_tools

logger = logging.getLogger("pyengine_server.chat")
T = TypeVar("T")


@dataclasses.dataclass
class ServingConfig:
    """The server's options that shape chat requests (`pyengine serve` flags)."""

    served_model_names: list[str]
    chat_template: str | None = None  # overrides the tokenizer's
    trust_request_chat_template: bool = False
    tool_call_parser: str | None = "hermes"  # None: no auto tool choice
    reasoning_parser: str = "auto"  # "auto" (think, if the template knows <think>), "none", or a parser's name
    max_n: int = 128
    max_pending_requests: int = 256
    return_tokens_as_token_ids: bool = False
    response_role: str = "assistant"  # the role of answers after a generation prompt
    generation_config: str = "auto"  # "auto" (the model's), "vllm" (none) or a folder
    override_generation_config: dict[str, Any] | None = None
    enable_prompt_tokens_details: bool = False  # usage.prompt_tokens_details.cached_tokens
    enable_force_include_usage: bool = False  # a usage chunk on every stream, asked or not
    log_requests: bool = True  # one info line per request
    # bounded inputs and bounded waits (pyengine_server/limits.py, pyengine_server/concurrency.py)
    limits: RequestLimits = dataclasses.field(default_factory=RequestLimits)
    max_request_body_bytes: int = 4 * 1024 * 1024
    prepare_timeout: float = 60.0  # seconds one request may spend in preparation before a 400


@dataclasses.dataclass
class ChatJob:
    """One validated request, ready for the engine."""

    request: ChatCompletionRequest
    prompt: Prompt
    params: SamplingParams
    tools: ToolPlan
    engine_request_id: str
    response_id: str
    created: int
    model: str
    reasoning: bool  # parse <think> blocks
    as_token_ids: bool
    reasoning_parser: type[ThinkReasoningParser] = ThinkReasoningParser

    def new_reasoning_parser(self) -> ThinkReasoningParser | None:
        return self.reasoning_parser(self.prompt.text) if self.reasoning else None


class ChatService:
    """Handles chat requests for one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServingConfig):
        self.engine = engine
        self.config = config
        info = engine.model_info
        self.tokenizer = info.tokenizer
        self.max_model_len = info.max_model_len
        self.prefix_caching = info.enable_prefix_caching
        self.defaults = request_params.generation_defaults(info.model, config.generation_config,
                                                           config.override_generation_config)
        template = config.chat_template or self.tokenizer.chat_template
        self.reasoning_parser = reasoning_parser_class(config.reasoning_parser, template)
        self.reasoning = self.reasoning_parser is not None
        # a constraint then covers an optional think block first, when the tags are single tokens
        self.constrain_after_reasoning = self.reasoning and all(
            len(self.tokenizer.encode(tag, add_special_tokens=False)) == 1 for tag in (THINK_START, THINK_END))
        self.num_pending = 0
        self.workers = Workers(time_budget=config.prepare_timeout)
        self.chars_per_token = longest_token_chars(self.tokenizer)
        self.vocab_size = info.vocab_size
        self.shutting_down = False  # no new requests; running streams end at the shutdown deadline
        self.in_flight: set[str] = set()  # engine request ids of requests handed to the engine

    # -- the endpoint ------------------------------------------------------------------------------

    def admit(self) -> None:
        """Take one of the server's request slots (chat and text completions share them), or 503."""
        if self.shutting_down:
            raise APIError("the server is shutting down", 503, headers={"Retry-After": "5"})
        if self.num_pending >= self.config.max_pending_requests:  # before any work: queues stay bounded
            raise APIError(f"the server is busy ({self.num_pending} requests in flight); retry shortly",
                           503, headers={"Retry-After": "1"})
        self.num_pending += 1

    async def create(self, raw_body: bytes, http_request: Request) -> Response:
        """Answer one request whose body has been read; every stage stops if the client leaves."""
        self.admit()
        handed_off = False  # a stream releases its slot when it closes
        watch = DisconnectWatch(http_request)
        job: ChatJob | None = None
        try:
            job = await watch.guard(self.workers.run(self.prepare_body, raw_body,
                                                     http_request.headers.get("x-request-id")))
            streamed = job.request.stream and not forced_choice_needs_whole_output(job.tools)
            if streamed:  # each engine output carries that step's tokens and text (chat_stream appends them)
                job.params.output_kind = RequestOutputKind.DELTA
            stream = self.engine.generate(job.engine_request_id, {"prompt_token_ids": job.prompt.token_ids},
                                          job.params, priority=job.request.priority,
                                          cache_salt=job.request.cache_salt)
            self.in_flight.add(job.engine_request_id)
            first = await watch.guard(self.first_output(job.engine_request_id, stream))  # queued: a hang-up aborts here
            if streamed:
                watch.stop()  # the streaming response notices a hang-up itself
                response = EventStreamResponse(chat_stream(self, job, stream, first),
                                               on_close=lambda: self._close(job, stream))
                handed_off = True
                return response
            final = await self._collect(job, stream, first, watch)
            body = self.build_response(job, final)
            if job.request.stream:  # a forced tool choice, checked whole, then replayed as a stream
                return EventStreamResponse(replay_stream(self, job, final, body))
            return JSONResponse(body)
        finally:
            watch.stop()
            if not handed_off:
                self.num_pending -= 1
                if job is not None:
                    self.in_flight.discard(job.engine_request_id)

    async def _close(self, job: "ChatJob", stream: AsyncIterator[RequestOutput]) -> None:
        """A stream ended (done, failed or disconnected): free its slot and its KV blocks."""
        self.num_pending -= 1
        self.in_flight.discard(job.engine_request_id)
        self.engine.abort(job.engine_request_id)  # first: nothing below may stop it
        with contextlib.suppress(Exception):
            await stream.aclose()

    def begin_shutdown(self, timeout: float) -> None:
        """Refuse new requests; those still running after `timeout` seconds end with a 503 (an error
        event, for a stream)."""
        self.shutting_down = True
        asyncio.get_running_loop().call_later(timeout, self._end_in_flight)

    def _end_in_flight(self) -> None:
        for request_id in list(self.in_flight):
            self.engine.abort(request_id, ServerShuttingDown("the server is shutting down; this stream was "
                                                             "cut off at the shutdown deadline"))

    def stream_error(self, request_id: str, exc: Exception) -> APIError:
        """The error event for a stream the engine ended early (the 200 status is already sent)."""
        if isinstance(exc, ServerShuttingDown):
            return APIError(str(exc), 503, headers={"Retry-After": "5"})
        if isinstance(exc, ValueError):
            return bad_request(str(exc))
        logger.error("request %s: generation failed mid-stream: %s", log_safe(request_id), exc)
        return APIError(f"generation failed (request id {log_safe(request_id)}); the server log "
                        "has the details", 500)

    def prepare_body(self, raw_body: bytes, header_request_id: str | None) -> ChatJob:
        """`prepare` from the raw body (decoded here, on the worker thread)."""
        return self.prepare(decode_json(raw_body), header_request_id)

    def prepare(self, body: Any, header_request_id: str | None) -> ChatJob:
        """Everything before the engine: 422, 400 and 404 errors come from here. Blocking work."""
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        request_params.check_request(request, self.config.max_n)
        if request.model and request.model not in self.config.served_model_names:  # "" or null: the served model
            raise APIError(f"The model `{request.model}` does not exist.", 404, "model")
        self.config.limits.check(request, self.vocab_size)
        check_prompt_chars(request, self.max_model_len, self.chars_per_token)
        tools = plan_tools(request, self.config.tool_call_parser)
        structured = structured_outputs_for(request, tools, self.engine.compile_structured_outputs,
                                            reasoning=self.constrain_after_reasoning)
        prompt = render(request, self.tokenizer, tools.template_tools(), self.config.chat_template,
                        self.config.trust_request_chat_template, self.config.response_role)
        prompt.token_ids, max_tokens = fit_context(request, prompt.token_ids, self.max_model_len,
                                                   self.defaults.get("max_new_tokens"))
        try:
            params = request_params.sampling_params(request, max_tokens, self.defaults,
                                                    logprobs_for_echo=not request.stream,
                                                    structured_outputs=structured)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if tools.parses and get_tool_parser(tools.parser_name).keeps_special_tokens:  # type: ignore[arg-type]
            params.skip_special_tokens = False  # the parser reads markers that are special tokens
        self.tokenize_bad_words(params)
        base_id = header_request_id or request.request_id or uuid.uuid4().hex
        if self.config.log_requests:
            logger.info("request %s: %d prompt tokens, max_tokens %d%s", log_safe(base_id), len(prompt.token_ids),
                        max_tokens, "" if request.user is None else f", user {log_safe(request.user)}")
        unknown = sorted(request.model_extra or {})
        if unknown:
            logger.debug("request %s: ignoring fields not in the spec: %s", log_safe(base_id),
                         [log_safe(name) for name in unknown])
        as_ids = request.return_tokens_as_token_ids
        return ChatJob(
            request=request, prompt=prompt, params=params, tools=tools,
            engine_request_id=f"{base_id}-{uuid.uuid4().hex[:8]}",  # duplicate client ids never collide
            response_id=f"chatcmpl-{base_id}", created=int(time.time()), model=self.config.served_model_names[0],
            reasoning=self.reasoning, as_token_ids=self.config.return_tokens_as_token_ids if as_ids is None else as_ids,
            reasoning_parser=self.reasoning_parser or ThinkReasoningParser,
        )

    def tokenize_bad_words(self, params: SamplingParams) -> None:
        """Bad words as token sequences, here on the worker thread rather than on the engine's."""
        if not params.bad_words:
            return
        encode = self.tokenizer.encode
        try:
            params.bad_words_token_ids = tokenize_bad_words(
                params.bad_words, lambda word: encode(word, add_special_tokens=False), self.vocab_size)
        except ValueError as exc:
            raise bad_request(str(exc), "bad_words") from None

    async def first_output(self, request_id: str, stream: AsyncIterator[RequestOutput]) -> RequestOutput:
        """Submit the request; the engine's ValueError (bad ids, priority, ...) is a 400."""
        try:
            return await stream.__anext__()
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        except EngineDeadError as exc:
            raise APIError(f"the engine has stopped: {exc}", 503, headers={"Retry-After": "5"}) from None
        except BaseException:
            await stream.aclose()
            self.engine.abort(request_id)
            raise

    async def _collect(self, job: ChatJob, stream: AsyncIterator[RequestOutput], first: RequestOutput,
                       watch: DisconnectWatch) -> RequestOutput:
        """Run to the end; a client that goes away aborts the request."""

        async def drain() -> RequestOutput:
            final = first
            while not final.finished:
                final = await stream.__anext__()
            return final

        try:
            return await watch.guard(engine_result(drain(), job.engine_request_id))
        finally:
            self.engine.abort(job.engine_request_id)  # a no-op once the request has finished
            with contextlib.suppress(Exception):
                await stream.aclose()

    # -- the complete response ---------------------------------------------------------------------

    def build_response(self, job: ChatJob, final: RequestOutput) -> dict[str, Any]:
        """The `ChatCompletionResponse` body (every field, nulls included, as vLLM sends it)."""
        request = job.request
        choices = []
        num_top = request.top_logprobs if request.top_logprobs is not None else 0
        for output in final.outputs:
            reasoning, content = None, output.text
            parser = job.new_reasoning_parser()
            if parser is not None:
                reasoning, content = parser.parse(output.text)
                if not request.include_reasoning:
                    reasoning = None
            finish_reason = output.finish_reason or "stop"
            calls = []
            if job.tools.parses:
                content, calls, finish_reason = finish_tool_calls(job.tools, job.tools.new_parser(),
                                                                  content or "", finish_reason)
            if job.prompt.echo_text is not None:
                content = job.prompt.echo_text + (content or "")
            # a forced call that never came (cut by max_tokens) is null, not an empty list
            tool_calls = None if job.tools.is_forced and not calls else [c.to_json() for c in calls]
            message = {"role": job.prompt.response_role, "content": content, "refusal": None,
                       "annotations": None, "audio": None, "function_call": None,
                       "tool_calls": tool_calls, "reasoning": reasoning}
            logprobs = None
            if request.logprobs:
                logprobs = chat_logprobs(output, 0, len(output.token_ids), num_top, self.tokenizer, job.as_token_ids)
            choices.append({"index": output.index, "message": message, "logprobs": logprobs,
                            "finish_reason": finish_reason, "stop_reason": output.stop_reason,
                            "token_ids": list(output.token_ids) if request.return_token_ids else None})
        num_completion = sum(len(o.token_ids) for o in final.outputs)
        return {
            "id": job.response_id, "object": "chat.completion", "created": job.created, "model": job.model,
            "choices": choices, "service_tier": None, "system_fingerprint": None,
            "usage": usage(len(final.prompt_token_ids), num_completion, self.cached_tokens(final)),
            "prompt_logprobs": prompt_logprobs_json(final.prompt_logprobs),
            "prompt_token_ids": list(final.prompt_token_ids) if request.return_token_ids else None,
            "kv_transfer_params": None,
        }

    def cached_tokens(self, output: RequestOutput) -> int | None:
        """`prompt_tokens_details.cached_tokens`: only with --enable-prompt-tokens-details, as in vLLM."""
        if not self.config.enable_prompt_tokens_details or not self.prefix_caching:
            return None
        return output.num_cached_tokens


class ServerShuttingDown(RuntimeError):
    """The server stopped before this request finished."""


async def engine_result(generation: Awaitable[T], request_id: str) -> T:
    """The engine's result; its failures as HTTP errors (400 refused, 503 stopped, 500 our fault)."""
    try:
        return await generation
    except ValueError as exc:  # a request the engine refused after accepting it
        raise bad_request(str(exc)) from None
    except (EngineDeadError, ServerShuttingDown) as exc:
        raise APIError(str(exc) if isinstance(exc, ServerShuttingDown) else f"the engine has stopped: {exc}", 503,
                       headers={"Retry-After": "5"}) from None
    except RuntimeError:  # an engine step failed: our fault, not the client's; the log has the details
        logger.exception("request %s: generation failed", log_safe(request_id))
        raise APIError(f"generation failed (request id {log_safe(request_id)}); the server log has the "
                       "details", 500) from None
