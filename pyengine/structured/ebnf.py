"""GBNF grammars (llama.cpp's EBNF dialect) to `Grammar`s; the start rule is `root`.

    root   ::= "{" ws pair ("," ws pair)* "}"      # a comment
    pair   ::= name ws ":" ws [0-9]+
    name   ::= [a-zA-Z_] [a-zA-Z0-9_-]{0,15}
    ws     ::= [ \\t\\n]*

    name ::= body           a rule; names are letters, digits, '-' and '_'
    "text"                  a literal, escapes \\n \\r \\t \\\\ \\" \\[ \\] \\xhh \\uhhhh \\Uhhhhhhhh
    [a-z0-9_] [^"\\\\]        a character class (code points), negated with ^
    .                       any character
    ( ... )  a | b          grouping, alternation
    * + ? {m} {m,} {m,n}    repetition (bounded forms up to MAX_REPEAT)
    # ...                   a comment to the end of the line

A rule's body may span lines; it ends where the next `name ::=` begins (llama.cpp requires a
line break inside parentheses or after `|`; every grammar it accepts is accepted here).
An undefined rule, a missing `root`, a rule defined twice or a syntax error is a `GrammarError`
with the line and column; nesting deeper than MAX_EBNF_DEPTH is a `GrammarLimitError`.
"""

from __future__ import annotations

import re
from typing import Callable

from pyengine.structured.grammar import Element, Grammar, GrammarBuilder, GrammarError, GrammarLimitError

MAX_EBNF_DEPTH = 100
MAX_EBNF_LENGTH = 1_000_000

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DEFINITION = re.compile(r"([A-Za-z0-9_-]+)[ \t]*::=")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^",
            "/": "/", "'": "'"}


def ebnf_grammar(text: str, start: str = "root") -> Grammar:
    """The grammar of GBNF `text`, starting at rule `start`."""
    if len(text) > MAX_EBNF_LENGTH:
        raise GrammarLimitError(f"grammar longer than {MAX_EBNF_LENGTH} characters")
    return _Parser(text).parse(start)


class GroupDepth:
    """How deep a grammar parser is in nested groups; past MAX_EBNF_DEPTH the grammar is refused."""

    depth = 0

    def nested(self, parse: Callable[[], Element]) -> Element:
        """`parse()`, one group deeper."""
        self.depth += 1
        if self.depth > MAX_EBNF_DEPTH:
            raise GrammarLimitError(f"grammar nests groups deeper than {MAX_EBNF_DEPTH}")
        e = parse()
        self.depth -= 1
        return e


class _Parser(GroupDepth):
    def __init__(self, text: str) -> None:
        self.t, self.i, self.depth = text, 0, 0
        self.b = GrammarBuilder()
        self.defined: set[str] = set()

    def error(self, message: str) -> GrammarError:
        line = self.t.count("\n", 0, self.i) + 1
        column = self.i - (self.t.rfind("\n", 0, self.i) + 1) + 1
        return GrammarError(f"grammar line {line}, column {column}: {message}")

    def space(self) -> None:
        """Skip whitespace (newlines included) and comments."""
        while self.i < len(self.t):
            c = self.t[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                end = self.t.find("\n", self.i)
                self.i = len(self.t) if end < 0 else end + 1
            else:
                break

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def parse(self, start: str) -> Grammar:
        # Reserve every defined name first, so generated helper rules never take one.
        for m in _DEFINITION.finditer(self.t):
            self.b.rules.setdefault(m.group(1), [])
        self.space()
        while self.i < len(self.t):
            m = _DEFINITION.match(self.t, self.i)
            if not m:
                raise self.error("expected a rule definition 'name ::= ...'")
            name = m.group(1)
            if name in self.defined:
                raise self.error(f"rule '{name}' is defined twice")
            self.defined.add(name)
            self.i = m.end()
            self.b.define(name, self.alternation())
            if self.peek() == ")":
                raise self.error("unbalanced ')'")
        if start not in self.defined:
            raise GrammarError(f"the grammar has no '{start}' rule")
        return self.b.build(start)

    def at_rule_end(self) -> bool:
        return self.peek() is None or self.peek() in "|)" or _DEFINITION.match(self.t, self.i) is not None

    def alternation(self) -> Element:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else self.b.alt(*branches)

    def sequence(self) -> Element:
        items: list[Element] = []
        self.space()
        while not self.at_rule_end():
            items.append(self.postfix(self.atom()))
            self.space()
        return self.b.seq(*items)

    def postfix(self, e: Element) -> Element:
        while True:
            c = self.peek()
            if c == "*":
                e = self.b.star(e)
            elif c == "+":
                e = self.b.plus(e)
            elif c == "?":
                e = self.b.opt(e)
            elif c == "{":
                m = re.compile(r"\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}").match(self.t, self.i)
                if not m:
                    raise self.error("expected {m}, {m,} or {m,n}")
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                self.i = m.end()
                e = self.b.repeat(e, lo, hi)
                continue
            else:
                return e
            self.i += 1

    def atom(self) -> Element:
        c = self.peek()
        if c == '"':
            return self.b.literal(self.literal())
        if c == "[":
            return self.char_class()
        if c == ".":
            self.i += 1
            return self.b.any_char()
        if c == "(":
            self.i += 1
            e = self.nested(self.alternation)
            if self.peek() != ")":
                raise self.error("expected ')'")
            self.i += 1
            return e
        m = _NAME.match(self.t, self.i)
        if m:
            name = m.group(0)
            if name not in self.b.rules:
                raise self.error(f"undefined rule '{name}'")
            self.i = m.end()
            return self.b.ref(name)
        raise self.error(f"unexpected {c!r}")

    def char(self, close: str) -> int:
        """One (possibly escaped) character inside a literal or class, as a code point."""
        c = self.peek()
        if c is None or c == "\n" and close == '"':
            raise self.error("unterminated literal" if close == '"' else "unterminated character class")
        if c != "\\":
            self.i += 1
            return ord(c)
        e = self.t[self.i + 1:self.i + 2]
        if e in "xuU" and e:
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = self.t[self.i + 2:self.i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits) \
                    or int(digits, 16) > 0x10FFFF:
                raise self.error(f"bad escape \\{e}{digits}")
            self.i += 2 + width
            return int(digits, 16)
        if e in _ESCAPES:
            self.i += 2
            return ord(_ESCAPES[e])
        raise self.error(f"unknown escape \\{e}")

    def literal(self) -> str:
        self.i += 1
        out = []
        while self.peek() != '"':
            out.append(chr(self.char('"')))
        self.i += 1
        return "".join(out)

    def char_class(self) -> Element:
        self.i += 1
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges = []
        while self.peek() != "]":
            lo = self.char("]")
            hi = lo
            if self.peek() == "-" and self.t[self.i + 1:self.i + 2] not in ("]", ""):
                self.i += 1
                hi = self.char("]")
                if hi < lo:
                    raise self.error("character range out of order")
            ranges.append((lo, hi))
        self.i += 1
        return self.b.char_class(ranges, negate=negate)
