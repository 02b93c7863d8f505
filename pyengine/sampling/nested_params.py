"""The parameter objects a SamplingParams may nest: StructuredOutputsParams, RepetitionDetectionParams.

Loaded with the first request that carries one (`SamplingParams` accepts either as an object or
as a dict of its fields); `check_nested` is that request's share of `SamplingParams`'s checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyengine.sampling.params import check, is_int


@dataclasses.dataclass
class RepetitionDetectionParams:
    """End a sequence whose output ends with `min_count` copies of one block of tokens."""

    max_pattern_size: int = 0  # 0 disables detection
    min_pattern_size: int = 0  # 0 means 1
    min_count: int = 0

    def __post_init__(self) -> None:
        for name in ("max_pattern_size", "min_pattern_size", "min_count"):
            check(is_int(getattr(self, name)), f"repetition_detection.{name} must be an integer, "
                                                f"got {getattr(self, name)!r}.")
        check(self.max_pattern_size >= 0 and self.min_pattern_size >= 0
              and self.min_pattern_size <= self.max_pattern_size,
              "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size. "
              "Set both to 0 to disable repetitive pattern detection.")
        check(self.max_pattern_size == 0 or self.min_count >= 2,
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
        check(len(given) == 1, "You must use one kind of structured outputs constraint "
                               f"but none are specified: {list(self.KINDS)}" if not given else
              f"You can only use one kind of structured outputs constraint but multiple are specified: {given}")
        check(self.whitespace_pattern is None or isinstance(self.whitespace_pattern, str),
              "whitespace_pattern must be a string")

    @property
    def kind(self) -> str:
        """Which constraint this is (one of KINDS)."""
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)


def make_nested(params: Any) -> None:
    """`repetition_detection` and `structured_outputs` given as dicts of fields -> their objects."""
    if isinstance(params.repetition_detection, dict):
        fields = {f.name for f in dataclasses.fields(RepetitionDetectionParams)}
        unknown = sorted(set(params.repetition_detection) - fields)
        check(not unknown, f"repetition_detection has unknown field(s) {unknown}; valid: {sorted(fields)}")
        params.repetition_detection = RepetitionDetectionParams(**params.repetition_detection)
    if isinstance(params.structured_outputs, dict):
        params.structured_outputs = StructuredOutputsParams(**params.structured_outputs)


def check_nested(params: Any) -> None:
    """The nested objects' types, and structured outputs' one incompatibility (beam search)."""
    check(params.repetition_detection is None or isinstance(params.repetition_detection, RepetitionDetectionParams),
          "repetition_detection must be a RepetitionDetectionParams or a dict of its fields.")
    check(params.structured_outputs is None or isinstance(params.structured_outputs, StructuredOutputsParams),
          "structured_outputs must be a StructuredOutputsParams or a dict of its fields.")
    check(not (params.use_beam_search and params.structured_outputs is not None),
          "structured outputs cannot be combined with beam search (each beam step is a fresh "
          "one-token request, so no grammar state carries from step to step).")
