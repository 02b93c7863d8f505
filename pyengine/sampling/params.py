"""SamplingParams: how to pick each next token and when to stop, with vLLM's names and rules.

Every field has vLLM's name, default and valid range. An invalid value
raises `ValueError` with a message that names the field and its range, worded as vLLM words it;
the server turns these into HTTP 400s. Checks that need the model (token ids inside the
vocabulary, the logprobs cap) live in `SamplingParams.verify`, which the engine calls when a
request arrives. `tokenize_bad_words` turns `bad_words` into token sequences; the engine
calls it with the tokenizer's `encode` and keeps the result on its request, never on the params
(one SamplingParams may serve many requests, and the engine only reads it).

vLLM's API keeps two "-1 means all/off" values (`top_k=-1`, `logprobs=-1`); `top_k=-1` is
normalised to 0 here and `seed=-1` to None, so code past this file sees one spelling of "off".
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
from typing import Any, Callable

MIN_TEMPERATURE = 0.01  # vLLM raises 0 < T < 0.01 to this, so only T == 0 is greedy
GREEDY_EPSILON = 1e-5  # vLLM's _SAMPLING_EPS: temperature below this is greedy
MAX_N = 16384  # vLLM's VLLM_MAX_N_SEQUENCES default
MAX_LOGIT_BIAS = 100.0  # bias values are clamped to [-100, 100]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class RequestOutputKind(enum.Enum):
    """What each RequestOutput of a request carries (vLLM's names).

    CUMULATIVE: everything so far (text, token ids, logprobs), every step.
    DELTA: only what this step added (prompt logprobs in the first output only): a streaming
        client appends each output to the last, and no step copies a whole output.
    FINAL_ONLY: one output, when the request finishes.
    """

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclasses.dataclass
class RepetitionDetectionParams:
    """End a sequence whose output ends with `min_count` copies of one block of tokens."""

    max_pattern_size: int = 0  # 0 disables detection
    min_pattern_size: int = 0  # 0 means 1
    min_count: int = 0

    def __post_init__(self) -> None:
        for name in ("max_pattern_size", "min_pattern_size", "min_count"):
            _check(_is_int(getattr(self, name)), f"repetition_detection.{name} must be an integer, "
                                                 f"got {getattr(self, name)!r}.")
        _check(self.max_pattern_size >= 0 and self.min_pattern_size >= 0
               and self.min_pattern_size <= self.max_pattern_size,
               "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size. "
               "Set both to 0 to disable repetitive pattern detection.")
        _check(self.max_pattern_size == 0 or self.min_count >= 2,
               "min_count must be >= 2 to detect repetitive patterns in engine output. If you do not "
               "wish to detect repetitive patterns, set max_pattern_size to 0.")


@dataclasses.dataclass
class StructuredOutputsParams:
    """A constraint on the whole output (vLLM's `StructuredOutputsParams`; pyengine.structured compiles it).

    Exactly one of `json` (a JSON Schema, dict or text), `regex`, `choice`, `grammar` (GBNF),
    `json_object` (True), `structural_tag` (JSON text) or `tool_calls` must be set. `tool_calls`
    is pyengine's own: the server's forced tool calls, `(((name, parameters schema), ...),
    min_calls, max_calls)`. The switches shape JSON output: `disable_any_whitespace` (compact
    separators), `whitespace_pattern` (a regex for whitespace), `disable_additional_properties`
    (None, the default, or True: an object schema with `properties` that says nothing about
    `additionalProperties` takes only its declared keys; False: plain JSON Schema semantics),
    `unsound_one_of` (pyengine's own: a `oneOf` whose branches are not proven disjoint is read as
    `anyOf` instead of refused, so a document valid under two branches may be generated).
    `disable_fallback` is accepted for vLLM's
    sake and means nothing here (there is one grammar engine). `reasoning_tags`, pyengine's own
    and set by the server when it parses reasoning: ("<think>", "</think>"); the whole output is
    then an optional think block followed by the constraint (pyengine.constrained). `compiled` is
    the grammar `Engine.compile_structured_outputs` made of it, kept for the engine to use.
    """

    json: Any = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    structural_tag: str | None = None
    tool_calls: Any = None
    disable_fallback: bool = False
    disable_any_whitespace: bool = False
    disable_additional_properties: bool | None = None
    whitespace_pattern: str | None = None
    unsound_one_of: bool = False
    reasoning_tags: tuple[str, str] | None = None
    compiled: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    KINDS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag", "tool_calls")

    def __post_init__(self) -> None:
        if self.json_object is False:
            self.json_object = None
        given = [k for k in self.KINDS if getattr(self, k) is not None]
        _check(len(given) == 1, "You must use one kind of structured outputs constraint "
                                f"but none are specified: {list(self.KINDS)}" if not given else
               f"You can only use one kind of structured outputs constraint but multiple are specified: {given}")
        _check(self.whitespace_pattern is None or isinstance(self.whitespace_pattern, str),
               "whitespace_pattern must be a string")

    @property
    def kind(self) -> str:
        """Which constraint this is (one of KINDS)."""
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)


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
    # tokenize_bad_words); None: the engine tokenizes them for the request. The engine never sets it.
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

    # -- construction ------------------------------------------------------------------------------

    def _normalise(self) -> None:
        """vLLM's spellings of the same request, reduced to one."""
        for name in ("stop", "stop_token_ids", "bad_words", "allowed_token_ids"):
            value = getattr(self, name)
            _check(value is None or isinstance(value, (list, tuple)) or (name == "stop" and isinstance(value, str)),
                   f"{name} must be a list, got {type(value).__name__}.")
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        self.stop_token_ids = list(dict.fromkeys(self.stop_token_ids or []))
        self.bad_words = list(dict.fromkeys(self.bad_words or []))
        if isinstance(self.repetition_detection, dict):
            fields = {f.name for f in dataclasses.fields(RepetitionDetectionParams)}
            unknown = sorted(set(self.repetition_detection) - fields)
            _check(not unknown, f"repetition_detection has unknown field(s) {unknown}; valid: {sorted(fields)}")
            self.repetition_detection = RepetitionDetectionParams(**self.repetition_detection)
        if isinstance(self.structured_outputs, dict):
            self.structured_outputs = StructuredOutputsParams(**self.structured_outputs)
        if self.seed == -1:
            self.seed = None
        if _is_int(self.top_k) and self.top_k == -1:
            self.top_k = 0
        for name in ("logprobs", "prompt_logprobs"):
            if getattr(self, name) is True:  # vLLM accepts logprobs=True as 1
                setattr(self, name, 1)
        if self.logit_bias is not None:  # JSON keys arrive as strings; values are clamped
            self.logit_bias = _normalise_logit_bias(self.logit_bias)
        if _is_number(self.temperature) and 0 < self.temperature < MIN_TEMPERATURE:
            self.temperature = MIN_TEMPERATURE

    def _validate(self) -> None:
        """Ranges and types that need no model; each failure names the field and its range."""
        _check(_is_int(self.n), f"n must be an int, but is of type {type(self.n)}")
        _check(self.n >= 1, f"n must be at least 1, got {self.n}.")
        _check(self.n <= MAX_N, f"n must be at most {MAX_N}, got {self.n}.")
        _check(_is_number(self.temperature) and math.isfinite(self.temperature),
               f"temperature must be a finite number, got {self.temperature}.")
        _check(self.temperature >= 0, f"temperature must be non-negative, got {self.temperature}.")
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}.")
        _check(_is_int(self.top_k), f"top_k must be an integer, got {type(self.top_k).__name__}")
        _check(self.top_k >= 0, f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")
        _check(_is_number(self.min_p) and 0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}.")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _check(_is_number(value) and -2 <= value <= 2, f"{name} must be in [-2, 2], got {value}.")
        _check(_is_number(self.repetition_penalty) and math.isfinite(self.repetition_penalty),
               f"repetition_penalty must be a finite number, got {self.repetition_penalty}.")
        _check(self.repetition_penalty > 0,
               f"repetition_penalty must be greater than zero, got {self.repetition_penalty}.")
        self._validate_lengths()
        self._validate_token_lists()
        self._validate_logprobs()
        if not self.use_beam_search:  # with beam search, n is the beam width
            _check(not (self.greedy and self.n > 1), f"n must be 1 when using greedy sampling, got {self.n}.")
        _check(_is_number(self.length_penalty) and math.isfinite(self.length_penalty),
               f"length_penalty must be a finite number, got {self.length_penalty}.")
        _check(self.repetition_detection is None or isinstance(self.repetition_detection, RepetitionDetectionParams),
               "repetition_detection must be a RepetitionDetectionParams or a dict of its fields.")
        _check(self.structured_outputs is None or isinstance(self.structured_outputs, StructuredOutputsParams),
               "structured_outputs must be a StructuredOutputsParams or a dict of its fields.")
        _check(not (self.use_beam_search and self.structured_outputs is not None),
               "structured outputs cannot be combined with beam search (each beam step is a fresh "
               "one-token request, so no grammar state carries from step to step).")

    def _validate_lengths(self) -> None:
        _check(self.max_tokens is None or _is_int(self.max_tokens),
               f"max_tokens must be an integer, got {self.max_tokens!r}.")
        _check(self.max_tokens is None or self.max_tokens >= 1,
               f"max_tokens must be at least 1, got {self.max_tokens}.")
        _check(_is_int(self.min_tokens), f"min_tokens must be an integer, got {self.min_tokens!r}.")
        _check(self.min_tokens >= 0, f"min_tokens must be greater than or equal to 0, got {self.min_tokens}.")
        _check(self.max_tokens is None or self.min_tokens <= self.max_tokens,
               f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, got {self.min_tokens}.")
        _check(self.seed is None or (_is_int(self.seed) and INT64_MIN <= self.seed <= INT64_MAX),
               f"seed must be an integer in [{INT64_MIN}, {INT64_MAX}] or None, got {self.seed!r}.")
        truncate = self.truncate_prompt_tokens
        _check(truncate is None or (_is_int(truncate) and (truncate >= 1 or truncate == -1)),
               f"truncate_prompt_tokens must be an integer >= 1 or -1, got {truncate}")

    def _validate_token_lists(self) -> None:
        _check(all(isinstance(s, str) for s in self.stop), f"stop must be a string or a list of strings, "
                                                          f"got {self.stop!r}.")
        _check(all(self.stop), "stop cannot contain an empty string.")
        _check(all(_is_int(t) for t in self.stop_token_ids),
               f"stop_token_ids must contain only integers, got {self.stop_token_ids}.")
        _check(all(isinstance(w, str) for w in self.bad_words), f"bad_words must be strings, got {self.bad_words!r}.")
        _check(all(self.bad_words), f"bad_words cannot contain an empty string. Got bad_words={self.bad_words}")
        if self.allowed_token_ids is not None:
            _check(len(self.allowed_token_ids) > 0, "allowed_token_ids is not None and empty!")
            _check(all(_is_int(t) for t in self.allowed_token_ids),
                   f"allowed_token_ids must contain only integers, got {self.allowed_token_ids}.")

    def _validate_logprobs(self) -> None:
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            _check(value is None or (_is_int(value) and value >= -1),
                   f"{name} must be non-negative or -1, got {value}.")

    # -- checks that need the model ----------------------------------------------------------------

    def verify(self, vocab_size: int, max_logprobs: int = 20) -> None:
        """Checks against the model: token ids in [0, vocab_size) and the logprobs cap.

        `max_logprobs` is the server's `--max-logprobs` (vLLM's default 20; -1: the vocabulary).
        """
        lists = (("logit_bias", list(self.logit_bias or {})), ("allowed_token_ids", self.allowed_token_ids or []),
                 ("stop_token_ids", self.stop_token_ids))
        for name, ids in lists:
            bad = [i for i in ids if not 0 <= i < vocab_size]
            _check(not bad, f"token_id(s) {bad} in {name} contain out-of-vocab token ids. "
                            f"Vocabulary size: {vocab_size}")
        bad_words = [t for word in self.bad_words_token_ids or () for t in word if not 0 <= t < vocab_size]
        _check(not bad_words, f"The model vocabulary size is {vocab_size}, but the following tokens were "
                              f"specified as bad: {bad_words}. All token id values should be integers "
                              f"satisfying: 0 <= token_id <= {vocab_size - 1}.")
        cap = vocab_size if max_logprobs == -1 else max_logprobs
        for name, kind in (("logprobs", "sample"), ("prompt_logprobs", "prompt")):
            requested = getattr(self, name)
            requested = vocab_size if requested == -1 else requested
            _check(not requested or requested <= cap,
                   f"Requested {kind} logprobs of {requested}, which is greater than max allowed: {cap}")


def tokenize_bad_words(bad_words: list[str], encode: Callable[[str], list[int]],
                       vocab_size: int | None = None) -> list[list[int]]:
    """Token sequences to ban, as vLLM builds them.

    Each word is encoded (no special tokens) bare, `word.lstrip()`, and with one leading space.
    The spaced variant is kept only when it has as many tokens as the bare one and a different
    first token (otherwise it is the same word, tokenized the same way). A word whose bare form
    encodes to nothing is an error; `vocab_size`, when given, bounds every token id.
    """
    sequences: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()  # de-duplication in linear time, first occurrence kept
    for word in bad_words:
        bare = list(encode(word.lstrip()))
        _check(bool(bare), "bad_words entries must tokenize to at least one token.")
        spaced = list(encode(" " + word.lstrip()))
        for ids in [bare] + ([spaced] if len(spaced) == len(bare) and spaced[0] != bare[0] else []):
            if tuple(ids) not in seen:
                seen.add(tuple(ids))
                sequences.append(ids)
    if vocab_size is not None:
        bad = [t for ids in sequences for t in ids if not 0 <= t < vocab_size]
        _check(not bad, f"The model vocabulary size is {vocab_size}, but the following tokens were specified "
                        f"as bad: {bad}. All token id values should be integers satisfying: "
                        f"0 <= token_id <= {vocab_size - 1}.")
    return sequences


def _normalise_logit_bias(logit_bias: dict[Any, Any]) -> dict[int, float]:
    """String or int keys -> int token ids; values clamped to [-100, 100] (vLLM's from_optional)."""
    bias: dict[int, float] = {}
    invalid = []
    for key, value in logit_bias.items():
        try:
            token_id = int(key)
        except (TypeError, ValueError):
            invalid.append(key)
            continue
        _check(_is_number(value) and not math.isnan(value),
               f"logit_bias values must be numbers in [-100, 100], got {value!r} for token {token_id}.")
        bias[token_id] = min(MAX_LOGIT_BIAS, max(-MAX_LOGIT_BIAS, float(value)))
    _check(not invalid, f"logit_bias contains key(s) that cannot be converted to integer token IDs: {invalid!r}")
    return bias


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
