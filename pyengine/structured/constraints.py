"""From a request's constraint to a grammar, and from a grammar to a per-sequence matcher.

The front ends of vLLM's `structured_outputs` (and of `response_format` and forced tool calls,
which the server turns into one of them), each compiled to a `Grammar` over bytes:

    kind             spec                          grammar
    json             a JSON Schema (dict or text)  json_schema/
    json_object      True                          any JSON object
    regex            a pattern                     regex.py (full match)
    choice           a list of strings             one of them, exactly
    grammar          GBNF; Lark if it has no ::=   ebnf.py; lark.py
    structural_tag   JSON text (both shapes)       free text with tagged spans, below
    tool_calls       [{name, parameters}], ...     Hermes <tool_call> blocks, below

`compile_grammar(kind, spec, options)` caches the last LRU_SIZE grammars by (kind, spec, options),
the spec as canonical JSON text (a schema given as a dict or as JSON text, spaced any way, is one
entry; key order is kept, since property order is part of a schema), so a server answering many
requests with one schema compiles it once per process: the server's check and the engine's
request share the entry. Grammars do not depend
on the tokenizer; the `TokenTrie` does, and the engine builds it once per tokenizer.

Structural tags (xgrammar's, as vLLM passes them): free text until one of the `triggers`, then
a tagged span `begin <content> end` where `begin` starts with that trigger, then free text
again. "Free text" is the regular language of byte strings that do not contain any trigger,
built as the rules of a KMP-style automaton (one rule per state: "the longest suffix read so
far that is a prefix of some trigger"), so a trigger can only ever be read as the start of a
tag. The newer `format` object maps onto the same pieces: `triggered_tags`, `tags_with_separator`,
`tag`, `sequence`, `or`, `const_string`, `json_schema`, `regex`, `grammar`, `any_text`; any other
format type is a `GrammarError`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from typing import Any

from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.grammar import Grammar, GrammarBuilder, GrammarError, choice_grammar
from pyengine.structured.json_schema import (
    JsonOptions,
    embed_grammar,
    json_schema_expr,
    json_schema_grammar,
)
from pyengine.structured.lark import lark_grammar
from pyengine.structured.regex import regex_grammar

__all__ = ["KINDS", "LRU_SIZE", "compile_grammar", "structural_tag_grammar", "tool_calls_grammar"]

KINDS = ("json", "json_object", "regex", "choice", "grammar", "structural_tag", "tool_calls")
LRU_SIZE = 64
TOOL_CALL_START, TOOL_CALL_END = "<tool_call>\n", "\n</tool_call>"

_cache: collections.OrderedDict[tuple, Grammar] = collections.OrderedDict()
_lock = threading.Lock()


def compile_grammar(kind: str, spec: Any, options: JsonOptions = JsonOptions()) -> Grammar:
    """The grammar of one constraint (see the table above); cached.

    Raises:
        GrammarError: the spec is invalid or uses something unsupported (the message says what).
    """
    if kind not in KINDS:
        raise GrammarError(f"unknown structured output kind {kind!r} (valid: {', '.join(KINDS)})")
    key = (kind, _canonical(kind, spec), options)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    grammar = _compile(kind, spec, options)
    with _lock:
        _cache[key] = grammar
        while len(_cache) > LRU_SIZE:
            _cache.popitem(last=False)
    return grammar


def cache_info() -> int:
    """How many grammars are cached (for tests)."""
    return len(_cache)


def _compile(kind: str, spec: Any, options: JsonOptions) -> Grammar:
    if kind == "json":
        return json_schema_grammar(spec, options)
    if kind == "json_object":
        return json_schema_grammar({"type": "object"}, options)
    if kind == "regex":
        if not isinstance(spec, str):
            raise GrammarError("regex must be a string")
        if "\x00" in spec:
            raise GrammarError("regex must not contain a NUL character")
        return regex_grammar(spec)
    if kind == "choice":
        if not isinstance(spec, (list, tuple)) or not all(isinstance(s, str) for s in spec):
            raise GrammarError("choice must be a list of strings")
        return choice_grammar(list(spec))
    if kind == "grammar":
        if not isinstance(spec, str):
            raise GrammarError("grammar must be a string (GBNF, or Lark)")
        return ebnf_grammar(spec) if "::=" in spec else lark_grammar(spec)
    if kind == "structural_tag":
        return structural_tag_grammar(spec, options)
    return tool_calls_grammar(*spec, options=options)


def _canonical(kind: str, spec: Any) -> Any:
    """A hashable key for a spec: JSON (given as text or as objects) as compact JSON text, dict
    order kept (property order is part of a schema); any other spec as it is."""
    if kind in ("json", "structural_tag") and isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return spec  # not JSON: compiling it fails, and failures are not cached
        return json.dumps(spec, separators=(",", ":"), ensure_ascii=False)
    if isinstance(spec, (dict, list, tuple)):
        return json.dumps(spec, separators=(",", ":"), ensure_ascii=False)
    return spec


# -- tool calls --------------------------------------------------------------------------------------


def tool_calls_grammar(tools: tuple[tuple[str, Any], ...], min_calls: int = 1, max_calls: int | None = None,
                       options: JsonOptions = JsonOptions()) -> Grammar:
    """Hermes tool calls, one or more blocks separated by a newline:

        <tool_call>
        {"name": "get_weather", "arguments": {"city": "Paris"}}
        </tool_call>

    `tools` is ((name, parameters schema or None), ...); each call names one tool and its
    arguments match that tool's schema (None or {}: no arguments, `{}`, with strict objects). `max_calls=1` for
    `parallel_tool_calls: false` and for a named tool choice.
    """
    if not tools:
        raise GrammarError("forcing a tool call needs at least one tool")
    b = GrammarBuilder()
    calls = []
    for name, parameters in tools:
        # No parameters: an empty object under strict objects (the default), any object otherwise.
        schema = {"type": "object", "properties": {}} if parameters is None or parameters == {} else parameters
        try:
            arguments = json_schema_expr(b, schema, options)
        except GrammarError as exc:
            raise GrammarError(f"tool {name!r}: parameters: {exc}") from None
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        calls.append(b.seq(b.literal(TOOL_CALL_START + head), arguments, b.literal("}" + TOOL_CALL_END)))
    call_rule = b.new_rule("tool_call")
    b.define(call_rule, b.alt(*calls))
    call = b.ref(call_rule)
    more = b.seq(b.literal("\n"), call)
    extra_max = None if max_calls is None else max_calls - 1
    return b.build(b.seq(call, b.repeat(more, max(min_calls - 1, 0), extra_max)))


# -- structural tags ---------------------------------------------------------------------------------


def structural_tag_grammar(spec: Any, options: JsonOptions = JsonOptions()) -> Grammar:
    """xgrammar's structural tag (legacy `structures` + `triggers`, or a `format` object)."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"structural_tag is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise GrammarError("structural_tag must be a JSON object")
    b = GrammarBuilder()
    if "format" in spec:
        return b.build(_Formats(b, options).format(spec["format"]))
    if "structures" not in spec or "triggers" not in spec:
        raise GrammarError("structural_tag needs 'format', or 'structures' and 'triggers'")
    structures, triggers = spec["structures"], spec["triggers"]
    if not isinstance(structures, list) or not isinstance(triggers, list) or not triggers:
        raise GrammarError("structural_tag: 'structures' and 'triggers' must be non-empty lists")
    tags = []
    for s in structures:
        if not isinstance(s, dict) or not {"begin", "end"} <= set(s):
            raise GrammarError("each structure needs 'begin', 'schema' and 'end'")
        tags.append({"begin": s["begin"], "end": s["end"],
                     "content": {"type": "json_schema", "json_schema": s.get("schema", True)}})
    return b.build(_Formats(b, options).triggered_tags(tags, triggers, at_least_one=False, stop_after_first=False))


