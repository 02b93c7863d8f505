"""The engine: the one main loop that turns requests into tokens, a step at a time.

    engine.add_request("r1", "Once upon a time", SamplingParams(max_tokens=32))
    while engine.has_unfinished_requests():
        for output in engine.step():   # RequestOutputs of the requests that moved this step
            ...

`step()` is steps 4-9 of a request's life as docs/00-map.md numbers them, and reads like its
table of contents: (4) schedule, (5) build model inputs, (6) forward, (7) sample, (8) append
each token, check stops and detokenize, (9) emit outputs. `add_request` is step 3.
It deals in token ids; text goes in through the tokenizer and out through the detokenizer.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from pyengine.backend import blas_threads_for, get_backend, host_numpy, keep_freed_memory, set_blas_threads
from pyengine.cache import BlockManager, KVCache
from pyengine.config import EngineConfig
from pyengine.constrained import ConstrainedDecoding
from pyengine.model import AttentionInputs, decode_groups, load_model
from pyengine.output_processor import OutputProcessor
from pyengine.outputs import CompletionOutput, Logprob, LogprobsDict, RequestOutput
from pyengine.sampling import (
    Sampler,
    SamplingParams,
    SamplingRow,
    compute_prompt_logprobs,
    make_generator,
    tokenize_bad_words,
)
from pyengine.scheduler import BatchPlan, Scheduler
from pyengine.sequence import Request, Sequence, SequenceStatus
from pyengine.text import Tokenizer, kernels

np = host_numpy()  # host-side index arrays for the model inputs


class Engine:
    """Continuous-batching engine over a paged KV cache (vLLM's LLMEngine, in miniature)."""

    def __init__(self, config: EngineConfig):
        self.config = config
        self.backend = get_backend(config.device)
        self.model = load_model(config.model, self.backend)
        mc = self.model.config
        if self.backend.name == "cpu":
            set_blas_threads(blas_threads_for(mc.hidden_size, mc.intermediate_size, config.cpu_threads))
            keep_freed_memory()  # big per-layer temporaries come back without page faults
        # skip_tokenizer_init (as in vLLM): token ids in, token ids out, no text at all
        self.tokenizer = None if config.skip_tokenizer_init else \
            Tokenizer.from_pretrained(config.tokenizer or config.model)
        self.vocab_size = mc.vocab_size
        if config.max_model_len is not None and config.max_model_len > mc.max_position_embeddings:
            raise ValueError(f"max_model_len {config.max_model_len} is greater than the model's context of "
                             f"{mc.max_position_embeddings} tokens (max_position_embeddings in config.json)")
        self.max_model_len = config.max_model_len or mc.max_position_embeddings
        # The tokenizer's EOS ends a sequence with stop_reason None; the config's other eos ids
        # become stop tokens (stop_reason = the id), as vLLM does.
        self.eos_token_id = self.tokenizer.eos_token_id if self.tokenizer else None
        if self.eos_token_id is None and mc.eos_token_ids:
            self.eos_token_id = mc.eos_token_ids[0]
        self.extra_eos_ids = frozenset(mc.eos_token_ids) - {self.eos_token_id}
        cache_dtype = self.model.dtype  # float32 on numpy; a half-precision model's dtype on cupy
        bytes_per_block = KVCache.bytes_per_block(mc.num_hidden_layers, config.block_size,
                                                  mc.num_key_value_heads, mc.head_dim, cache_dtype.itemsize)
        self.kv_cache = KVCache(self.backend, mc.num_hidden_layers, config.resolve_num_blocks(bytes_per_block),
                                config.block_size, mc.num_key_value_heads, mc.head_dim, cache_dtype)
        self.blocks = BlockManager(self.kv_cache.num_blocks, config.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(self.blocks, config.max_num_seqs, config.max_num_batched_tokens,
                                   config.scheduling_policy)
        self.sampler = Sampler(self.backend, self.vocab_size, seed=config.seed)
        text_kernels = kernels.select(config.kernels)  # the Rust kernels, or their Python twins
        # The embedding may have more rows than the tokenizer has tokens (Qwen: 151,936 vs 151,665):
        # those ids decode to nothing, as tokenizer.decode does, instead of failing the step.
        table = None if self.tokenizer is None else text_kernels.TokenTable.from_tokenizer(
            self.tokenizer.backend_tokenizer, self.tokenizer.all_special_ids, vocab_size=self.vocab_size)
        self.output_processor = OutputProcessor(text_kernels, table, self.eos_token_id, self.max_model_len)
        self.constrained = ConstrainedDecoding(self.tokenizer, self.vocab_size,  # structured outputs
                                               ({self.eos_token_id} | self.extra_eos_ids) - {None}, config.kernels)
        self.requests: dict[str, Request] = {}
        self._seq_ids = itertools.count()
        self._arrivals = itertools.count()

    # -- requests ----------------------------------------------------------------------------------

    def add_request(self, request_id: str, prompt: Any, params: SamplingParams, priority: int = 0,
                    cache_salt: str | None = None) -> None:
        """Queue a prompt (text, token ids, or {"prompt_token_ids": [...]}) for generation.

        Raises:
            ValueError: duplicate request id, empty or too-long prompt, or parameters that do not
                fit this model (token ids outside the vocabulary, too many logprobs, ...).
        """
        self.add_built_request(self.build_request(request_id, prompt, params, priority, cache_salt))

    def build_request(self, request_id: str, prompt: Any, params: SamplingParams, priority: int = 0,
                      cache_salt: str | None = None) -> Request:
        """All of `add_request` but the queueing: checks, token ids, bad words, grammar, matchers.

        It reads the tokenizer and the grammar cache and changes no scheduler state, so a caller
        may run it on another thread (building a large grammar's matchers takes seconds) and hand
        the result to `add_built_request` between steps. Raises what `add_request` raises.
        """
        if request_id in self.requests:
            raise ValueError(f"request id {request_id!r} is already in use")
        if priority != 0 and self.scheduler.policy != "priority":
            raise ValueError(f"Got priority {priority} but Priority scheduling is not enabled.")
        text, prompt_ids = self.prompt_ids(prompt, params)
        params.verify(self.vocab_size, self.config.max_logprobs)
        if params.bad_words and params.bad_words_token_ids is None:  # a server may have tokenized them
            if self.tokenizer is None:
                raise ValueError("bad_words need a tokenizer (the engine runs with skip_tokenizer_init)")
            params.bad_words_token_ids = tokenize_bad_words(
                params.bad_words, lambda s: self.tokenizer.encode(s, add_special_tokens=False))
        grammar = self.constrained.grammar_for(params)  # a bad constraint fails here, alone
        request = Request(request_id, text, prompt_ids, params, next(self._arrivals), priority, cache_salt)
        request.stop_token_ids = frozenset(params.stop_token_ids or ()) | (
            frozenset() if params.ignore_eos else self.extra_eos_ids)
        for index in range(1 if params.use_beam_search else params.n):
            seed = None if params.seed is None else params.seed + index
            seq = Sequence(next(self._seq_ids), request, index, make_generator(seed))
            seq.logprobs = [] if params.logprobs is not None else None
            seq.text_state = self.output_processor.new_text_state(seq)
            seq.matcher = None if grammar is None else self.constrained.new_matcher(grammar, params, prompt_ids)
            request.sequences.append(seq)
        return request

    def add_built_request(self, request: Request) -> None:
        """Queue a request from `build_request`. Raises ValueError if its id is in use."""
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        self.requests[request.request_id] = request
        # Sequences 1..n-1 wait for sequence 0's prefill and then copy its cache (see _fork).
        self.scheduler.add(request.sequences[0])

    def abort_request(self, request_ids: str | list[str]) -> None:
        """Stop these requests now and free their KV blocks; unknown ids are ignored."""
        for request_id in [request_ids] if isinstance(request_ids, str) else request_ids:
            request = self.requests.pop(request_id, None)
            for seq in request.sequences if request else ():
                self._finish(seq, seq.finish_reason or "abort")

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    # -- the main loop -----------------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        """Run one batched forward pass and return the outputs of the requests it advanced."""
        plan = self.scheduler.schedule()  # 4. who runs, with how many tokens
        if plan.is_empty():
            return self._fail_unschedulable()
        input_ids, attn = self._model_inputs(plan)  # 5. packed ids, positions, block tables
        hidden = self.model.forward(input_ids, attn, self.kv_cache)  # 6. [N, D]
        sampling = [i for i, item in enumerate(plan.scheduled) if item.completes_prompt]
        last_rows = [attn.query_start_loc[i + 1] - 1 for i in sampling]
        logits = self.model.compute_logits(hidden[self.backend.to_device(np.array(last_rows, dtype=np.int64))])  # [B, V]
        self._prompt_logprobs(plan, hidden, attn)
        self.scheduler.after_step(plan)  # the cache now holds this step's keys and values
        seqs, rows_index = self._sampling_rows(plan, sampling)  # 7. n > 1 siblings join here
        rows = [self._sampling_row(seq) for seq in seqs]
        mask = self.constrained.mask([seq.matcher for seq in seqs])  # 7a. grammar masks; the sampler does 7a-7f
        sampled = self.sampler(logits[self.backend.to_device(np.array(rows_index, dtype=np.int64))], rows,
                               None if mask is None else self.backend.to_device(mask)) if seqs else None
        touched: dict[str, Request] = {}
        for i, seq in enumerate(seqs):  # 8. append, check stops, detokenize
            self._append_token(seq, sampled.token_ids[i], sampled.sampled_logprobs[i], sampled.logprobs[i])
            touched[seq.request.request_id] = seq.request
        return [self._request_output(r) for r in touched.values()]  # 9.

    # -- step helpers ------------------------------------------------------------------------------

    def _model_inputs(self, plan: BatchPlan) -> tuple[Any, AttentionInputs]:
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        starts = [0]
        for item in plan.scheduled:
            seq, first = item.seq, item.seq.num_computed_tokens
            new_positions = range(first, first + item.num_new_tokens)
            tokens = seq.all_token_ids
            ids.extend(tokens[p] for p in new_positions)
            positions.extend(new_positions)
            slots.extend(self.kv_cache.slot(seq.block_table, p) for p in new_positions)
            starts.append(len(ids))
        to_device = self.backend.to_device
        attn = AttentionInputs(
            positions=to_device(np.array(positions, dtype=np.int64)),
            slot_mapping=to_device(np.array(slots, dtype=np.int64)),
            block_tables=tuple(to_device(np.array(s.seq.block_table, dtype=np.int64)) for s in plan.scheduled),
            query_start_loc=tuple(starts),
            context_lens=tuple(s.seq.num_computed_tokens + s.num_new_tokens for s in plan.scheduled),
        )
        if len(plan.scheduled) > 1 and len(ids) == len(plan.scheduled):  # a pure decode batch
            groups = decode_groups([s.seq.block_table for s in plan.scheduled], attn.context_lens, to_device)
            attn = dataclasses.replace(attn, decode_groups=groups)
        return to_device(np.array(ids, dtype=np.int64)), attn

    def _prompt_logprobs(self, plan: BatchPlan, hidden: Any, attn: AttentionInputs) -> None:
        """Prompt logprobs, chunk by chunk: logits at position p score prompt token p + 1."""
        for i, item in enumerate(plan.scheduled):
            seq, request = item.seq, item.seq.request
            num_top = request.params.prompt_logprobs
            prompt_len = len(request.prompt_token_ids)
            if num_top is None or seq.index != 0:
                continue
            if request.prompt_logprobs is None:
                request.prompt_logprobs = [None]  # the first token has no context
            first = seq.num_computed_tokens  # this chunk covers positions first .. first + n - 1
            if first + 1 != len(request.prompt_logprobs):
                continue  # already computed (a recompute after preemption), or out of order
            last = min(first + item.num_new_tokens, prompt_len - 1)  # exclusive end of scored positions
            if last <= first:
                continue
            start = attn.query_start_loc[i]
            logits = self.model.compute_logits(hidden[start:start + last - first])  # [n, V]
            targets = request.prompt_token_ids[first:last + 1]  # the chunk's tokens and the next one
            rows = compute_prompt_logprobs(logits, targets, num_top, self.backend)[1:]
            request.prompt_logprobs += [self._logprobs_dict(seq, r) for r in rows]

    def _sampling_rows(self, plan: BatchPlan, sampling: list[int]) -> tuple[list[Sequence], list[int]]:
        """The sequences that sample this step and the row of `logits` each reads."""
        seqs, rows = [], []
        for row, i in enumerate(sampling):
            seq = plan.scheduled[i].seq
            seqs.append(seq)
            rows.append(row)
            if seq.index == 0 and not seq.output_token_ids:
                for sibling in self._fork(seq):
                    seqs.append(sibling)
                    rows.append(row)  # the same prompt logits: the prefill is shared
        return seqs, rows

    def _fork(self, parent: Sequence) -> list[Sequence]:
        """n > 1: siblings share the parent's full prompt blocks and copy its partial last block.

        Shared blocks are never written again (new tokens go to later blocks), so sharing is
        copy-on-write with nothing left to copy but the one block the sequences will diverge in.
        """
        siblings = [s for s in parent.request.sequences[1:]
                    if s.status is SequenceStatus.WAITING and not s.block_table and not s.output_token_ids
                    and s not in self.scheduler.waiting]
        num_full = parent.num_computed_tokens // self.config.block_size
        shared, partial = parent.block_table[:num_full], parent.block_table[num_full:]
        forked = []
        for sibling in siblings:
            if len(self.scheduler.running) >= self.config.max_num_seqs or \
                    not self.blocks.can_allocate(len(partial)):
                self.scheduler.add(sibling)  # no room now: it prefills on its own later
                continue
            self.blocks.take(shared)
            copies = self.blocks.allocate(len(partial))
            self.kv_cache.copy_blocks(partial, copies)
            sibling.block_table = shared + copies
            sibling.block_hashes = list(parent.block_hashes)
            sibling.num_computed_tokens = parent.num_computed_tokens
            sibling.status = SequenceStatus.RUNNING
            self.scheduler.running.append(sibling)
            forked.append(sibling)
        return forked

    def _sampling_row(self, seq: Sequence) -> SamplingRow:
        return SamplingRow(
            params=seq.request.params,
            prompt_token_ids=seq.prompt_token_ids,
            output_token_ids=seq.output_token_ids,
            generator=seq.generator,
            stop_token_ids=seq.request.stop_token_ids | {self.eos_token_id} - {None},
        )

    def _append_token(self, seq: Sequence, token_id: int, logprob: float, row_logprobs: Any) -> None:
        """Append a sampled token and run the stop checks; a finished sequence frees its blocks."""
        if seq.matcher is not None:  # EOS inside a think block stands for the closing tag
            chosen = self.constrained.output_token(seq.matcher, token_id)
            if chosen != token_id and row_logprobs is not None:
                row_logprobs = dataclasses.replace(row_logprobs, token_ids=[chosen, *row_logprobs.token_ids[1:]])
            token_id = chosen
        seq.output_token_ids.append(token_id)
        if logprob is not None:  # computed for requests with logprobs, as in vLLM
            seq.cumulative_logprob += logprob
        if seq.logprobs is not None and row_logprobs is not None:
            seq.logprobs.append(self._logprobs_dict(seq, row_logprobs))
        self.output_processor.process_token(seq, token_id)
        if seq.matcher is not None and not self.constrained.advance(seq.matcher, token_id) \
                and seq.finish_reason is None:
            seq.finish_reason = "stop"  # the grammar cannot go on: end cleanly
        if seq.finish_reason is not None:
            self._finish(seq, seq.finish_reason)

    def _logprobs_dict(self, seq: Sequence, row: Any) -> LogprobsDict:
        """vLLM's dict: chosen token first, then the top-k; built as vLLM builds it, so a token
        listed twice keeps its first position and takes its top-k entry's value and rank."""
        text = self.output_processor.token_text
        return {token_id: Logprob(logprob, rank, text(seq, token_id))
                for token_id, logprob, rank in zip(row.token_ids, row.logprobs, row.ranks)}

    def _finish(self, seq: Sequence, reason: str) -> None:
        seq.finish_reason = reason
        seq.status = SequenceStatus.FINISHED
        self.scheduler.finish(seq)

    def _fail_unschedulable(self) -> list[RequestOutput]:
        """Nothing fits even in an empty batch: end the blocked sequence rather than spin."""
        seq = self.scheduler.waiting[0] if self.scheduler.waiting else None
        if seq is None or self.scheduler.running:
            return []
        self._finish(seq, "length")  # vLLM reports a prompt the engine cannot hold as "length"
        return [self._request_output(seq.request)]

    def _request_output(self, request: Request) -> RequestOutput:
        outputs = [
            CompletionOutput(index=s.index, text=s.text, token_ids=list(s.output_token_ids),
                             cumulative_logprob=None if s.logprobs is None else s.cumulative_logprob,
                             logprobs=s.logprobs,
                             finish_reason=s.finish_reason, stop_reason=s.stop_reason)
            for s in request.sequences
        ]
        finished = request.is_finished
        if finished:
            self.requests.pop(request.request_id, None)
        return RequestOutput(request.request_id, request.prompt, list(request.prompt_token_ids),
                             request.prompt_logprobs, outputs, finished, request.num_cached_tokens)

    def prompt_ids(self, prompt: Any, params: SamplingParams) -> tuple[str | None, list[int]]:
        """Tokenize and check a prompt (string, ids, or {"prompt_token_ids": ...}) -> (text, ids)."""
        if isinstance(prompt, str) and self.tokenizer is None:
            raise ValueError("text prompts need a tokenizer; pass {'prompt_token_ids': [...]} "
                             "(the engine runs with skip_tokenizer_init)")
        if isinstance(prompt, str):
            text, ids = prompt, self.tokenizer.encode(prompt)
        elif isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            text, ids = prompt.get("prompt"), list(prompt["prompt_token_ids"])
        elif isinstance(prompt, (list, tuple)):
            text, ids = None, list(prompt)
        else:
            raise ValueError("a prompt is a string, a list of token ids, or {'prompt_token_ids': [...]}")
        if params.truncate_prompt_tokens is not None and params.truncate_prompt_tokens < len(ids):
            ids = ids[-params.truncate_prompt_tokens:] if params.truncate_prompt_tokens > 0 else ids
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"prompt token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        if len(ids) >= self.max_model_len:
            raise ValueError(
                f"The prompt has {len(ids)} tokens, but the model's context length is only "
                f"{self.max_model_len} tokens, leaving no room to generate. Please reduce the prompt."
            )
        if self.blocks.blocks_needed(len(ids) + 1) > self.blocks.num_blocks:
            raise ValueError(f"the prompt needs more KV cache blocks than the cache has "
                             f"({self.blocks.num_blocks} blocks of {self.blocks.block_size} tokens)")
        return text, ids
