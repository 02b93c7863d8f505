"""SamplingParams: how to pick each next token and when to stop, with vLLM's names, defaults and rules.

An invalid value raises `ValueError` worded as vLLM words it (the server answers 400). Checks that
need the model live in `verify`, which the engine calls when a request arrives; the fields of the
logits processors and of the nested parameter objects are checked by their own modules (processors.py,
nested_params.py), loaded with the first request that sets one. vLLM's "-1 means off" (`top_k`,
`seed`) is normalised here, so code past this file sees one spelling of "off".
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyengine.sampling.nested_params import RepetitionDetectionParams, StructuredOutputsParams

MIN_TEMPERATURE = 0.01  # vLLM raises 0 < T < 0.01 to this, so only T == 0 is greedy
GREEDY_EPSILON = 1e-5  # vLLM's _SAMPLING_EPS: temperature below this is greedy
MAX_N = 16384  # vLLM's VLLM_MAX_N_SEQUENCES default
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class RequestOutputKind(enum.Enum):
    """What each RequestOutput of a request carries (vLLM's names): CUMULATIVE everything so far, every
    step; DELTA only what this step added (prompt logprobs in the first output), for a streaming client
    that appends each output to the last; FINAL_ONLY one output, when the request finishes."""

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclasses.dataclass
class SamplingParams:
    """Sampling and stopping parameters of one request (vLLM's `SamplingParams`)."""

    n: int = 1  # independent samples of the prompt; with use_beam_search, the beam width
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0  # (0, 1]; 1: off
    top_k: int = 0  # 0 (or -1): off
    min_p: float = 0.0  # [0, 1]; 0: off
    presence_penalty: float = 0.0  # [-2, 2]
    frequency_penalty: float = 0.0  # [-2, 2]
    repetition_penalty: float = 1.0  # > 0; 1: off
    logit_bias: dict[int, float] | None = None  # token id -> bias, clamped to [-100, 100]
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    min_tokens: int = 0
    max_tokens: int | None = 16  # None: until the context is full
    stop: str | list[str] | None = None  # normalised to a list
    stop_token_ids: list[int] | None = None  # normalised to a list without duplicates
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    seed: int | None = None
    logprobs: int | None = None  # top logprobs per generated token; -1: the whole vocabulary
    prompt_logprobs: int | None = None  # the same for each prompt token
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None  # keep the last N prompt tokens; -1: as many as fit
    repetition_detection: RepetitionDetectionParams | None = None
    use_beam_search: bool = False
    length_penalty: float = 1.0  # beam search: score = cum_logprob / length ** length_penalty
    structured_outputs: StructuredOutputsParams | None = None  # a grammar the whole output must match
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE  # what each step's RequestOutput carries
    # `bad_words` already tokenized by the caller (a server does it off the engine thread, with
    # tokenize_bad_words); None: the engine tokenizes them for the request (never into these params).
    bad_words_token_ids: list[list[int]] | None = None

    def __post_init__(self) -> None:
        self._normalise()
        self._validate()
        if self.greedy:  # greedy ignores the truncation knobs; vLLM forces them neutral
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0

    @property
    def greedy(self) -> bool:
        """Argmax decoding: temperature 0 (after vLLM's clamp, only exactly 0 qualifies)."""
        return self.temperature < GREEDY_EPSILON

    def num_top_logprobs(self, vocab_size: int) -> int | None:
        """How many top logprobs each generated token reports (`logprobs=-1`: the vocabulary)."""
        return vocab_size if self.logprobs == -1 else self.logprobs

    @property
    def uses_processors(self) -> bool:
        """Whether a logits processor (processors.py) acts on this request: bans, bias, min_tokens, penalties."""
        return (self.allowed_token_ids is not None or bool(self.bad_words) or self.bad_words_token_ids is not None
                or self.logit_bias is not None or self.min_tokens != 0 or self.repetition_penalty != 1.0
                or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0)

    # -- construction ------------------------------------------------------------------------------
    def _normalise(self) -> None:
        """vLLM's spellings of the same request, reduced to one."""
        for name in ("stop", "stop_token_ids", "bad_words", "allowed_token_ids"):
            value = getattr(self, name)
            check(value is None or isinstance(value, (list, tuple)) or (name == "stop" and isinstance(value, str)),
                  f"{name} must be a list, got {type(value).__name__}.")
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        self.stop_token_ids = list(dict.fromkeys(self.stop_token_ids or []))
        self.bad_words = list(dict.fromkeys(self.bad_words or []))
        if self._nests_params:
            from pyengine.sampling.nested_params import make_nested  # noqa: PLC0415  (loaded by the first one)
            make_nested(self)
        if self.seed == -1:
            self.seed = None
        if is_int(self.top_k) and self.top_k == -1:
            self.top_k = 0
        for name in ("logprobs", "prompt_logprobs"):
            if getattr(self, name) is True:  # vLLM accepts logprobs=True as 1
                setattr(self, name, 1)
        if is_number(self.temperature) and 0 < self.temperature < MIN_TEMPERATURE:
            self.temperature = MIN_TEMPERATURE

    def _validate(self) -> None:
        """Ranges and types that need no model; each failure names the field and its range."""
        check(is_int(self.n), f"n must be an int, but is of type {type(self.n)}")
        check(self.n >= 1, f"n must be at least 1, got {self.n}.")
        check(self.n <= MAX_N, f"n must be at most {MAX_N}, got {self.n}.")
        check(is_number(self.temperature) and math.isfinite(self.temperature),
              f"temperature must be a finite number, got {self.temperature}.")
        check(self.temperature >= 0, f"temperature must be non-negative, got {self.temperature}.")
        check(is_number(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}.")
        check(is_int(self.top_k), f"top_k must be an integer, got {type(self.top_k).__name__}")
        check(self.top_k >= 0, f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")
        check(is_number(self.min_p) and 0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}.")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            check(is_number(value) and -2 <= value <= 2, f"{name} must be in [-2, 2], got {value}.")
        check(is_number(self.repetition_penalty) and math.isfinite(self.repetition_penalty),
              f"repetition_penalty must be a finite number, got {self.repetition_penalty}.")
        check(self.repetition_penalty > 0,
              f"repetition_penalty must be greater than zero, got {self.repetition_penalty}.")
        self._validate_lengths()
        if self.uses_processors:  # their fields are checked where they are used
            from pyengine.sampling.processors import check_processor_params  # noqa: PLC0415
            check_processor_params(self)
        check(all(isinstance(s, str) for s in self.stop),
              f"stop must be a string or a list of strings, got {self.stop!r}.")
        check(all(self.stop), "stop cannot contain an empty string.")
        check(all(is_int(t) for t in self.stop_token_ids),
              f"stop_token_ids must contain only integers, got {self.stop_token_ids}.")
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            check(value is None or (is_int(value) and value >= -1), f"{name} must be non-negative or -1, got {value}.")
        if not self.use_beam_search:  # with beam search, n is the beam width
            check(not (self.greedy and self.n > 1), f"n must be 1 when using greedy sampling, got {self.n}.")
        check(is_number(self.length_penalty) and math.isfinite(self.length_penalty),
              f"length_penalty must be a finite number, got {self.length_penalty}.")
        if self._nests_params:
            from pyengine.sampling.nested_params import check_nested  # noqa: PLC0415
            check_nested(self)

    @property
    def _nests_params(self) -> bool:
        return self.repetition_detection is not None or self.structured_outputs is not None

    def _validate_lengths(self) -> None:
        check(self.max_tokens is None or is_int(self.max_tokens),
              f"max_tokens must be an integer, got {self.max_tokens!r}.")
        check(self.max_tokens is None or self.max_tokens >= 1, f"max_tokens must be at least 1, got {self.max_tokens}.")
        check(is_int(self.min_tokens), f"min_tokens must be an integer, got {self.min_tokens!r}.")
        check(self.min_tokens >= 0, f"min_tokens must be greater than or equal to 0, got {self.min_tokens}.")
        check(self.max_tokens is None or self.min_tokens <= self.max_tokens,
              f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, got {self.min_tokens}.")
        check(self.seed is None or (is_int(self.seed) and INT64_MIN <= self.seed <= INT64_MAX),
              f"seed must be an integer in [{INT64_MIN}, {INT64_MAX}] or None, got {self.seed!r}.")
        truncate = self.truncate_prompt_tokens
        check(truncate is None or (is_int(truncate) and (truncate >= 1 or truncate == -1)),
              f"truncate_prompt_tokens must be an integer >= 1 or -1, got {truncate}")

    # -- checks that need the model ----------------------------------------------------------------
    def verify(self, vocab_size: int, max_logprobs: int = 20) -> None:
        """Checks against the model: token ids in [0, vocab_size) and the logprobs cap, `max_logprobs` (the
        server's `--max-logprobs`, vLLM's default 20; -1: the vocabulary)."""
        if self.uses_processors:
            from pyengine.sampling.processors import verify_processor_params  # noqa: PLC0415
            verify_processor_params(self, vocab_size)
        check_in_vocabulary("stop_token_ids", self.stop_token_ids, vocab_size)
        cap = vocab_size if max_logprobs == -1 else max_logprobs
        for name, kind in (("logprobs", "sample"), ("prompt_logprobs", "prompt")):
            requested = getattr(self, name)
            requested = vocab_size if requested == -1 else requested
            check(not requested or requested <= cap,
                  f"Requested {kind} logprobs of {requested}, which is greater than max allowed: {cap}")


def is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_in_vocabulary(name: str, ids: list[int], vocab_size: int) -> None:
    bad = [i for i in ids if not 0 <= i < vocab_size]
    check(not bad, f"token_id(s) {bad} in {name} contain out-of-vocab token ids. Vocabulary size: {vocab_size}")