@dataclasses.dataclass
class _Formats:
    """xgrammar's structural-tag `format` objects -> builder elements."""

    b: GrammarBuilder
    options: JsonOptions

    def format(self, fmt: Any) -> Any:
        b = self.b
        if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
            raise GrammarError("a structural_tag format is an object with a 'type'")
        kind = fmt["type"]
        if kind == "const_string":
            return b.literal(_text(fmt, "value"))
        if kind == "json_schema":
            return json_schema_expr(b, fmt.get("json_schema", True), self.options)
        if kind == "regex":
            return embed_grammar(b, regex_grammar(_text(fmt, "pattern")))
        if kind == "grammar":
            return embed_grammar(b, ebnf_grammar(_text(fmt, "grammar")))
        if kind == "any_text":
            return b.star(b.byte_set([(0, 255)]))
        if kind == "sequence":
            return b.seq(*[self.format(e) for e in _items(fmt, "elements")])
        if kind == "or":
            return b.alt(*[self.format(e) for e in _items(fmt, "elements")])
        if kind == "tag":
            return self.tag(fmt)
        if kind == "triggered_tags":
            return self.triggered_tags(_items(fmt, "tags"), _items(fmt, "triggers"),
                                       bool(fmt.get("at_least_one", False)), bool(fmt.get("stop_after_first", False)))
        if kind == "tags_with_separator":
            tags = [self.tag(t) for t in _items(fmt, "tags")]
            one = b.alt(*tags)
            sep = b.literal(_text(fmt, "separator"))
            body = b.seq(one, b.star(b.seq(sep, one))) if not fmt.get("stop_after_first") else one
            return body if fmt.get("at_least_one") else b.opt(body)
        raise GrammarError(f"structural_tag format type {kind!r} is not supported (supported: const_string, "
                           "json_schema, regex, grammar, any_text, sequence, or, tag, triggered_tags, "
                           "tags_with_separator)")

    def tag(self, tag: Any) -> Any:
        if not isinstance(tag, dict):
            raise GrammarError("a tag is an object with 'begin', 'content' and 'end'")
        content = tag.get("content", {"type": "any_text"})
        return self.b.seq(self.b.literal(_text(tag, "begin")), self.format(content), self.b.literal(_text(tag, "end")))

    def triggered_tags(self, tags: list, triggers: list, at_least_one: bool, stop_after_first: bool) -> Any:
        """free (tag free)*: text without any trigger, each trigger starting a tag."""
        b = self.b
        if not triggers or not all(isinstance(t, str) and t for t in triggers):
            raise GrammarError("triggers must be non-empty strings")
        by_trigger: list[Any] = []
        for tag in tags:
            begin = _text(tag, "begin")
            if not any(begin.startswith(t) for t in triggers):
                raise GrammarError(f"tag begin {begin!r} does not start with any trigger {triggers!r}")
            content = tag.get("content") or {"type": "json_schema", "json_schema": tag.get("schema", True)}
            by_trigger.append(self.tag({"begin": begin, "content": content, "end": _text(tag, "end")}))
        if not by_trigger:
            raise GrammarError("triggered tags need at least one tag")
        tag_expr = b.alt(*by_trigger)
        free = free_text(b, [t.encode() for t in triggers])
        if stop_after_first:
            return b.seq(free, tag_expr) if at_least_one else b.alt(free, b.seq(free, tag_expr))
        loop = b.star(b.seq(tag_expr, free))
        if at_least_one:
            return b.seq(free, tag_expr, free, loop)
        return b.seq(free, loop)


