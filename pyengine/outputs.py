"""What generation returns, with vLLM's names: RequestOutput, CompletionOutput, Logprob.

`logprobs` holds one dict per generated token, token id -> Logprob (the chosen token first, then the
top-k); `prompt_logprobs` holds `None` for the first prompt token (no context), then one per position.
"""

from __future__ import annotations

import dataclasses

LogprobsDict = dict[int, "Logprob"]


@dataclasses.dataclass
class Logprob:
    """One token's log probability, its 1-based rank in the vocabulary, and its text."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclasses.dataclass
class CompletionOutput:
    """One generated sequence (a "choice") of a request."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[LogprobsDict] | None
    finish_reason: str | None = None  # "stop", "length", "repetition", "abort"
    stop_reason: int | str | None = None  # stop token id or stop string

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclasses.dataclass
class RequestOutput:
    """The state of one request: its prompt and its `n` completions so far."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[LogprobsDict | None] | None
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int = 0
