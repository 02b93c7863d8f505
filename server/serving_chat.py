"""`POST /v1/chat/completions`: validate, render, generate, and answer whole or streamed.

The order of checks is vLLM's, so the same bad request gets the same
error: schema (422) -> field rules (400) -> model name (404) -> tools -> structured outputs ->
chat template and tokens -> context length -> SamplingParams -> the engine's own checks.
Everything up to the engine's first output happens before a status line is sent, so every
error in a request is a proper HTTP error; only a failure in the middle of a stream is sent as
an SSE error event.

A request belongs to its client: if the client disconnects, the request is aborted and its KV
blocks are freed (the engine generator's `aclose`, plus an explicit abort to be sure).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any, AsyncIterator

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyengine import RequestOutput, SamplingParams
from pyengine.async_engine import AsyncEngine, EngineDeadError
from server import params as request_params
from server.errors import APIError, bad_request, validation_error
from server.formatting import chat_logprobs, prompt_logprobs_json, usage
from server.prompt import Prompt, fit_context, render
from server.protocol import ChatCompletionRequest
from server.reasoning import END as THINK_END, START as THINK_START, ThinkReasoningParser, reasoning_parser_class
from server.streaming import EventStreamResponse, chat_stream, replay_stream
from server.structured import forced_choice_needs_whole_output, structured_outputs_for
from server.tool_parsers import get_tool_parser
from server.tools import ToolPlan, finish_tool_calls, plan_tools

logger = logging.getLogger("server.chat")


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
        core = engine.engine
        self.tokenizer = core.tokenizer
        self.max_model_len = core.max_model_len
        self.prefix_caching = core.config.enable_prefix_caching
        self.defaults = request_params.generation_defaults(core.config.model, config.generation_config,
                                                           config.override_generation_config)
        template = config.chat_template or self.tokenizer.chat_template
        self.reasoning_parser = reasoning_parser_class(config.reasoning_parser, template)
        self.reasoning = self.reasoning_parser is not None
        # a constraint then covers an optional think block first, when the tags are single tokens
        self.constrain_after_reasoning = self.reasoning and all(
            len(self.tokenizer.encode(tag, add_special_tokens=False)) == 1 for tag in (THINK_START, THINK_END))
        self.num_pending = 0

    # -- the endpoint ------------------------------------------------------------------------------

    async def create(self, body: Any, http_request: Request) -> Response:
        job = self.prepare(body, http_request.headers.get("x-request-id"))
        if self.num_pending >= self.config.max_pending_requests:
            raise APIError(f"the server is busy ({self.num_pending} requests in flight); retry shortly",
                           503, headers={"Retry-After": "1"})
        self.num_pending += 1
        handed_off = False  # a stream releases its slot when it closes
        try:
            stream = self.engine.generate(job.engine_request_id, {"prompt_token_ids": job.prompt.token_ids},
                                          job.params, priority=job.request.priority,
                                          cache_salt=job.request.cache_salt)
            first = await self._first_output(job, stream)
            if job.request.stream and not forced_choice_needs_whole_output(job.tools):
                response = EventStreamResponse(chat_stream(self, job, stream, first),
                                               on_close=lambda: self._close(job, stream))
                handed_off = True
                return response
            final = await self._collect(job, stream, first, http_request)
            body = self.build_response(job, final)
            if job.request.stream:  # a forced tool choice, checked whole, then replayed as a stream
                return EventStreamResponse(replay_stream(self, job, final, body))
            return JSONResponse(body)
        finally:
            if not handed_off:
                self.num_pending -= 1

    async def _close(self, job: "ChatJob", stream: AsyncIterator[RequestOutput]) -> None:
        """A stream ended (done, failed or disconnected): free its slot and its KV blocks."""
        self.num_pending -= 1
        self.engine.abort(job.engine_request_id)  # first: nothing below may stop it
        with contextlib.suppress(Exception):
            await stream.aclose()

    def prepare(self, body: Any, header_request_id: str | None) -> ChatJob:
        """Everything before the engine: 422, 400 and 404 errors come from here."""
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        request_params.check_request(request, self.config.max_n)
        if request.model and request.model not in self.config.served_model_names:  # "" or null: the served model
            raise APIError(f"The model `{request.model}` does not exist.", 404, "model")
        tools = plan_tools(request, self.config.tool_call_parser)
        structured = structured_outputs_for(request, tools, reasoning=self.constrain_after_reasoning)
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
        base_id = header_request_id or request.request_id or uuid.uuid4().hex
        if self.config.log_requests:
            logger.info("request %s: %d prompt tokens, max_tokens %d%s", base_id, len(prompt.token_ids),
                        max_tokens, "" if request.user is None else f", user {request.user!r}")
        unknown = sorted(request.model_extra or {})
        if unknown:
            logger.debug("request %s: ignoring fields not in the spec: %s", base_id, unknown)
        as_ids = request.return_tokens_as_token_ids
        return ChatJob(
            request=request, prompt=prompt, params=params, tools=tools,
            engine_request_id=f"{base_id}-{uuid.uuid4().hex[:8]}",  # duplicate client ids never collide
            response_id=f"chatcmpl-{base_id}", created=int(time.time()), model=self.config.served_model_names[0],
            reasoning=self.reasoning, as_token_ids=self.config.return_tokens_as_token_ids if as_ids is None else as_ids,
            reasoning_parser=self.reasoning_parser or ThinkReasoningParser,
        )

    async def _first_output(self, job: ChatJob, stream: AsyncIterator[RequestOutput]) -> RequestOutput:
        """Submit the request; the engine's ValueError (bad ids, priority, ...) is a 400."""
        try:
            return await stream.__anext__()
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        except EngineDeadError as exc:
            raise APIError(f"the engine has stopped: {exc}", 503, headers={"Retry-After": "5"}) from None
        except BaseException:
            await stream.aclose()
            self.engine.abort(job.engine_request_id)
            raise

    async def _collect(self, job: ChatJob, stream: AsyncIterator[RequestOutput], first: RequestOutput,
                       http_request: Request) -> RequestOutput:
        """Run to the end; a client that goes away aborts the request."""

        async def drain() -> RequestOutput:
            final = first
            while not final.finished:
                final = await stream.__anext__()
            return final

        generation = asyncio.ensure_future(drain())
        disconnect = asyncio.ensure_future(_wait_for_disconnect(http_request))
        try:
            done, _ = await asyncio.wait({generation, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if generation in done:
                return _engine_result(generation)
            raise ClientDisconnected()
        finally:
            for task in (generation, disconnect):
                task.cancel()
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


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def _wait_for_disconnect(http_request: Request) -> None:
    while True:
        message = await http_request.receive()
        if message["type"] == "http.disconnect":
            return


def _engine_result(task: asyncio.Future) -> RequestOutput:
    try:
        return task.result()
    except ValueError as exc:  # a request the engine refused after accepting it
        raise bad_request(str(exc)) from None
    except EngineDeadError as exc:
        raise APIError(f"the engine has stopped: {exc}", 503, headers={"Retry-After": "5"}) from None
    except RuntimeError as exc:  # an engine step failed: our fault, not the client's
        raise APIError(f"generation failed: {exc}", 500) from None
