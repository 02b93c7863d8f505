"""Regular expressions to grammars: the whole output must match (`re.fullmatch` semantics).

Dialect: a subset of Python's `re` with the `re.ASCII` meaning of the shorthand classes.

    literals, escapes      a  \\.  \\n \\t \\r \\f \\v \\0  \\xhh \\uhhhh \\Uhhhhhhhh
    classes                [abc] [a-z] [^...]  \\d \\w \\s \\D \\W \\S (ASCII: \\d = [0-9], \\w = [A-Za-z0-9_])
    any character          .   (any code point but a newline, as without re.DOTALL)
    groups                 (...)  (?:...)  (?P<name>...)  (?<name>...)   (all just group)
    alternation            a|b    (an empty branch is allowed)
    quantifiers            * + ? {m} {m,} {,n} {m,n}, lazy forms (*? +? ?? {m,n}?) treated as greedy
    anchors                ^ \\A at the start of a top-level branch, $ \\Z \\z at its end (no-ops then)

Rejected with a `GrammarError` naming the construct: lookarounds, backreferences, word
boundaries, inline flags, conditionals, possessive quantifiers, \\p{...} and anchors elsewhere.
Limits: MAX_REGEX_DEPTH nested groups, MAX_REGEX_LENGTH characters, and the grammar limits
(repetition bounds up to MAX_REPEAT) as `GrammarLimitError`.
"""

from __future__ import annotations

from typing import Any

from pyengine.structured.grammar import Element, Grammar, GrammarBuilder, GrammarError, GrammarLimitError

MAX_REGEX_DEPTH = 100
MAX_REGEX_LENGTH = 100_000

DIGIT = [(0x30, 0x39)]
WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE = [(0x09, 0x0D), (0x20, 0x20)]
SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "0": "\0"}
UNSUPPORTED_ESCAPES = {"b": "word boundaries (\\b)", "B": "word boundaries (\\B)", "p": "Unicode properties (\\p)",
                       "P": "Unicode properties (\\P)", "G": "\\G", "N": "named characters (\\N)"}


def regex_grammar(pattern: str) -> Grammar:
    """The grammar of the strings `pattern` fully matches."""
    b = GrammarBuilder()
    return b.build(regex_element(b, pattern))


def regex_element(b: GrammarBuilder, pattern: str) -> Element:
    """`pattern` as an element of a grammar being built (JSON Schema's `pattern` uses this)."""
    return parse_with(b, pattern)


