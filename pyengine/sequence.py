"""Per-request and per-sequence state: token ids, KV blocks, sampling and text state.

A request (one prompt, its SamplingParams) owns `n` sequences, one per choice, each with its own
output tokens, KV blocks and random generator. The scheduler sees only sequences.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from pyengine.outputs import LogprobsDict
from pyengine.sampling import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # not in the cache yet (new, or preempted and to be recomputed)
    RUNNING = "running"  # its KV is in the cache; decodes one token per step
    FINISHED = "finished"


@dataclasses.dataclass(eq=False)
class Sequence:
    """One choice of one request: the unit the scheduler batches."""

    seq_id: int
    request: "Request"
    index: int  # choice index 0..n-1
    generator: Any  # per-sequence seeded generator, or None (engine generator)
    output_token_ids: list[int] = dataclasses.field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    block_table: list[int] = dataclasses.field(default_factory=list)
    block_hashes: list[bytes] = dataclasses.field(default_factory=list)  # of its full blocks
    num_computed_tokens: int = 0  # tokens whose keys/values are in the cache
    cumulative_logprob: float = 0.0
    logprobs: list[LogprobsDict] | None = None
    text: str = ""  # text emitted so far (stop strings already cut)
    num_sent_tokens: int = 0  # RequestOutputKind.DELTA: token ids (and logprobs) already in an output
    num_sent_chars: int = 0  # ... and characters of `text`
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    text_state: Any = None  # its SequenceText (detokenizer, stop strings), None without a tokenizer
    repetition: Any = None  # its RepetitionDetector, when repetition_detection asks for one
    matcher: Any = None  # structured outputs: this sequence's grammar matcher (pyengine.constrained)

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.request.prompt_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.request.prompt_token_ids) + len(self.output_token_ids)

    @property
    def all_token_ids(self) -> list[int]:
        return self.request.prompt_token_ids + self.output_token_ids

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED


@dataclasses.dataclass(eq=False)
class Request:
    """What the user asked for: one prompt, its parameters, and its sequences."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_index: int
    priority: int = 0
    cache_salt: str | None = None
    sequences: list[Sequence] = dataclasses.field(default_factory=list)
    prompt_logprobs: list[LogprobsDict | None] | None = None
    num_outputs: int = 0  # RequestOutputs made so far (DELTA sends prompt logprobs in the first only)
    num_cached_tokens: int = 0
    # Set by the engine from the parameters, so the scheduler and sampler need not read them:
    stop_token_ids: frozenset[int] = frozenset()  # stop_token_ids plus the model's extra eos ids (unless ignore_eos)
    needs_prompt_logprobs: bool = False  # every prompt position computed (no prefix-cache hit)
    bad_words_token_ids: list[list[int]] = dataclasses.field(default_factory=list)  # bad_words, tokenized

    @property
    def is_finished(self) -> bool:
        return all(seq.is_finished for seq in self.sequences)