def free_text(b: GrammarBuilder, triggers: list[bytes]) -> Any:
    """Byte strings that contain none of `triggers`, from the states of a KMP-style automaton.

    A state is the longest suffix of the text so far that is a proper prefix of some trigger;
    reading a byte moves to the longest such suffix of (state + byte), and a byte that would
    complete a trigger has no move. Every state may end the text. The rules are left-linear
    (`ends_in[q] ::= ends_in[p] byte`), which an Earley parser reads in constant work per byte.
    """
    prefixes = sorted({t[:i] for t in triggers for i in range(len(t))}, key=lambda p: (len(p), p))
    names = {p: b.new_rule("free") for p in prefixes}

    def step(state: bytes, byte: int) -> bytes | None:
        text = state + bytes([byte])
        if any(text.endswith(t) for t in triggers):
            return None
        return next(text[start:] for start in range(len(text) + 1) if text[start:] in names)

    incoming: dict[bytes, list[Any]] = {p: [] for p in prefixes}
    incoming[b""].append(b.seq())
    for state in prefixes:
        targets: dict[bytes, list[int]] = {}
        for byte in range(256):
            nxt = step(state, byte)
            if nxt is not None:
                targets.setdefault(nxt, []).append(byte)
        for nxt, byte_list in targets.items():
            incoming[nxt].append(b.seq(b.ref(names[state]), b.byte_set(_ranges(byte_list))))
    for state in prefixes:
        b.define(names[state], b.alt(*incoming[state]))
    return b.alt(*[b.ref(names[p]) for p in prefixes])


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _text(obj: dict, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise GrammarError(f"structural_tag: {key!r} must be a string")
    return value


def _items(obj: dict, key: str) -> list:
    value = obj.get(key)
    if not isinstance(value, list) or not value:
        raise GrammarError(f"structural_tag: {key!r} must be a non-empty list")
    return value