def parse_with(b: Any, pattern: str, anchors: bool = False) -> Any:
    """`pattern` built with `b`'s combinators (a GrammarBuilder, or automaton.py's terms). With
    `anchors`, `^ \\A $ \\Z \\z` may stand anywhere and become `b.anchor("^" or "$")`."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise GrammarLimitError(f"regex longer than {MAX_REGEX_LENGTH} characters")
    return _Parser(b, pattern, anchors).parse()


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, nxt = [], 0
    for lo, hi in sorted(ranges):
        if nxt < lo:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= 0x10FFFF:
        out.append((nxt, 0x10FFFF))
    return out


class _Parser:
    """Recursive descent: alternation -> concatenation -> quantified atom."""

    def __init__(self, b: Any, pattern: str, anchors: bool = False) -> None:
        self.b, self.p, self.i, self.depth, self.anchors = b, pattern, 0, 0, anchors

    def error(self, message: str) -> GrammarError:
        return GrammarError(f"regex {self.p!r}: {message} at position {self.i}")

    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.p[j] if j < len(self.p) else None

    def parse(self) -> Element:
        e = self.alternation(top=True)
        if self.i < len(self.p):  # only a stray ')' stops an alternation early
            raise self.error("unbalanced parenthesis")
        return e

    def alternation(self, top: bool = False) -> Element:
        branches = [self.concatenation(top)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concatenation(top))
        return branches[0] if len(branches) == 1 else self.b.alt(*branches)

    def concatenation(self, top: bool) -> Element:
        items: list[Element] = []
        start = self.i
        while self.peek() is not None and self.peek() not in "|)":
            c = self.peek()
            if self.anchors and (c in "^$" or self.p[self.i:self.i + 2] in ("\\A", "\\Z", "\\z")):
                items.append(self.b.anchor("^" if c == "^" or self.p.startswith("\\A", self.i) else "$"))
                self.i += 1 if c in "^$" else 2
                continue
            if c == "^" or self.p.startswith("\\A", self.i):
                if not (top and self.i == start):
                    raise self.error("an anchor is supported only at the start of the regex")
                self.i += 1 if c == "^" else 2
                start = self.i
                continue
            if c == "$" or self.p.startswith("\\Z", self.i) or self.p.startswith("\\z", self.i):
                self.i += 1 if c == "$" else 2
                if not (top and (self.peek() is None or self.peek() == "|")):
                    raise self.error("an anchor is supported only at the end of the regex")
                continue
            items.append(self.quantified())
        return self.b.seq(*items)

    def quantified(self) -> Element:
        atom = self.atom()
        quantifier = self.quantifier()
        if quantifier is None:
            return atom
        if self.peek() == "?":  # lazy: same language as greedy under a full match
            self.i += 1
        elif self.peek() == "+":
            raise self.error("possessive quantifiers are not supported")
        if self.quantifier(peek_only=True):
            raise self.error("multiple repeat")
        lo, hi = quantifier
        if (lo, hi) == (0, None):
            return self.b.star(atom)
        if (lo, hi) == (1, None):
            return self.b.plus(atom)
        if (lo, hi) == (0, 1):
            return self.b.opt(atom)
        return self.b.repeat(atom, lo, hi)

    def quantifier(self, peek_only: bool = False) -> tuple[int, int | None] | None:
        c = self.peek()
        simple = {"*": (0, None), "+": (1, None), "?": (0, 1)}
        if c in simple:
            if not peek_only:
                self.i += 1
            return simple[c]
        if c == "{":
            close = self.p.find("}", self.i)
            body = self.p[self.i + 1:close] if close > 0 else ""
            lo_text, comma, hi_text = body.partition(",")
            if close > 0 and (lo_text.isdigit() or (comma and (lo_text == "" or lo_text.isdigit()))) \
                    and (hi_text == "" or hi_text.isdigit()) and body.isascii():
                if not comma and not lo_text:
                    return None
                lo = int(lo_text) if lo_text else 0
                hi = (int(hi_text) if hi_text else None) if comma else lo
                if hi is not None and hi < lo:
                    raise self.error("min repeat greater than max repeat")
                if not peek_only:
                    self.i = close + 1
                return lo, hi
        return None  # a '{' that is not a quantifier is a literal

    def atom(self) -> Element:
        c = self.peek()
        if c in ("*", "+", "?") or (c == "{" and self.quantifier(peek_only=True)):
            raise self.error("nothing to repeat")
        if c == "(":
            return self.group()
        if c == "[":
            return self.b.char_class(self.char_class())
        if c == ".":
            self.i += 1
            return self.b.char_class([(0x0A, 0x0A)], negate=True)
        if c == "\\":
            ranges = self.escape(in_class=False)
            return self.b.char_class(ranges)
        self.i += 1
        return self.b.literal(c)

    def group(self) -> Element:
        self.i += 1
        if self.peek() == "?":
            head = self.p[self.i:self.i + 3]
            if head.startswith("?:"):
                self.i += 2
            elif head.startswith("?P<") or (head.startswith("?<") and head[2:3] not in ("=", "!")):
                close = self.p.find(">", self.i)
                if close < 0:
                    raise self.error("unterminated group name")
                self.i = close + 1
            elif head.startswith("?=") or head.startswith("?!"):
                raise self.error("lookahead assertions are not supported")
            elif head.startswith("?<"):
                raise self.error("lookbehind assertions are not supported")
            elif head.startswith("?P="):
                raise self.error("backreferences are not supported")
            elif head.startswith("?("):
                raise self.error("conditional groups are not supported")
            elif head.startswith("?#"):
                raise self.error("comment groups are not supported")
            else:
                raise self.error("inline flags are not supported")
        self.depth += 1
        if self.depth > MAX_REGEX_DEPTH:
            raise GrammarLimitError(f"regex nests groups deeper than {MAX_REGEX_DEPTH}")
        e = self.alternation()
        self.depth -= 1
        if self.peek() != ")":
            raise self.error("missing ), unterminated subpattern")
        self.i += 1
        return e

    def char_class(self) -> list[tuple[int, int]]:
        """'[...]' -> code point ranges (negation already applied)."""
        self.i += 1
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise self.error("unterminated character set")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            lo = self.class_atom()
            if self.peek() == "-" and self.peek(1) not in (None, "]") and isinstance(lo, int):
                self.i += 1
                hi = self.class_atom()
                if not isinstance(hi, int):
                    raise self.error("bad character range")
                if hi < lo:
                    raise self.error(f"bad character range {chr(lo)}-{chr(hi)}")
                ranges.append((lo, hi))
            elif isinstance(lo, int):
                ranges.append((lo, lo))
            else:
                ranges.extend(lo)
        return _complement(ranges) if negate else ranges

    def class_atom(self) -> int | list[tuple[int, int]]:
        """One code point, or the ranges of a shorthand class like \\d."""
        if self.peek() == "\\":
            ranges = self.escape(in_class=True)
            return ranges[0][0] if len(ranges) == 1 and ranges[0][0] == ranges[0][1] else ranges
        c = self.peek()
        self.i += 1
        return ord(c)

    def escape(self, in_class: bool) -> list[tuple[int, int]]:
        """After a backslash: the code point ranges it stands for."""
        self.i += 1
        c = self.peek()
        if c is None:
            raise self.error("bad escape (end of pattern)")
        self.i += 1
        shorthand = {"d": DIGIT, "w": WORD, "s": SPACE}
        if c in shorthand:
            return list(shorthand[c])
        if c.lower() in shorthand:
            return _complement(shorthand[c.lower()])
        if c in SIMPLE_ESCAPES and not (c == "0" and self.peek() is not None and self.peek() in "01234567"):
            return [(ord(SIMPLE_ESCAPES[c]),) * 2]
        if c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            digits = self.p[self.i:self.i + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"bad escape \\{c}{digits}")
            self.i += width
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self.error(f"bad escape \\{c}{digits}")
            return [(code, code)]
        if c.isdigit():
            raise self.error("backreferences and octal escapes are not supported")
        if c in UNSUPPORTED_ESCAPES and not (in_class and c == "b"):
            raise self.error(f"{UNSUPPORTED_ESCAPES[c]} are not supported")
        if in_class and c == "b":
            return [(0x08, 0x08)]
        if c.isascii() and c.isalpha():
            raise self.error(f"bad escape \\{c}")
        return [(ord(c), ord(c))]
