"""Strings: lengths in characters, `pattern`, `format`, and embedding a regex inside a JSON string."""

from __future__ import annotations

import functools
from typing import Any

from pyengine.structured.grammar import Grammar, GrammarBuilder, GrammarError, Ref, Repeat
from pyengine.structured import automaton
from pyengine.structured.automaton import json_escapes, json_string_split
from pyengine.structured.json_schema.keywords import ANNOTATIONS, nonneg_int
from pyengine.structured.regex import regex_grammar

# Formats as regexes over the string's characters (RFC 3339 dates and times, RFC 4122 UUIDs, ...).
# A date's day is exact for its month, and February 29 only in leap years (divisible by 4, and
# centuries only when divisible by 400), and years 0001 to 9999, as Python's date.fromisoformat
# (jsonschema's check) wants.
_YEAR = r"([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_DAY_28 = r"(0[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_DATE = (r"(" + _YEAR + r"-((0[13578]|1[02])-(" + _DAY_28 + r"|29|3[01])|(0[469]|11)-(" + _DAY_28 + r"|29|30)|02-"
         + _DAY_28 + r")|" + _LEAP_YEAR + r"-02-29)")
# Seconds stop at 59: RFC 3339 allows a leap second (:60), but jsonschema's time check rejects it.
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PCHAR = r"([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
_URI = r"[A-Za-z][A-Za-z0-9+.-]*:(" + _PCHAR + r"|[/?#])*"  # RFC 3986 characters (no IPv6 literals)
# A relative reference: a first segment without ':', or one starting with '/', '?' or '#'.
_RELATIVE = r"((([A-Za-z0-9._~!$&'()*+,;=@-]|%[0-9A-Fa-f]{2})+|[/?#])(" + _PCHAR + r"|[/?#])*)?"
# IPv6: eight groups, or fewer around one "::", or six (or fewer around "::") before an IPv4 address;
# no zone index (Python's ipaddress, jsonschema's check, accepts "%zone"; never generated here).
_H = "[0-9A-Fa-f]{1,4}"
_V4 = rf"({_OCTET}\.){{3}}{_OCTET}"
_IPV6 = ("(" + "|".join([
    rf"({_H}:){{7}}{_H}", rf"({_H}:){{1,7}}:", rf"({_H}:){{1,6}}:{_H}", rf"({_H}:){{1,5}}(:{_H}){{1,2}}",
    rf"({_H}:){{1,4}}(:{_H}){{1,3}}", rf"({_H}:){{1,3}}(:{_H}){{1,4}}", rf"({_H}:){{1,2}}(:{_H}){{1,5}}",
    rf"{_H}:(:{_H}){{1,6}}", rf":((:{_H}){{1,7}}|:)", rf"({_H}:){{6}}{_V4}", rf"::({_H}:){{0,5}}{_V4}",
    rf"({_H}:){{1,5}}:({_H}:){{0,4}}{_V4}"]) + ")")
FORMATS = {
    "date": _DATE,
    "time": _TIME,
    "date-time": _DATE + "[Tt]" + _TIME,
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "email": r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + _LABEL + r"(\." + _LABEL + ")+",
    "ipv4": rf"({_OCTET}\.){{3}}{_OCTET}",
    "hostname": _LABEL + r"(\." + _LABEL + ")*",
    "uri": _URI,
    "uri-reference": f"({_URI}|{_RELATIVE})",
    "byte": r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",  # OpenAPI: base64
    "ipv6": _IPV6,
}
ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def embed_grammar(b: GrammarBuilder, grammar: Grammar, json_string: bool = False) -> Any:
    """Copy `grammar` into the one `b` builds, under fresh rule names; returns its start.

    With `json_string`, the grammar speaks about a JSON string's decoded characters: every byte
    JSON must escape (`"`, `\\`, controls) becomes its escape sequence.
    """
    names = {name: b.new_rule("sub") for name in grammar.rules}
    refs = {name: b.ref(new_name) for name, new_name in names.items()}
    escaped: dict[tuple, Any] = {}  # byte set -> its JSON string form, written once per class

    def element(e: Any) -> Any:
        if isinstance(e, Ref):
            return refs[e.name]
        if isinstance(e, Repeat):
            return Repeat(names[e.name], e.min, e.max)
        if not json_string:
            return e  # a ByteSet: immutable, shared as it is
        if e.ranges not in escaped:
            plain, escapes = json_string_split(e.ranges)
            if not escapes:  # the usual case: nothing JSON escapes, the byte set stands as it is
                escaped[e.ranges] = e
                return e
            parts = [b.byte_set(list(plain))] if plain else []
            escaped[e.ranges] = b.alt(*parts, json_escapes(b, escapes))
        return escaped[e.ranges]

    for name, alternatives in grammar.rules.items():
        b.define(names[name], b.alt(*[b.seq(*[element(e) for e in alt]) for alt in alternatives]))
    return refs[grammar.start]


class Strings:
    """The string grammars (a mixin of `SchemaCompiler`: uses its builder `b` and shared pieces)."""

    def string(self, schema: dict) -> Any:
        b = self.b
        min_len = nonneg_int(schema, "minLength", 0)
        max_len = nonneg_int(schema, "maxLength", None)
        if max_len is not None and min_len > max_len:
            return None
        pattern, fmt = schema.get("pattern"), schema.get("format")
        if pattern is not None and not isinstance(pattern, str):
            raise GrammarError("pattern must be a string")
        if fmt is not None and fmt not in FORMATS:
            raise GrammarError(f"unsupported string format {fmt!r} (supported: {', '.join(FORMATS)})")
        quote = b.literal('"')
        bounded = min_len > 0 or max_len is not None or "not" in schema
        if pattern is not None and fmt is None and not bounded and _simply_anchored(pattern):
            return b.seq(quote, self.embed_regex(_unanchored(pattern), json_string=True), quote)
        if fmt is not None and pattern is None and not bounded:
            return b.seq(quote, self.embed_regex(FORMATS[fmt], json_string=True), quote)
        if pattern is not None or fmt is not None or "not" in schema:  # an intersection, a complement, anchors
            content = automaton.automaton_of(string_term(schema)).element(b, json_string=True)
            return None if content is None else b.seq(quote, content, quote)
        if min_len == 0 and max_len is None:
            return self._shared("string")
        return self._string_of_length(min_len, max_len)

    def strings_disjoint(self, a: dict, b: dict) -> bool:
        """Whether no string meets both schemas' pattern/format/lengths (False when not decided)."""
        if not any(k in s for s in (a, b) for k in ("pattern", "format")):
            return False
        try:
            term = automaton.both(string_term(a), string_term(b))
            return automaton.automaton_of(term, max_states=2_000).is_empty()
        except GrammarError:
            return False

    def _string_of_length(self, min_len: int, max_len: int | None) -> Any:
        quote = self.b.literal('"')
        return self.b.seq(quote, self.b.repeat(self.string_char(), min_len, max_len), quote)

    def string_char(self) -> Any:
        """One character of a JSON string's content: unescaped or an escape sequence."""
        return self._shared("char")

    def _string_char(self) -> Any:
        b = self.b
        name = b.new_rule("json_char")
        hexd = b.char_class([(48, 57), (65, 70), (97, 102)])
        cls = lambda text: b.char_class([(ord(c), ord(c)) for c in text])  # noqa: E731
        hex2 = b.repeat(hexd, 2, 2)
        # \uXXXX outside the surrogates, or a surrogate pair: one character either way.
        bmp = b.alt(b.seq(cls("0123456789abcABC"), hexd, hex2), b.seq(cls("dD"), cls("01234567"), hex2),
                    b.seq(cls("efEF"), hexd, hex2))
        pair = b.seq(cls("dD"), cls("89abAB"), hex2, b.literal("\\u"), cls("dD"), cls("cdefCDEF"), hex2)
        escape = b.seq(b.literal("\\"), b.alt(cls('"/\\bfnrt'), b.seq(b.literal("u"), b.alt(bmp, pair))))
        b.define(name, b.alt(b.char_class([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x10FFFF)]), escape))
        return b.ref(name)

    def embed_regex(self, pattern: str, json_string: bool = False) -> Any:
        """The regex front end's grammar for `pattern`, inside this one (see `embed_grammar`)."""
        return embed_grammar(self.b, pattern_grammar(pattern), json_string)


def pattern_grammar(pattern: str) -> Grammar:
    """`regex_grammar(pattern)`, kept by the pattern's text for the next schema with the same one
    (an LRU of 1,024, patterns up to CACHED_PATTERN_LENGTH characters: a longer one would pin a
    large grammar).

    Formats, and many patterns, recur from schema to schema (and request to request), and parsing
    a regex is most of what embedding it costs. Safe to share: the grammar depends on the text
    alone, and `embed_grammar` only reads it (it copies the rules under new names). Invalid
    patterns raise every time (errors are not cached)."""
    if len(pattern) > automaton.CACHED_PATTERN_LENGTH:
        return regex_grammar(pattern)
    return _cached_pattern_grammar(pattern)


_cached_pattern_grammar = functools.lru_cache(maxsize=1024)(regex_grammar)


STRING_LANGUAGE = {"type", "pattern", "format", "minLength", "maxLength", "enum", "const", "anyOf", "allOf", "not"}


def string_language(schema: Any) -> tuple | None:
    """The strings a schema made only of string keywords (and anyOf/allOf/not of such) accepts, as a
    term; None for any other schema."""
    if schema is True or schema == {}:
        return automaton.star(automaton.ANY)
    if schema is False:
        return automaton.NONE
    if not isinstance(schema, dict) or any(k not in STRING_LANGUAGE and k not in ANNOTATIONS for k in schema):
        return None
    types = schema.get("type", "string")
    if types != "string" and not (isinstance(types, list) and "string" in types):
        return automaton.NONE if isinstance(types, (str, list)) else None
    try:
        terms = [string_term({k: v for k, v in schema.items() if k in ("pattern", "format", "minLength", "maxLength")})]
    except GrammarError:
        return None
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if values is not None:
        terms.append(automaton.alt(*[automaton.literal(v) for v in values if isinstance(v, str)]))
    for key, combine in (("anyOf", automaton.alt), ("allOf", automaton.both)):
        if key in schema:
            parts = [string_language(s) for s in schema[key]] if isinstance(schema[key], list) else [None]
            if any(p is None for p in parts):
                return None
            terms.append(combine(*parts))
    if "not" in schema:
        inner = string_language(schema["not"])
        if inner is None:
            return None
        terms.append(automaton.complement(inner))
    return automaton.both(*terms)


def accepts_non_strings(schema: Any) -> bool | None:
    """For a string-language schema: True when it accepts every non-string, False when none, None
    when some (a number in an enum, a type list)."""
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    flags = []
    if "type" in schema:
        flags.append(False if schema["type"] == "string" or schema["type"] == ["string"] else None)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        flags.append(False if all(isinstance(v, str) for v in values) else None)
    for key in ("anyOf", "allOf"):
        if key in schema:
            parts = [accepts_non_strings(s) for s in schema[key]]
            if None in parts:
                flags.append(None)
            else:
                flags.append(any(parts) if key == "anyOf" else all(parts))
    if "not" in schema:
        inner = accepts_non_strings(schema["not"])
        flags.append(None if inner is None else not inner)
    if False in flags:
        return False
    return None if None in flags else True


def string_term(schema: dict) -> tuple:
    """The regular language of a string schema's characters (pattern, format, lengths, not) as one term."""
    terms = []
    if "not" in schema:
        inner = string_language(schema["not"])
        if inner is None:
            raise GrammarError("'not' is supported on a string as pattern/format/length/enum/const tests")
        terms.append(automaton.complement(inner))
    if isinstance(schema.get("pattern"), str):
        terms.append(automaton.search(automaton.parse_regex(schema["pattern"])))
    if schema.get("format") in FORMATS:
        terms.append(automaton.parse_regex(FORMATS[schema["format"]]))
    min_len, max_len = nonneg_int(schema, "minLength", 0), nonneg_int(schema, "maxLength", None)
    if min_len or max_len is not None:
        terms.append(automaton.length(min_len, max_len))
    return automaton.both(*terms) if terms else automaton.star(automaton.ANY)


def _simply_anchored(pattern: str) -> bool:
    """No anchor but a leading `^` and a trailing `$` (and then no alternation that they would split)."""
    inner = pattern[1 if pattern.startswith("^") else 0:]
    inner = inner[:-1] if inner.endswith("$") and not inner.endswith("\\$") else inner
    if "^" not in inner.replace("[^", "").replace("\\^", "") and "$" not in inner.replace("\\$", ""):
        return inner == pattern or "|" not in pattern
    return False


def _unanchored(pattern: str) -> str:
    """JSON Schema patterns match anywhere unless anchored: `abc` means `.*abc.*` as a full match."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0: len(pattern) - 1 if end else len(pattern)]
    anything = r"[\s\S]*"
    return ("" if start else anything) + "(" + body + ")" + ("" if end else anything)

