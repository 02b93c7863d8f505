"""JSON Schema -> Grammar: what each keyword becomes, through `GrammarBuilder`.

    grammar = json_schema_grammar({"type": "object", "properties": {"a": {"type": "integer"}}})
    grammar.matches(b'{"a": 12}')  # True

The guiding rule: the grammar never accepts a document the schema rejects. Where a keyword can be
expressed exactly it is; where only a stricter language can be written (a bounded float, an
escaped object key) the grammar is stricter and the docs say so; where neither is possible the
compile fails with `GrammarError` naming the keyword. Nothing is silently dropped.

What each part becomes (docs/06-structured-outputs.md walks through one example):

- types: `null`, `boolean`, `integer` (`-?(0|[1-9][0-9]*)`, no `1.0`), `number` (JSON's number),
  `string` (JSON's string, escapes included), `array`, `object`; a list of types is an alternation;
  no `type` means every type, each still subject to its own keywords (JSON Schema's rule).
- `enum` / `const`: the values, serialised as JSON (objects and arrays with the whitespace policy).
- `anyOf`, and `oneOf` compiled as `anyOf` (an instance matching two branches is accepted; oneOf
  is only exact when the branches are disjoint, which holds for the usual tagged unions).
- `allOf`: merged into one schema (types intersected, properties merged per name, `required`
  united, bounds tightened); keywords that cannot be merged are a `GrammarError`.
- `$ref` (`#`, `#/$defs/..`, `#/definitions/..`, any local JSON pointer): one rule per target, so
  recursive schemas are recursive rules. Remote references are an error.
- objects: declared `properties` in schema order, required ones mandatory, optional ones optional,
  then additional properties (allowed unless `additionalProperties: false` or the
  `disable_additional_properties` option), whose keys exclude the declared names. Additional keys
  use canonical escapes only (no `\\u` escapes for printable characters), so that "not a declared
  name" can be decided on the text.
- arrays: `prefixItems` (or draft-4 `items: [...]` + `additionalItems`), `items`, `minItems`,
  `maxItems` exactly.
- strings: `minLength` / `maxLength` in characters (an escape is one character), `pattern` (the
  regex front end's dialect, unanchored as JSON Schema says unless `^`/`$` anchor it), and the
  formats date, time, date-time, uuid, email, ipv4, hostname, uri, uri-reference, byte (FORMATS),
  enforced (as llguidance does); any other format is a `GrammarError`, not an annotation.
- integers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` exactly (a digit-range
  grammar, any size). numbers: the same bounds rounded inward to integers, and no exponent when
  bounded (exact for integer bounds; stricter for fractional ones).

Whitespace (`JsonOptions.whitespace`): "flexible" (the default, llguidance's and xgrammar's):
any run of space, tab, CR, LF between tokens, none before the first or after the last token;
"compact" (`disable_any_whitespace`): exactly `json.dumps(separators=(",", ":"))`; or a regex
(`whitespace_pattern`) used at every place whitespace may go.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from typing import Any
from urllib.parse import unquote

from pyengine.structured.grammar import ByteSet, Grammar, GrammarBuilder, GrammarError, GrammarLimitError

__all__ = ["FORMATS", "JsonOptions", "UNSUPPORTED_KEYWORDS", "any_json_object_grammar", "embed_grammar",
           "json_schema_expr", "json_schema_grammar"]

MAX_SCHEMA_DEPTH = 100  # nested subschemas (and $ref merges) before GrammarLimitError
MAX_INT_DIGITS = 400  # integer bounds larger than this many digits are an error (limits the rules)

# Keywords that validate but that a grammar here cannot express (error unless trivially true).
UNSUPPORTED_KEYWORDS = (
    "patternProperties", "propertyNames", "dependencies", "dependentSchemas", "dependentRequired",
    "if", "then", "else", "not", "uniqueItems", "multipleOf", "contains", "minContains", "maxContains",
    "minProperties", "maxProperties", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef",
    "$recursiveRef",
)
# Keywords that carry no constraint (annotations and structure).
ANNOTATIONS = frozenset((
    "title", "description", "$schema", "$id", "id", "$comment", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "contentMediaType",
    "contentEncoding", "contentSchema", "$defs", "definitions", "$vocabulary", "discriminator",
    "nullable", "example", "strict",
))
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
# The keywords each type reads (a keyword of another type does not constrain this one).
TYPE_KEYWORDS = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "array": ("items", "prefixItems", "additionalItems", "minItems", "maxItems"),
    "object": ("properties", "required", "additionalProperties"),
}
HANDLED = frozenset(k for ks in TYPE_KEYWORDS.values() for k in ks) | {
    "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"}

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
}
_WS_CHARS = ((0x20, 0x20), (0x09, 0x0A), (0x0D, 0x0D))  # space, tab, LF, CR
_KEY_ASCII = [(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)]  # ASCII a key may hold unescaped (not " or \\)
_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


@dataclasses.dataclass(frozen=True)
class JsonOptions:
    """How documents are laid out and how strict objects are (vLLM's per-request switches)."""

    whitespace: str = "flexible"  # "flexible" | "compact" | "pattern"
    whitespace_pattern: str | None = None  # the regex, when whitespace == "pattern"
    disable_additional_properties: bool = False

    @classmethod
    def from_switches(cls, disable_any_whitespace: bool = False, whitespace_pattern: str | None = None,
                      disable_additional_properties: bool = False) -> "JsonOptions":
        if whitespace_pattern is not None:
            return cls("pattern", whitespace_pattern, disable_additional_properties)
        return cls("compact" if disable_any_whitespace else "flexible", None, disable_additional_properties)


def json_schema_grammar(schema: Any, options: JsonOptions = JsonOptions()) -> Grammar:
    """The grammar of the JSON documents valid under `schema` (a dict, a bool, or JSON text).

    Raises:
        GrammarError: an invalid schema, or a keyword this compiler cannot express (listed).
        GrammarLimitError: nesting or bounds past the documented limits.
    """
    schema = _parsed(schema)
    try:
        return _Compiler(schema, options).compile_root()
    except RecursionError:
        raise GrammarLimitError("the schema nests too deeply to compile") from None


def any_json_object_grammar(options: JsonOptions = JsonOptions()) -> Grammar:
    """`json_object`: any JSON object."""
    return json_schema_grammar({"type": "object"}, options)


def _parsed(schema: Any) -> Any:
    """A schema given as JSON text, parsed; a GrammarError unless it is an object or a boolean."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise GrammarError(f"a JSON schema is an object or a boolean, got {type(schema).__name__}")
    return schema


def json_schema_expr(b: GrammarBuilder, schema: Any, options: JsonOptions = JsonOptions()) -> Any:
    """The same, as an element of a grammar being built with `b` (for tool calls, structural tags)."""
    schema = _parsed(schema)
    expr = _Compiler(schema, options, b).schema(schema)
    if expr is None:
        raise GrammarError("the schema admits no value at all (false, an empty enum, or contradictory keywords)")
    return expr


def embed_grammar(b: GrammarBuilder, grammar: Grammar, json_string: bool = False) -> Any:
    """Copy `grammar` into the one `b` builds, under fresh rule names; returns its start.

    With `json_string`, the grammar speaks about a JSON string's decoded characters: every byte
    JSON must escape (`"`, `\\`, controls) becomes its escape sequence.
    """
    names = {name: b.new_rule("sub") for name in grammar.rules}
    unsafe = set(range(0x20)) | {0x22, 0x5C}

    def element(e: Any) -> Any:
        if not hasattr(e, "ranges"):  # a Ref
            return b.ref(names[e.name])
        if not json_string:
            return b.byte_set(list(e.ranges))
        plain = _subtract_points(list(e.ranges), unsafe)
        escaped = [c for c in sorted(unsafe) if any(lo <= c <= hi for lo, hi in e.ranges)]
        parts = [b.byte_set(plain)] if plain else []
        parts += [b.literal(_ESCAPES.get(c, "\\u%04x" % c)) for c in escaped]
        return b.alt(*parts) if parts else b.byte_set([])

    for name, alternatives in grammar.rules.items():
        b.define(names[name], b.alt(*[b.seq(*[element(e) for e in alt]) for alt in alternatives]))
    return b.ref(names[grammar.start])


class _Compiler:
    def __init__(self, root: dict | bool, options: JsonOptions, builder: GrammarBuilder | None = None,
                 use_library: bool = True):
        self.root = root
        self.options = options
        self.b = builder or GrammarBuilder()
        self.ref_rules: dict[str, str] = {}  # "#/$defs/x" -> rule name
        self.shared: dict[str, Any] = {}  # "value", "string", ... -> its element, built (or copied in) once
        # The shared pieces are copied in from the library of prebuilt ones for these options (see
        # `_library`), or, with no library, built here.
        self.library = _library(options) if use_library else None
        self.copied: dict[str, Any] = {}  # library rule name -> its copy in self.b
        self.depth = 0

    def compile_root(self) -> Grammar:
        expr = self.schema(self.root)
        if expr is None:
            raise GrammarError("the schema admits no value at all (false, an empty enum, or contradictory keywords)")
        start = self.b.new_rule("root")
        self.b.define(start, expr)
        return self.b.build(start)

    # -- schemas -----------------------------------------------------------------------------------

    def schema(self, schema: Any) -> Any:
        """A subschema -> a builder expression, or None when no value is valid."""
        self.depth += 1
        if self.depth > MAX_SCHEMA_DEPTH:
            raise GrammarLimitError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
        try:
            return self._schema(schema)
        finally:
            self.depth -= 1

    def _schema(self, schema: Any) -> Any:
        if schema is True or schema == {}:
            return self.any_value()
        if schema is False:
            return None
        if not isinstance(schema, dict):
            raise GrammarError(f"a subschema must be an object or a boolean, got {json.dumps(schema)[:80]}")
        self.check_keywords(schema)
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref" and k not in ANNOTATIONS}
            if not rest:
                return self.b.ref(self.ref_rule(schema["$ref"]))
            return self.schema(merge(self.resolve(schema["$ref"]), rest, self))
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in _list(schema["allOf"], "allOf"):
                merged = merge(merged, part, self)
            return self.schema(merged)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                branches = _list(schema[key], key)
                if any(k not in ANNOTATIONS for k in rest):  # siblings constrain every branch
                    branches = [merge(rest, branch, self) for branch in branches]
                return self.alt([self.schema(branch) for branch in branches])
        return self.typed(schema)

    def typed(self, schema: dict) -> Any:
        types = _types(schema)
        if "const" in schema:
            values = [schema["const"]]
        elif "enum" in schema:
            values = _list(schema["enum"], "enum")
        else:
            values = None
        if values is not None:
            values = [v for v in values if _json_type_ok(v, types)]
            if any(k in schema for ks in TYPE_KEYWORDS.values() for k in ks):
                values = [v for v in values if _satisfies(v, schema)]
            return self.alt([self.value_literal(v) for v in values])
        return self.alt([self.type_expr(t, schema) for t in types if not (t == "integer" and "number" in types)])

    def type_expr(self, type_: str, schema: dict) -> Any:
        b = self.b
        if type_ == "null":
            return b.literal("null")
        if type_ == "boolean":
            return b.alt(b.literal("true"), b.literal("false"))
        if type_ == "integer":
            lo, hi = _bounds(schema, integer=True)
            return self._shared("integer") if lo is None and hi is None else self.integer(lo, hi)
        if type_ == "number":
            return self.number(schema)
        if type_ == "string":
            return self.string(schema)
        if type_ == "array":
            return self.array(schema)
        return self.object(schema)

    def check_keywords(self, schema: dict) -> None:
        bad = [k for k in UNSUPPORTED_KEYWORDS if k in schema and not _trivial(k, schema)]
        if bad:
            raise GrammarError(f"unsupported JSON Schema keyword(s): {', '.join(bad)}")
        if "type" in schema:
            for t in [schema["type"]] if isinstance(schema["type"], str) else _list(schema["type"], "type"):
                if t not in TYPES:
                    raise GrammarError(f"unknown type {t!r} (valid: {', '.join(TYPES)})")

    # -- references --------------------------------------------------------------------------------

    def ref_rule(self, ref: Any) -> str:
        if not isinstance(ref, str):
            raise GrammarError(f"$ref must be a string, got {ref!r}")
        if ref not in self.ref_rules:
            target = self.resolve(ref)
            name = self.b.new_rule(_hint(ref))
            self.ref_rules[ref] = name
            expr = self.schema(target)
            if expr is None:
                raise GrammarError(f"$ref {ref!r} admits no value")
            self.b.define(name, expr)
        return self.ref_rules[ref]

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise GrammarError(f"only local references ('#...') are supported, got $ref {ref!r}")
        node: Any = self.root
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise GrammarError(f"$ref {ref!r}: anchors are not supported, only JSON pointers")
        for part in pointer.split("/")[1:] if pointer else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise GrammarError(f"$ref {ref!r} points at nothing in the schema")
        return node

    # -- scalars -----------------------------------------------------------------------------------

    def integer(self, lo: int | None, hi: int | None) -> Any:
        if lo is not None and hi is not None and lo > hi:
            return None
        for bound in (lo, hi):
            if bound is not None and len(str(abs(bound))) > MAX_INT_DIGITS:
                raise GrammarLimitError(f"integer bound {bound} has more than {MAX_INT_DIGITS} digits")
        parts = []
        if lo is None or lo < 0:  # negative part: '-' and a magnitude in [max(1, -hi), -lo]
            mag_lo = 1 if hi is None or hi >= 0 else -hi
            mag_hi = None if lo is None else -lo
            if mag_hi is None or mag_lo <= mag_hi:
                parts.append(self.b.seq(self.b.literal("-"), self.naturals(mag_lo, mag_hi)))
        if hi is None or hi >= 0:
            parts.append(self.naturals(max(lo or 0, 0), hi))
        return self.alt(parts)

    def naturals(self, lo: int, hi: int | None) -> Any:
        """Decimal naturals in [lo, hi] (hi None: unbounded), without leading zeros."""
        b = self.b
        digit = b.char_class([(ord("0"), ord("9"))])
        nonzero = b.char_class([(ord("1"), ord("9"))])
        parts = []
        top = len(str(hi)) if hi is not None else len(str(lo))
        for width in range(len(str(lo)), top + 1):
            low = lo if width == len(str(lo)) else 10 ** (width - 1)
            high = hi if hi is not None and width == len(str(hi)) else 10 ** width - 1
            if low <= high:
                parts.append(self.digit_range(str(low), str(high)))
        if hi is None:  # every longer number
            parts.append(b.seq(nonzero, b.repeat(digit, len(str(lo)), None)))
        return self.alt(parts)

    def digit_range(self, low: str, high: str) -> Any:
        """Strings of len(low) digits between low and high (equal lengths) in numeric order."""
        b = self.b
        if len(low) == 1:
            return b.char_class([(ord(low), ord(high))])
        if low[0] == high[0]:
            return b.seq(b.literal(low[0]), self.digit_range(low[1:], high[1:]))
        rest = len(low) - 1
        if low[1:] == "0" * rest and high[1:] == "9" * rest:
            return b.seq(b.char_class([(ord(low[0]), ord(high[0]))]), b.repeat(b.char_class([(48, 57)]), rest, rest))
        parts = [b.seq(b.literal(low[0]), self.digit_range(low[1:], "9" * rest))]
        if ord(high[0]) - ord(low[0]) > 1:
            parts.append(b.seq(b.char_class([(ord(low[0]) + 1, ord(high[0]) - 1)]),
                               b.repeat(b.char_class([(48, 57)]), rest, rest)))
        parts.append(b.seq(b.literal(high[0]), self.digit_range("0" * rest, high[1:])))
        return b.alt(*parts)

    def number(self, schema: dict) -> Any:
        """JSON numbers; with bounds, integer-valued bounds are exact, others rounded inward."""
        if not any(k in schema for k in TYPE_KEYWORDS["number"]):
            return self._shared("number")
        b = self.b
        fraction = b.seq(b.literal("."), b.plus(b.char_class([(48, 57)])))
        lo, lo_open, hi, hi_open = _real_bounds(schema)
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_open or hi_open))):
            return None
        zero_fraction = b.seq(b.literal("."), b.plus(b.literal("0")))
        nonzero_fraction = b.seq(b.literal("."), b.star(b.char_class([(48, 57)])), b.char_class([(49, 57)]),
                                 b.star(b.char_class([(48, 57)])))
        parts = []
        # x >= 0 written I.F: I >= a (or I == a with F > 0 when open); I <= b - 1, or I == b with F == 0.
        if hi is None or hi > 0 or (hi == 0 and not hi_open):
            parts += self._magnitudes(max(lo, 0) if lo is not None else 0, lo_open and lo is not None and lo >= 0,
                                      hi, hi_open, "", fraction, zero_fraction, nonzero_fraction)
        if lo is None or lo < 0:  # x < 0 written -(I.F), |x| in (max(0, -hi), -lo]
            m_lo = 0 if hi is None or hi >= 0 else -hi
            m_lo_open = True if hi is None or hi >= 0 else hi_open
            parts += self._magnitudes(m_lo, m_lo_open, None if lo is None else -lo, lo_open, "-", fraction,
                                      zero_fraction, nonzero_fraction)
        return self.alt(parts)

    def _any_number(self) -> Any:
        """Every JSON number (shared: see `_shared`)."""
        b = self.b
        digits = b.plus(b.char_class([(48, 57)]))
        fraction = b.seq(b.literal("."), digits)
        exponent = b.seq(b.char_class([(ord("e"), ord("e")), (ord("E"), ord("E"))]),
                         b.opt(b.char_class([(ord("+"), ord("+")), (ord("-"), ord("-"))])), digits)
        return b.seq(b.opt(b.literal("-")), self.naturals(0, None), b.opt(fraction), b.opt(exponent))

    def _magnitudes(self, lo: int, lo_open: bool, hi: int | None, hi_open: bool, sign: str,
                    fraction: Any, zero_fraction: Any, nonzero_fraction: Any) -> list[Any]:
        """Numbers `sign I[.F]` whose magnitude I.F lies between integer bounds lo and hi."""
        b = self.b
        prefix = [b.literal(sign)] if sign else []
        parts = []
        first_any = lo + 1 if lo_open else lo  # I from here on takes any fraction
        last_any = None if hi is None else hi - 1  # ... up to here
        if last_any is None or first_any <= last_any:
            parts.append(b.seq(*prefix, self.naturals(first_any, last_any), b.opt(fraction)))
        if lo_open and (hi is None or lo < hi):  # I == lo, F > 0
            parts.append(b.seq(*prefix, self.naturals(lo, lo), nonzero_fraction))
        if hi is not None and not hi_open and hi >= first_any:  # I == hi, F == 0
            if not (sign and hi == 0):  # -0 is written 0
                parts.append(b.seq(*prefix, self.naturals(hi, hi), b.opt(zero_fraction)))
        return parts

    def string(self, schema: dict) -> Any:
        b = self.b
        min_len = _nonneg_int(schema, "minLength", 0)
        max_len = _nonneg_int(schema, "maxLength", None)
        if max_len is not None and min_len > max_len:
            return None
        regexes = []
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise GrammarError("pattern must be a string")
            regexes.append(_unanchored(schema["pattern"]))
        fmt = schema.get("format")
        if fmt is not None:
            if fmt not in FORMATS:
                raise GrammarError(f"unsupported string format {fmt!r} (supported: {', '.join(FORMATS)})")
            regexes.append(FORMATS[fmt])
        if len(regexes) > 1:
            raise GrammarError(f"a string with both 'pattern' and format {fmt!r} is not supported")
        quote = b.literal('"')
        if regexes:
            if min_len or max_len is not None:
                raise GrammarError("a string with 'pattern'/'format' and 'minLength'/'maxLength' is not supported")
            return b.seq(quote, self.embed_regex(regexes[0], json_string=True), quote)
        if min_len == 0 and max_len is None:
            return self._shared("string")
        return self._string_of_length(min_len, max_len)

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
        from pyengine.structured.regex import regex_grammar  # the regex front end

        return embed_grammar(self.b, regex_grammar(pattern), json_string)

    # -- containers --------------------------------------------------------------------------------

    def ws(self) -> Any:
        """Whitespace between tokens, as the options say (one rule per grammar)."""
        return self._shared("ws")

    def _ws(self) -> Any:
        b = self.b
        name = b.new_rule("ws")
        if self.options.whitespace == "compact":
            b.define(name, b.seq())
        elif self.options.whitespace == "pattern":
            b.define(name, self.embed_regex(self.options.whitespace_pattern or ""))
        else:
            b.define(name, b.star(b.char_class(list(_WS_CHARS))))
        return b.ref(name)

    def token(self, text: str) -> Any:
        """A structural character with the whitespace that may surround it inside a document."""
        return self.b.seq(self.ws(), self.b.literal(text), self.ws())

    def array(self, schema: dict) -> Any:
        b = self.b
        prefix = schema.get("prefixItems")
        rest: Any = schema.get("items", True)
        if isinstance(rest, list):  # draft 4-7 tuple form
            prefix, rest = rest, schema.get("additionalItems", True)
        prefix = _list(prefix, "prefixItems") if prefix is not None else []
        min_items = _nonneg_int(schema, "minItems", 0)
        max_items = _nonneg_int(schema, "maxItems", None)
        if max_items is not None and min_items > max_items:
            return None
        prefix_exprs = [self.schema(s) for s in prefix]
        rest_expr = self.schema(rest)
        # Positions past the first impossible prefix item cannot be reached.
        usable = next((i for i, e in enumerate(prefix_exprs) if e is None), len(prefix_exprs))
        limit = usable if usable < len(prefix_exprs) or rest_expr is None else None
        if max_items is not None:
            limit = max_items if limit is None else min(limit, max_items)
        if limit is not None and min_items > limit:
            return None
        comma = self.token(",")

        def items_from(i: int) -> Any:  # elements at positions i.. (each after a comma when i > 0)
            lead = [comma] if i else []
            if limit is not None and i >= limit:
                return b.seq()
            if i < len(prefix_exprs):
                body = b.seq(*lead, prefix_exprs[i], items_from(i + 1))
                return body if i < min_items else b.opt(body)
            need = max(min_items - i, 0)
            most = None if limit is None else limit - i
            if i:
                return b.repeat(b.seq(comma, rest_expr), need, most)
            first = b.seq(rest_expr, b.repeat(b.seq(comma, rest_expr), max(need - 1, 0),
                                                None if most is None else most - 1))
            return first if need else b.opt(first)

        return b.seq(b.literal("["), self.ws(), items_from(0), self.ws(), b.literal("]"))

    def object(self, schema: dict) -> Any:
        b = self.b
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise GrammarError("properties must be an object")
        required = _list(schema.get("required", []), "required")
        additional = False if self.options.disable_additional_properties else schema.get("additionalProperties", True)
        names = list(props) + [r for r in required if r not in props]
        members = []  # (expression, required)
        for name in names:
            sub = props.get(name, additional if name not in props else None)
            expr = self.schema(props[name] if name in props else sub)
            if expr is None:
                if name in required:
                    return None  # a required property no value can satisfy
                continue
            key = self.json_string_literal(name)
            members.append((b.seq(key, self.token(":"), expr), name in required))
        extra_value = self.schema(additional)
        extra = None
        if extra_value is not None:
            extra = b.seq(self.key_except(names), self.token(":"), extra_value)
        comma = self.token(",")
        tail = b.star(b.seq(comma, extra)) if extra is not None else b.seq()

        # after[i]: members i.. when one was already written (each after a comma).
        after: list[Any] = [None] * (len(members) + 1)
        after[len(members)] = tail
        for i in range(len(members) - 1, -1, -1):
            expr, req = members[i]
            step = b.seq(comma, expr)
            after[i] = self._shared_rule("obj_after", b.seq(step if req else b.opt(step), after[i + 1]))
        # first[i]: members i.. when none was written yet.
        first = b.opt(b.seq(extra, tail)) if extra is not None else b.seq()
        for i in range(len(members) - 1, -1, -1):
            expr, req = members[i]
            with_it = b.seq(expr, after[i + 1])
            first = with_it if req else self._shared_rule("obj_first", b.alt(with_it, first))
        return b.seq(b.literal("{"), self.ws(), first, self.ws(), b.literal("}"))

    def _shared_rule(self, hint: str, expr: Any) -> Any:
        """A rule for an expression referenced twice (keeps object grammars linear in size)."""
        name = self.b.new_rule(hint)
        self.b.define(name, expr)
        return self.b.ref(name)

    def key_except(self, names: list[str]) -> Any:
        """A JSON string key whose (canonically escaped) text is none of `names`."""
        b = self.b
        units_of = [_units(_json_text(n)[1:-1]) for n in names]
        trie: dict = {}
        for units in units_of:
            node = trie
            for unit in units:
                node = node.setdefault(unit, {})
            node[None] = True  # a declared name ends here
        key_char = self.key_char_any()
        rest = self._shared("key_rest")  # any key characters

        # One rule per trie node, its alternatives written out directly (this runs for every object
        # that allows additional properties, so it skips seq/alt): they are distinct by construction.
        def after(node: dict) -> tuple:
            """The elements for the rest of a key, once the units leading to `node` are written."""
            children = [u for u in node if u is not None]
            if not children:  # past every name: any characters, at least one if a name ends here
                return (rest,) if None not in node else (key_char, rest)
            alternatives = [] if None in node else [()]  # the key may end here, unless a name does
            for unit in children:
                alternatives.append((*b.as_items(b.literal(unit)), *after(node[unit])))
            alternatives += self.key_other(children)
            return (b.rule(alternatives, "key"),)

        return b.seq(b.literal('"'), *after(trie), b.literal('"'))

    def key_char_any(self) -> Any:
        """Any canonical character unit of a key (one rule per grammar)."""
        return self._shared("key_char")

    def _key_char_any(self) -> Any:
        return self._rule("key_char", self.key_char_except([]))

    def _non_ascii_char(self) -> Any:
        """Any character past ASCII (its 2-4 UTF-8 bytes), one rule per grammar."""
        return self._shared("non_ascii")

    def key_other(self, units: list[str]) -> list[tuple]:
        """Alternatives (for `GrammarBuilder.rule`) of a key going on with a character unit not in
        `units`, then any characters."""
        b = self.b
        rest = self._shared("key_rest")
        if all(len(u) == 1 and u < "\x80" for u in units):  # the usual case: excluding a few ASCII characters
            ascii_ranges = _subtract_points(_KEY_ASCII, {ord(u) for u in units})
            # Sorted and never adjacent (each cut leaves a gap), so a ByteSet as it is.
            ascii_ = [(ByteSet(tuple(ascii_ranges)), rest)] if ascii_ranges else []
            return ascii_ + [(self._shared("key_tail"),)]  # non-ASCII and escapes: one rule for every key
        other = self.key_char_except(units)
        return [(*b.as_items(other), rest)] if other is not None else []

    def key_char_except(self, units: list[str]) -> Any:
        """One canonical character unit of a key (raw char or short escape) not in `units`."""
        b = self.b
        excluded = {ord(u) for u in units if not u.startswith("\\")}
        if all(point < 0x80 for point in excluded):  # the usual case: one byte set + the shared non-ASCII rule
            ascii_ranges = _subtract_points(_KEY_ASCII, excluded)
            parts = ([b.byte_set(ascii_ranges)] if ascii_ranges else []) + [self._non_ascii_char()]
        else:
            ranges = _subtract_points([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x10FFFF)], excluded)
            parts = [b.char_class(ranges)] if ranges else []
        if not any(u.startswith("\\") for u in units):  # the usual case: every escape, one shared rule
            return b.alt(*parts, self._shared("key_escapes"))
        parts += [b.literal(e) for e in _key_escapes(units)]
        return b.alt(*parts) if parts else None

    # -- any value ---------------------------------------------------------------------------------

    def any_value(self) -> Any:
        """Any JSON document (one recursive rule per grammar)."""
        return self._shared("value")

    def _any_value(self) -> Any:
        b = self.b
        name = b.new_rule("json_value")
        value = b.ref(name)
        comma = self.token(",")
        string = self.string({})
        member = b.seq(string, self.token(":"), value)
        obj = b.seq(b.literal("{"), self.ws(), b.opt(b.seq(member, b.star(b.seq(comma, member)))),
                    self.ws(), b.literal("}"))
        arr = b.seq(b.literal("["), self.ws(), b.opt(b.seq(value, b.star(b.seq(comma, value)))),
                    self.ws(), b.literal("]"))
        b.define(name, b.alt(b.literal("null"), b.literal("true"), b.literal("false"),
                             self.number({}), string, arr, obj))
        return value

    # -- shared pieces -----------------------------------------------------------------------------
    # Rules that do not depend on the schema (whitespace, a JSON string's characters, any value, ...)
    # are built once per options in a library (`_library`) and copied into each grammar that uses
    # them: copying a few finished rules costs far less than building them through the combinators.

    def _shared(self, key: str) -> Any:
        """The schema-independent piece `key` (see SHARED), made at most once per grammar."""
        element = self.shared.get(key)
        if element is None:
            if self.library is None:  # this is the library (or there is none): build it here
                element = self.SHARED[key](self)
            else:
                with _LIBRARY_LOCK:  # the library grows on demand, and compiles may run in threads
                    element = self.b.copy_in(self.library.b, self.library._shared(key), self.copied)
            self.shared[key] = element
        return element

    def _rule(self, hint: str, expr: Any) -> Any:
        name = self.b.new_rule(hint)
        self.b.define(name, expr)
        return self.b.ref(name)

    SHARED = {
        "ws": _ws,
        "char": _string_char,
        "string": lambda self: self._string_of_length(0, None),
        "number": _any_number,
        "integer": lambda self: self.integer(None, None),
        "value": _any_value,
        "key_char": _key_char_any,
        "key_rest": lambda self: self.b.star(self.key_char_any()),
        # a key character that is non-ASCII or an escape, then any key characters
        "key_tail": lambda self: self._rule("key_tail", self.b.alt(
            self.b.seq(self._non_ascii_char(), self._shared("key_rest")),
            self.b.seq(self._shared("key_escapes"), self._shared("key_rest")))),
        "key_escapes": lambda self: self._rule("key_escape", self.b.alt(*map(self.b.literal, _key_escapes([])))),
        "non_ascii": lambda self: self._rule("non_ascii", self.b.char_class([(0x80, 0x10FFFF)])),
    }

    def value_literal(self, value: Any) -> Any:
        """One JSON value as a grammar (containers with the whitespace policy)."""
        b = self.b
        if isinstance(value, dict):
            members = [b.seq(self.json_string_literal(k), self.token(":"), self.value_literal(v))
                       for k, v in value.items()]
            return b.seq(b.literal("{"), self.ws(), *_join(members, self.token(","), b), self.ws(), b.literal("}"))
        if isinstance(value, list):
            items = [self.value_literal(v) for v in value]
            return b.seq(b.literal("["), self.ws(), *_join(items, self.token(","), b), self.ws(), b.literal("]"))
        if isinstance(value, float) and not math.isfinite(value):
            raise GrammarError(f"{value} is not a JSON value")
        if isinstance(value, str):
            return self.json_string_literal(value)
        return b.literal(json.dumps(value))  # a number, true, false or null

    def json_string_literal(self, text: str) -> Any:
        """A fixed string as JSON writes it: raw UTF-8, or with non-ASCII as \\u escapes (json.dumps)."""
        raw, ascii_ = _json_text(text), json.dumps(text)
        return self.b.literal(raw) if raw == ascii_ else self.b.alt(self.b.literal(raw), self.b.literal(ascii_))

    def alt(self, parts: list[Any]) -> Any:
        """Alternation of the parts that admit something; None when none does."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else self.b.alt(*parts)


_LIBRARY_LOCK = threading.Lock()
_LIBRARIES: dict[str, _Compiler] = {}


def _library(options: JsonOptions) -> _Compiler | None:
    """The compiler that holds the prebuilt shared pieces for these options' whitespace.

    Only the two fixed whitespace modes have one (a whitespace pattern is any regex from a request;
    its grammars build their shared pieces themselves). Pieces are added on first use.
    """
    if options.whitespace not in ("flexible", "compact"):
        return None
    library = _LIBRARIES.get(options.whitespace)
    if library is None:
        library = _LIBRARIES.setdefault(options.whitespace,
                                           _Compiler(True, JsonOptions(options.whitespace), use_library=False))
    return library


# -- merging (allOf, $ref with siblings, anyOf with siblings) ---------------------------------------


def merge(a: Any, b: Any, compiler: _Compiler, depth: int = 0) -> Any:
    """One schema that accepts exactly what both accept, or GrammarError when this cannot be written."""
    if depth > MAX_SCHEMA_DEPTH:
        raise GrammarLimitError("allOf/$ref merging nests too deep (a recursive $ref inside allOf?)")
    if a is True or a == {}:
        return b
    if b is True or b == {}:
        return a
    if a is False or b is False:
        return False
    if not isinstance(a, dict) or not isinstance(b, dict):
        raise GrammarError("allOf entries must be schemas (objects or booleans)")
    a, b = _expand(a, compiler, depth), _expand(b, compiler, depth)
    if isinstance(a, bool) or isinstance(b, bool):
        return merge(a, b, compiler, depth + 1)
    if "anyOf" in a or "oneOf" in a or "anyOf" in b or "oneOf" in b:
        # (A1 | A2) & B = (A1 & B) | (A2 & B)
        outer, other = (a, b) if ("anyOf" in a or "oneOf" in a) else (b, a)
        key = "anyOf" if "anyOf" in outer else "oneOf"
        rest = {k: v for k, v in outer.items() if k != key}
        return {"anyOf": [merge(merge(rest, branch, compiler, depth + 1), other, compiler, depth + 1)
                          for branch in _list(outer[key], key)]}
    out = dict(a)
    for key, value in b.items():
        if key in ("properties", "additionalProperties", "exclusiveMinimum", "exclusiveMaximum"):
            continue
        if key in ANNOTATIONS or (key not in HANDLED and key not in UNSUPPORTED_KEYWORDS):
            continue  # annotations and unknown keywords (x-...) constrain nothing
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if mine == value:
            continue
        if key == "type":
            ta, tb = set(_types({"type": mine})), set(_types({"type": value}))
            both = ta & tb
            if "number" in ta and "integer" in tb or "integer" in ta and "number" in tb:
                both.add("integer")
            out[key] = [t for t in TYPES if t in both]
            if not out[key]:
                return False
        elif key == "required":
            out[key] = list(dict.fromkeys(list(mine) + list(value)))
        elif key in ("minimum", "minLength", "minItems"):
            out[key] = max(mine, value)
        elif key in ("maximum", "maxLength", "maxItems"):
            out[key] = min(mine, value)
        elif key == "enum":
            out[key] = [v for v in mine if v in value]
        elif key == "const":
            return False
        elif key in ("items", "additionalItems") and isinstance(mine, (dict, bool)) and isinstance(value, (dict, bool)):
            out[key] = merge(mine, value, compiler, depth + 1)
        else:
            raise GrammarError(f"allOf: cannot merge two different {key!r} constraints")
    if "properties" in a or "properties" in b or "additionalProperties" in a or "additionalProperties" in b:
        pa, pb = a.get("properties") or {}, b.get("properties") or {}
        xa, xb = a.get("additionalProperties", True), b.get("additionalProperties", True)
        props = {}
        for name in list(pa) + [n for n in pb if n not in pa]:
            props[name] = merge(pa.get(name, xa), pb.get(name, xb), compiler, depth + 1)
        out["properties"] = props
        out["additionalProperties"] = merge(xa, xb, compiler, depth + 1)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in b and key not in a:
            out[key] = b[key]
        elif key in a and key in b and a[key] != b[key]:
            if isinstance(a[key], bool) or isinstance(b[key], bool):
                raise GrammarError(f"allOf: cannot merge two different {key!r} constraints")
            out[key] = max(a[key], b[key]) if key == "exclusiveMinimum" else min(a[key], b[key])
    return out


def _expand(schema: dict, compiler: _Compiler, depth: int) -> Any:
    """A schema with its $ref and allOf folded in (so it can be merged key by key); may be a bool."""
    schema = dict(schema)
    if "$ref" in schema:
        target = compiler.resolve(schema.pop("$ref"))
        schema = merge(target, schema, compiler, depth + 1)
    if isinstance(schema, dict) and "allOf" in schema:
        parts = _list(schema.pop("allOf"), "allOf")
        for part in parts:
            schema = merge(schema, part, compiler, depth + 1)
    return schema


# -- helpers -----------------------------------------------------------------------------------------


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if t is None:
        return list(TYPES)
    return [t] if isinstance(t, str) else list(t)


def _json_type_ok(value: Any, types: list[str]) -> bool:
    kind = ("null" if value is None else "boolean" if isinstance(value, bool) else
            "integer" if isinstance(value, int) else "number" if isinstance(value, float) else
            "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object")
    if kind == "integer":
        return "integer" in types or "number" in types
    if kind == "number" and "integer" in types and float(value).is_integer():
        return True
    return kind in types


def _satisfies(value: Any, schema: dict) -> bool:
    """Whether an enum/const value meets the sibling type keywords (checked with jsonschema if present)."""
    try:
        import jsonschema
    except ImportError:  # without the validator, keep the value only if no sibling keyword applies to it
        return False
    return jsonschema.Draft202012Validator({k: v for k, v in schema.items() if k not in ("enum", "const")}) \
        .is_valid(value)


def _bounds(schema: dict, integer: bool) -> tuple[int | None, int | None]:
    """Integer bounds, closed: an open bound moves one step inward."""
    lo, lo_open, hi, hi_open = _real_bounds(schema)
    if lo is not None and lo_open:
        lo += 1
    if hi is not None and hi_open:
        hi -= 1
    return lo, hi


def _real_bounds(schema: dict) -> tuple[Any, bool, Any, bool]:
    """(lo, lo exclusive, hi, hi exclusive) from both the draft-4 and the draft-6+ spellings."""
    lo = hi = None
    lo_open = hi_open = False
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = schema.get(key)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise GrammarError(f"{key} must be a finite number, got {value!r}")
    if isinstance(schema.get("minimum"), (int, float)):
        lo, lo_open = schema["minimum"], schema.get("exclusiveMinimum") is True
    if isinstance(schema.get("maximum"), (int, float)):
        hi, hi_open = schema["maximum"], schema.get("exclusiveMaximum") is True
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool) and (lo is None or ex_lo >= lo):
        lo, lo_open = ex_lo, True
    if isinstance(ex_hi, (int, float)) and not isinstance(ex_hi, bool) and (hi is None or ex_hi <= hi):
        hi, hi_open = ex_hi, True
    # Fractional bounds are rounded inward to integers, closed (stricter, never looser).
    if isinstance(lo, float) and not lo.is_integer():
        lo, lo_open = math.ceil(lo), False
    if isinstance(hi, float) and not hi.is_integer():
        hi, hi_open = math.floor(hi), False
    return (None if lo is None else int(lo)), lo_open, (None if hi is None else int(hi)), hi_open


