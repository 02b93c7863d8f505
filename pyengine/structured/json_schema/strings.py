"""Strings: lengths in characters, `pattern`, `format`, and embedding a regex inside a JSON string."""

from __future__ import annotations

from typing import Any

from pyengine.structured.grammar import Grammar, GrammarBuilder, GrammarError
from pyengine.structured.json_schema.keywords import nonneg_int, subtract_points

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
ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


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
        plain = subtract_points(list(e.ranges), unsafe)
        escaped = [c for c in sorted(unsafe) if any(lo <= c <= hi for lo, hi in e.ranges)]
        parts = [b.byte_set(plain)] if plain else []
        parts += [b.literal(ESCAPES.get(c, "\\u%04x" % c)) for c in escaped]
        return b.alt(*parts) if parts else b.byte_set([])

    for name, alternatives in grammar.rules.items():
        b.define(names[name], b.alt(*[b.seq(*[element(e) for e in alt]) for alt in alternatives]))
    return b.ref(names[grammar.start])


class Strings:
    """The string grammars (a mixin of `SchemaCompiler`: uses its builder `b` and shared pieces)."""

    def string(self, schema: dict) -> Any:
        b = self.b
        min_len = nonneg_int(schema, "minLength", 0)
        max_len = nonneg_int(schema, "maxLength", None)
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


def _unanchored(pattern: str) -> str:
    """JSON Schema patterns match anywhere unless anchored: `abc` means `.*abc.*` as a full match."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0: len(pattern) - 1 if end else len(pattern)]
    anything = r"[\s\S]*"
    return ("" if start else anything) + "(" + body + ")" + ("" if end else anything)

