"""The engine: the one main loop that turns requests into tokens, a step at a time.

    engine.add_request("r1", "Once upon a time", SamplingParams(max_tokens=32))
    while engine.has_unfinished_requests():
        for output in engine.step():   # RequestOutputs of the requests that moved this step
            ...

`step()` is steps 4-9 of a request's life (docs/00-map.md numbers them), `add_request` step 3.
It deals in token ids; text goes in through the tokenizer and out through the detokenizer.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np  # host: the row index of each sampling sequence

from pyengine import settings
from pyengine.backend import get_backend
from pyengine.cache import BlockManager, KVCache
from pyengine.engine_config import EngineConfig
from pyengine.model import load_model
from pyengine.model_runner import ModelInputs, ModelRunner
from pyengine.output_processor import OutputProcessor
from pyengine.outputs import CompletionOutput, Logprob, LogprobsDict, RequestOutput
from pyengine.sampling import (RequestOutputKind, SamplerOutput, SamplingParams, SamplingRow, make_generator,
                               make_sampler)
from pyengine.scheduler import POLICIES, BatchPlan
from pyengine.sequence import Request, Sequence
from pyengine.text import Tokenizer, kernels

if TYPE_CHECKING:
    from pyengine.sampling.nested_params import StructuredOutputsParams


class Engine:
    """Continuous-batching engine over a paged KV cache (vLLM's LLMEngine, in miniature)."""

    def __init__(self, config: EngineConfig):
        self.config = config
        self.backend = get_backend(config.device)
        self.model = load_model(config.model, self.backend, attention=config.twins.attention)
        model_config = self.model.config
        # skip_tokenizer_init (as in vLLM): token ids in, token ids out, no text at all
        self.tokenizer = None if config.skip_tokenizer_init else \
            Tokenizer.from_pretrained(config.tokenizer or config.model)
        self.vocab_size = model_config.vocab_size
        if config.max_model_len is not None and config.max_model_len > model_config.max_position_embeddings:
            raise ValueError(f"max_model_len {config.max_model_len} is greater than the model's context of "
                             f"{model_config.max_position_embeddings} tokens (max_position_embeddings in config.json)")
        self.max_model_len = config.max_model_len or model_config.max_position_embeddings
        # The tokenizer's EOS ends a sequence with stop_reason None; the config's other eos ids
        # become stop tokens (stop_reason = the id), as vLLM does.
        self.eos_token_id = self.tokenizer.eos_token_id if self.tokenizer else None
        if self.eos_token_id is None and model_config.eos_token_ids:
            self.eos_token_id = model_config.eos_token_ids[0]
        self.extra_eos_ids = frozenset(model_config.eos_token_ids) - {self.eos_token_id}
        cache_dtype = self.model.dtype  # float32 on numpy; a half-precision model's dtype on cupy
        layers, kv_heads, head_dim = (model_config.num_hidden_layers, model_config.num_key_value_heads,
                                      model_config.head_dim)
        bytes_per_block = KVCache.bytes_per_block(layers, config.block_size, kv_heads, head_dim, cache_dtype.itemsize)
        self.kv_cache = KVCache(self.backend, layers, config.resolve_num_blocks(bytes_per_block), config.block_size,
                                kv_heads, head_dim, cache_dtype)
        self.blocks = BlockManager(self.kv_cache.num_blocks, config.block_size, config.enable_prefix_caching)
        self.runner = ModelRunner(self.model, self.kv_cache)
        scheduler_class = settings.load(*POLICIES[config.scheduling_policy])  # priority's loads when chosen
        self.scheduler = scheduler_class(self.blocks, config.max_num_seqs, config.max_num_batched_tokens)
        self.sampler = make_sampler(config.twins.sampler, self.backend, self.vocab_size, seed=config.seed)
        text_kernels = kernels.select(config.twins.text)  # the Rust kernels, or their Python twins
        # The embedding may have more rows than the tokenizer has tokens (Qwen: 151,936 vs 151,665):
        # those ids decode to nothing, as tokenizer.decode does, instead of failing the step.
        table = None if self.tokenizer is None else text_kernels.TokenTable.from_tokenizer(
            self.tokenizer.backend_tokenizer, self.tokenizer.all_special_ids, vocab_size=self.vocab_size)
        self.output_processor = OutputProcessor(text_kernels, table, self.eos_token_id, self.max_model_len)
        self._constrained: Any = None  # structured outputs, loaded by the first request with a constraint
        self.requests: dict[str, Request] = {}
        self._seq_ids = itertools.count()
        self._arrivals = itertools.count()

    @property
    def constrained(self) -> Any:
        """Structured outputs (pyengine/constrained.py), loaded and built by the first constraint."""
        if self._constrained is None:
            from pyengine.constrained import ConstrainedDecoding  # noqa: PLC0415  (the first constraint loads it)
            eos_ids = ({self.eos_token_id} | self.extra_eos_ids) - {None}
            self._constrained = ConstrainedDecoding(self.tokenizer, self.vocab_size, eos_ids, self.config.twins.grammar)
        return self._constrained

    def compile_structured_outputs(self, structured_outputs: StructuredOutputsParams) -> StructuredOutputsParams:
        """Compile a constraint now (a server does it while validating) and keep it on the params, so a
        request that carries them is not compiled again. Raises ValueError if it does not compile."""
        structured_outputs.compiled = self.constrained.compile(structured_outputs)
        return structured_outputs

    # -- requests ----------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt: Any, params: SamplingParams, priority: int = 0,
                    cache_salt: str | None = None) -> None:
        """Queue a prompt (text, token ids, or {"prompt_token_ids": [...]}); `params` is only read. Raises
        ValueError: a duplicate id, an empty or too-long prompt, parameters that do not fit this model."""
        self.add_built_request(self.build_request(request_id, prompt, params, priority, cache_salt))

    def build_request(self, request_id: str, prompt: Any, params: SamplingParams, priority: int = 0,
                      cache_salt: str | None = None) -> Request:
        """All of `add_request` but the queueing. It changes no scheduler state, so a caller may run it on
        another thread (a large grammar's matchers take seconds) and queue the result between steps."""
        if request_id in self.requests:
            raise ValueError(f"request id {request_id!r} is already in use")
        if priority != 0 and self.scheduler.policy != "priority":
            raise ValueError(f"Got priority {priority} but Priority scheduling is not enabled.")
        text, prompt_ids = self.prompt_ids(prompt, params)
        params.verify(self.vocab_size, self.config.max_logprobs)
        grammar = None if params.structured_outputs is None else self.constrained.grammar_for(params)  # may raise
        request = Request(request_id, text, prompt_ids, params, next(self._arrivals), priority, cache_salt)
        request.stop_token_ids = frozenset(params.stop_token_ids or ()) | (
            frozenset() if params.ignore_eos else self.extra_eos_ids)
        request.needs_prompt_logprobs = params.prompt_logprobs is not None
        if params.bad_words or params.bad_words_token_ids:
            from pyengine.sampling.processors import request_bad_words  # noqa: PLC0415  (bad words load it)
            request.bad_words_token_ids = request_bad_words(params, self.tokenizer, self.vocab_size)
        for index in range(1 if params.use_beam_search else params.n):
            seed = None if params.seed is None else params.seed + index
            seq = Sequence(next(self._seq_ids), request, index, make_generator(seed))
            seq.logprobs = [] if params.logprobs is not None else None
            self.output_processor.start(seq)
            seq.matcher = None if grammar is None else self.constrained.new_matcher(grammar, params, prompt_ids)
            request.sequences.append(seq)
        return request

    def add_built_request(self, request: Request) -> None:
        """Queue a request from `build_request`. Raises ValueError if its id is in use."""
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        self.requests[request.request_id] = request
        # Sequences 1..n-1 wait for sequence 0's prefill and then share its cache (Scheduler.fork).
        self.scheduler.add(request.sequences[0])

    def abort_request(self, request_ids: str | list[str]) -> None:
        """Stop these requests now and free their KV blocks; unknown ids are ignored."""
        for request_id in [request_ids] if isinstance(request_ids, str) else request_ids:
            request = self.requests.pop(request_id, None)
            for seq in request.sequences if request else ():
                self.scheduler.finish(seq, seq.finish_reason or "abort")

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    # -- the main loop -----------------------------------------------------------------------------
    def step(self) -> list[RequestOutput]:
        """Run one batched forward pass and return the outputs of the requests it advanced."""
        plan = self.scheduler.schedule()  # 4. who runs, with how many tokens
        if plan.is_empty():
            return self._fail_unschedulable()
        inputs = self.runner.prepare([(item.new_token_ids, item.seq.num_computed_tokens, item.seq.block_table)
                                      for item in plan.scheduled])  # 5. packed ids, positions, block tables
        hidden = self.runner.forward(inputs)  # 6. [N, D]
        sampling = [i for i, item in enumerate(plan.scheduled) if item.completes_prompt]
        logits = self.runner.last_token_logits(hidden, inputs, sampling)  # [B, V]
        self._prompt_logprobs(plan, hidden, inputs)
        self.scheduler.after_step(plan)  # the cache now holds this step's keys and values
        seqs, rows_index = self._sampling_rows(plan, sampling)  # 7. n > 1 siblings join here
        sampled = self._sample(logits, seqs, rows_index)  # 7a. grammar masks; the sampler does 7a-7f
        for i, seq in enumerate(seqs):  # 8. append, check stops, detokenize
            self._append_token(seq, sampled.token_ids[i], sampled.sampled_logprobs[i], sampled.logprobs[i])
        self.scheduler.postprocess(seqs)  # finished sequences leave and free their blocks
        touched = {seq.request.request_id: seq.request for seq in seqs}
        return [self._request_output(r) for r in touched.values()  # 9.
                if r.params.output_kind is not RequestOutputKind.FINAL_ONLY or r.is_finished]

    # -- step helpers ------------------------------------------------------------------------------
    def _prompt_logprobs(self, plan: BatchPlan, hidden: Any, inputs: ModelInputs) -> None:
        """Prompt logprobs, chunk by chunk: logits at position p score prompt token p + 1."""
        for i, item in enumerate(plan.scheduled):
            seq, request = item.seq, item.seq.request
            if not request.needs_prompt_logprobs or seq.index != 0:
                continue
            if request.prompt_logprobs is None:
                request.prompt_logprobs = [None]  # the first token has no context
            first = seq.num_computed_tokens  # this chunk covers positions first .. first + n - 1
            if first + 1 != len(request.prompt_logprobs):
                continue  # already computed (a recompute after preemption), or out of order
            last = min(first + item.num_new_tokens, len(request.prompt_token_ids) - 1)  # exclusive end
            if last <= first:
                continue
            logits = self.runner.chunk_logits(hidden, inputs, i, last - first)  # [last - first, V]
            rows = self.sampler.prompt_logprobs(logits, request.prompt_token_ids[first:last + 1],
                                                request.params.prompt_logprobs)[1:]  # tokens first + 1 .. last
            request.prompt_logprobs += [self._logprobs_dict(seq, r) for r in rows]

    def _sampling_rows(self, plan: BatchPlan, sampling: list[int]) -> tuple[list[Sequence], list[int]]:
        """The sequences that sample this step and the row of `logits` each reads."""
        seqs, rows = [], []
        for row, i in enumerate(sampling):
            seq = plan.scheduled[i].seq
            seqs.append(seq)
            rows.append(row)
            if seq.index == 0 and not seq.output_token_ids:
                siblings, copies = self.scheduler.fork(seq)
                for source, target in copies:
                    self.kv_cache.copy_blocks(source, target)
                seqs += siblings
                rows += [row] * len(siblings)  # the same prompt logits: the prefill is shared
        return seqs, rows

    def _sample(self, logits: Any, seqs: list[Sequence], rows_index: list[int]) -> SamplerOutput:
        """The grammar masks of the rows that have one, then one token per sequence (none: no row samples)."""
        rows = [SamplingRow(seq.request.params, seq.prompt_token_ids, seq.output_token_ids, seq.generator,
                            seq.request.stop_token_ids | {self.eos_token_id} - {None}, seq.request.bad_words_token_ids)
                for seq in seqs]
        matchers = [seq.matcher for seq in seqs]
        mask = None if all(m is None for m in matchers) else self.constrained.mask(matchers)  # [B, V] host bool
        to_device = self.backend.to_device
        return self.sampler(logits[to_device(np.array(rows_index, dtype=np.int64))], rows,
                            None if mask is None else to_device(mask))

    def _append_token(self, seq: Sequence, token_id: int, logprob: float, row_logprobs: Any) -> None:
        """Append a sampled token and run the stop checks (which may set its finish reason)."""
        if seq.matcher is not None:  # EOS inside a think block stands for the closing tag
            token_id, row_logprobs = self.constrained.output_token(seq.matcher, token_id, row_logprobs)
        seq.output_token_ids.append(token_id)
        if logprob is not None:  # computed for requests with logprobs, as in vLLM
            seq.cumulative_logprob += logprob
        if seq.logprobs is not None and row_logprobs is not None:
            seq.logprobs.append(self._logprobs_dict(seq, row_logprobs))
        self.output_processor.process_token(seq, token_id)
        if seq.matcher is not None and not self.constrained.advance(seq.matcher, token_id) \
                and seq.finish_reason is None:
            seq.finish_reason = "stop"  # the grammar cannot go on: end cleanly

    def _logprobs_dict(self, seq: Sequence, row: Any) -> LogprobsDict:
        """vLLM's dict, built as vLLM builds it: a token listed twice (chosen and in the top-k) keeps its
        first position and takes its top-k entry's value and rank."""
        text = self.output_processor.token_text
        return {token_id: Logprob(logprob, rank, text(seq, token_id))
                for token_id, logprob, rank in zip(row.token_ids, row.logprobs, row.ranks)}

    def _fail_unschedulable(self) -> list[RequestOutput]:
        """Nothing fits even in an empty batch: end the blocked sequence rather than spin ("length", as vLLM
        reports a prompt the engine cannot hold)."""
        seq = self.scheduler.blocked_sequence()
        if seq is not None:
            self.scheduler.finish(seq, "length")
        return [] if seq is None else [self._request_output(seq.request)]

    def _request_output(self, request: Request) -> RequestOutput:
        """The request's state as its output kind asks: everything so far, or this step's part only."""
        delta = request.params.output_kind is RequestOutputKind.DELTA
        outputs = [self._completion_output(seq, delta) for seq in request.sequences]
        prompt_logprobs = None if delta and request.num_outputs else request.prompt_logprobs
        request.num_outputs += 1
        if request.is_finished:
            self.requests.pop(request.request_id, None)
        prompt_ids = request.prompt_token_ids if delta else list(request.prompt_token_ids)
        return RequestOutput(request.request_id, request.prompt, prompt_ids, prompt_logprobs, outputs,
                             request.is_finished, request.num_cached_tokens)

    @staticmethod
    def _completion_output(seq: Sequence, delta: bool) -> CompletionOutput:
        """One choice: all its tokens and text so far, or (delta) those not yet in an output."""
        first_token, first_char = (seq.num_sent_tokens, seq.num_sent_chars) if delta else (0, 0)
        seq.num_sent_tokens, seq.num_sent_chars = len(seq.output_token_ids), len(seq.text)
        return CompletionOutput(
            index=seq.index, text=seq.text[first_char:], token_ids=seq.output_token_ids[first_token:],
            cumulative_logprob=None if seq.logprobs is None else seq.cumulative_logprob,
            logprobs=seq.logprobs[first_token:] if delta and seq.logprobs is not None else seq.logprobs,
            finish_reason=seq.finish_reason, stop_reason=seq.stop_reason)

    def prompt_ids(self, prompt: Any, params: SamplingParams) -> tuple[str | None, list[int]]:
        """Tokenize and check a prompt (string, ids, or {"prompt_token_ids": ...}) -> (text, ids)."""
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError("text prompts need a tokenizer; pass {'prompt_token_ids': [...]} "
                                 "(the engine runs with skip_tokenizer_init)")
            text, ids = prompt, self.tokenizer.encode(prompt)
        elif isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            text, ids = prompt.get("prompt"), list(prompt["prompt_token_ids"])
        elif isinstance(prompt, (list, tuple)):
            text, ids = None, list(prompt)
        else:
            raise ValueError("a prompt is a string, a list of token ids, or {'prompt_token_ids': [...]}")
        keep = params.truncate_prompt_tokens or 0  # -1: as many as fit, which is all of them
        ids = ids[-keep:] if 0 < keep < len(ids) else ids
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"prompt token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        if len(ids) >= self.max_model_len:
            raise ValueError(f"The prompt has {len(ids)} tokens, but the model's context length is only "
                             f"{self.max_model_len} tokens, leaving no room to generate. Please reduce the prompt.")
        if self.blocks.blocks_needed(len(ids) + 1) > self.blocks.num_blocks:
            raise ValueError(f"the prompt needs more KV cache blocks than the cache has "
                             f"({self.blocks.num_blocks} blocks of {self.blocks.block_size} tokens)")
        return text, ids