def _nonneg_int(schema: dict, key: str, default: Any) -> Any:
    value = schema.get(key, default)
    if value is default:
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GrammarError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _trivial(key: str, schema: dict) -> bool:
    """Unsupported keywords whose value constrains nothing are allowed."""
    value = schema[key]
    if key in ("patternProperties", "dependentSchemas", "dependentRequired", "dependencies"):
        return value == {}
    if key == "uniqueItems":
        return value is False
    if key in ("minProperties", "minContains"):
        return value == 0
    if key == "propertyNames":
        return value is True or value == {}
    if key in ("then", "else"):
        return "if" not in schema
    if key == "if":
        return "then" not in schema and "else" not in schema
    if key in ("unevaluatedProperties", "unevaluatedItems"):
        return value is True or value == {}
    return False


def _json_text(text: str) -> str:
    """`json.dumps(text, ensure_ascii=False)`, without the new encoder that call builds each time."""
    return json.encoder.encode_basestring(text)


def _list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise GrammarError(f"{key} must be an array, got {json.dumps(value)[:80]}")
    return value


def _hint(ref: str) -> str:
    return "ref_" + re.sub(r"[^A-Za-z0-9_]", "_", ref.rsplit("/", 1)[-1] or "root")[:40]


def _unanchored(pattern: str) -> str:
    """JSON Schema patterns match anywhere unless anchored: `abc` means `.*abc.*` as a full match."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0: len(pattern) - 1 if end else len(pattern)]
    anything = r"[\s\S]*"
    return ("" if start else anything) + "(" + body + ")" + ("" if end else anything)


def _subtract_points(ranges: list[tuple[int, int]], points: set[int]) -> list[tuple[int, int]]:
    """Sorted disjoint `ranges` without `points` (still sorted and disjoint)."""
    out = []
    cuts = sorted(points)
    for lo, hi in ranges:
        for p in cuts:
            if lo <= p <= hi:
                if lo < p:
                    out.append((lo, p - 1))
                lo = p + 1
        if lo <= hi:
            out.append((lo, hi))
    return out


def _key_escapes(units: list[str]) -> list[str]:
    """The escapes a canonical key may use (json.dumps' short forms and \\u00XX), minus `units`."""
    escapes = [e for e in ('\\"', "\\\\", "\\b", "\\f", "\\n", "\\r", "\\t") if e not in units]
    return escapes + ["\\u%04x" % c for c in range(0x20) if c not in _ESCAPES and "\\u%04x" % c not in units]


def _units(text: str) -> list[str]:
    """A JSON string's content (as json.dumps writes it) split into one unit per character."""
    units, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            size = 6 if text[i + 1] == "u" else 2
            units.append(text[i:i + size])
            i += size
        else:
            units.append(text[i])
            i += 1
    return units


def _join(items: list[Any], sep: Any, b: GrammarBuilder) -> list[Any]:
    out: list[Any] = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.append(item)
    return out
