"""SamplingParams: how to pick each next token and when to stop, with vLLM's names and rules.

Every field has vLLM's name, default and valid range (api-semantics.md §3-§6); an invalid
value raises `ValueError` with a message naming the field and its range, which the server
turns into an HTTP 400. Checks that need the model (token ids inside the vocabulary, the
logprobs cap) run in `verify`, which the engine calls when a request arrives.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

MIN_TEMPERATURE = 0.01  # vLLM raises 0 < T < 0.01 to this, so only T == 0 is greedy
GREEDY_EPSILON = 1e-5


@dataclasses.dataclass
class RepetitionDetectionParams:
    """End a sequence whose output ends with `min_count` copies of a block of tokens (§4.8)."""

    max_pattern_size: int = 0  # 0 disables detection
    min_pattern_size: int = 0  # 0 means 1
    min_count: int = 0

    def __post_init__(self) -> None:
        if self.max_pattern_size < 0 or self.min_pattern_size < 0:
            raise ValueError("repetition_detection: max_pattern_size and min_pattern_size must be >= 0")
        if self.min_pattern_size > self.max_pattern_size:
            raise ValueError(f"repetition_detection: min_pattern_size ({self.min_pattern_size}) must be "
                             f"<= max_pattern_size ({self.max_pattern_size})")
        if self.max_pattern_size > 0 and self.min_count < 2:
            raise ValueError(f"repetition_detection: min_count must be >= 2, got {self.min_count}")


@dataclasses.dataclass
class SamplingParams:
    """Sampling and stopping parameters of one request (vLLM's `SamplingParams`)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1: off
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    min_tokens: int = 0
    max_tokens: int | None = 16  # None: until the context is full
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    seed: int | None = None
    logprobs: int | None = None  # top logprobs per generated token; -1: the whole vocabulary
    prompt_logprobs: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None
    repetition_detection: RepetitionDetectionParams | None = None
    use_beam_search: bool = False
    length_penalty: float = 1.0
    # filled by the engine from `bad_words` with the model's tokenizer (tokenize_bad_words)
    bad_words_token_ids: list[list[int]] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(dict.fromkeys(self.stop_token_ids or []))
        if isinstance(self.repetition_detection, dict):
            self.repetition_detection = RepetitionDetectionParams(**self.repetition_detection)
        if self.seed == -1:
            self.seed = None
        if self.top_k == -1:
            self.top_k = 0
        if self.logit_bias is not None:  # keys may arrive as JSON strings; values are clamped
            self.logit_bias = {_int_key(k): max(-100.0, min(100.0, float(v))) for k, v in self.logit_bias.items()}
        if 0 < self.temperature < MIN_TEMPERATURE:
            self.temperature = MIN_TEMPERATURE
        self._validate()
        if self.greedy:  # greedy ignores the truncation knobs (vLLM forces them neutral)
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_EPSILON and not self.use_beam_search

    def _validate(self) -> None:
        _check(isinstance(self.n, int) and self.n >= 1, f"n must be at least 1, got {self.n}.")
        _check(math.isfinite(self.temperature) and self.temperature >= 0,
               f"temperature must be non-negative, got {self.temperature}.")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}.")
        _check(isinstance(self.top_k, int) and self.top_k >= 0,
               f"top_k must be 0 (disable), -1 (disable) or at least 1, got {self.top_k}.")
        _check(0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}.")
        _check(-2 <= self.presence_penalty <= 2,
               f"presence_penalty must be in [-2, 2], got {self.presence_penalty}.")
        _check(-2 <= self.frequency_penalty <= 2,
               f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}.")
        _check(math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0,
               f"repetition_penalty must be greater than zero, got {self.repetition_penalty}.")
        _check(self.max_tokens is None or self.max_tokens >= 1,
               f"max_tokens must be at least 1, got {self.max_tokens}.")
        _check(self.min_tokens >= 0, f"min_tokens must be greater than or equal to 0, got {self.min_tokens}.")
        _check(self.max_tokens is None or self.min_tokens <= self.max_tokens,
               f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, got {self.min_tokens}.")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty strings.")
        _check(all(isinstance(t, int) for t in self.stop_token_ids), "stop_token_ids must be integers.")
        _check(self.logprobs is None or self.logprobs >= -1, f"logprobs must be non-negative or -1, got {self.logprobs}.")
        _check(self.prompt_logprobs is None or self.prompt_logprobs >= -1,
               f"prompt_logprobs must be non-negative or -1, got {self.prompt_logprobs}.")
        _check(self.truncate_prompt_tokens is None or self.truncate_prompt_tokens >= -1,
               f"truncate_prompt_tokens must be >= -1, got {self.truncate_prompt_tokens}.")
        _check(self.truncate_prompt_tokens != 0, "truncate_prompt_tokens=0 would leave an empty prompt.")
        _check(self.allowed_token_ids is None or len(self.allowed_token_ids) > 0,
               "allowed_token_ids must not be empty.")
        _check(self.bad_words is None or all(isinstance(w, str) and w.strip() for w in self.bad_words),
               "bad_words must be non-empty strings.")
        _check(not (self.greedy and self.n > 1), f"n must be 1 when using greedy sampling, got {self.n}.")
        _check(math.isfinite(self.length_penalty), "length_penalty must be finite.")

    def verify(self, vocab_size: int, max_logprobs: int = 20) -> None:
        """Checks that need the model: token ids in [0, vocab_size) and the logprobs cap."""
        for name, ids in (("logit_bias", list(self.logit_bias or {})),
                          ("allowed_token_ids", self.allowed_token_ids or []),
                          ("stop_token_ids", self.stop_token_ids)):
            bad = [i for i in ids if not 0 <= i < vocab_size]
            _check(not bad, f"token_id(s) {bad} in {name} contain out-of-vocab token ids "
                            f"(vocabulary size {vocab_size}).")
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            requested = vocab_size if value == -1 else value
            if requested is not None and max_logprobs != -1:
                kind = "sample" if name == "logprobs" else "prompt"
                _check(requested <= max_logprobs,
                       f"Requested {kind} logprobs of {requested}, which is greater than max allowed: {max_logprobs}")

    def num_top_logprobs(self, vocab_size: int) -> int | None:
        return vocab_size if self.logprobs == -1 else self.logprobs


def tokenize_bad_words(bad_words: list[str], encode: Callable[[str], list[int]]) -> list[list[int]]:
    """Token sequences to ban, as vLLM builds them (§3.9): each word bare and with a leading space.

    The space-prefixed variant is kept only when it has as many tokens as the bare one and a
    different first token (otherwise it is the same word, tokenized the same way).
    """
    sequences: list[list[int]] = []
    for word in bad_words:
        bare = encode(word.lstrip())
        if not bare:
            raise ValueError(f"bad word {word!r} tokenizes to nothing")
        variants = [bare]
        spaced = encode(" " + word.lstrip())
        if len(spaced) == len(bare) and spaced[0] != bare[0]:
            variants.append(spaced)
        for ids in variants:
            if ids not in sequences:
                sequences.append(ids)
    return sequences


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _int_key(key: object) -> int:
    try:
        return int(key)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"logit_bias keys must be token ids, got {key!r}") from None
