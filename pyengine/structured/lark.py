"""Lark grammars (the subset that generation needs) to `Grammar`s.

A `structured_outputs.grammar` without `::=` is Lark rather than GBNF. Lark describes a parser:
rules (lowercase names) over terminals (uppercase names, string literals, regular expressions).
Read as a grammar to generate from, it is one context-free grammar over bytes:

    start: greeting " " NAME "!"?        // `start` is the start rule, else the first rule
    greeting: "hello" | "hi"i            # comments: // or #
    NAME: /[A-Z][a-z]+/                  # a terminal; its regex uses regex.py's dialect
    ?item: (NAME ",")* [NAME]            # ?rule, !rule: tree shaping only, ignored here

    name: expansion | expansion ...    a rule or terminal; alternatives may go on `|` lines
    "text"  'text'  "text"i            a literal (Python escapes); `i`: any letter case
    "a".."z"                           a range of single characters
    /regex/                            a regular expression (no flags)
    ( ... )  [ ... ]                   grouping; [ ] is optional
    ? * +  ~ n  ~ n..m                 repetition
    -> alias                           names a tree node: ignored here

Lark's lexer is not modelled: there is no implicit whitespace between items, so what the model
writes is exactly what the rules spell. Anything else is a `GrammarError` that names the feature:
directives (%import, %ignore, %declare, %override, %extend), templates (`name{x}`), priorities
(`NAME.2`), regex flags. An undefined name, a name defined twice or a syntax error is a
`GrammarError` with the line and column.
"""

from __future__ import annotations

import dataclasses
import re

from pyengine.structured.ebnf import MAX_EBNF_LENGTH, GroupDepth
from pyengine.structured.grammar import Element, Grammar, GrammarBuilder, GrammarError, GrammarLimitError
from pyengine.structured.regex import regex_element

__all__ = ["lark_grammar"]

SUPPORTED = ('rules and terminals, "strings", "a".."z", /regex/, alternation |, grouping ( ), [optional], '
             "?, *, +, ~ n..m, -> aliases")

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+|//[^\n]*|\#[^\n]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"i?|'(?:[^'\\\n]|\\.)*'i?)
  | (?P<regex>/(?:[^/\\\n]|\\.)+/[a-z]*)
  | (?P<number>[0-9]+)
  | (?P<op>\.\.|->|[:|()\[\]?*+~%{}.!,])
""", re.VERBOSE)


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@dataclasses.dataclass
class _Token:
    kind: str
    text: str
    offset: int


def lark_grammar(text: str) -> Grammar:
    """The grammar of Lark `text`, from `start` (or the first rule)."""
    if len(text) > MAX_EBNF_LENGTH:
        raise GrammarLimitError(f"grammar longer than {MAX_EBNF_LENGTH} characters")
    return _Parser(text).parse()


class _Parser(GroupDepth):
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.i = 0
        self.depth = 0
        self.b = GrammarBuilder()

    # -- errors and tokens ------------------------------------------------------------------------
    def error(self, message: str, offset: int | None = None) -> GrammarError:
        if offset is None:
            offset = self.tokens[self.i].offset if self.i < len(self.tokens) else len(self.text)
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return GrammarError(f"Lark grammar line {line}, column {column}: {message}")

    def unsupported(self, feature: str, offset: int | None = None) -> GrammarError:
        return self.error(f"unsupported Lark feature: {feature} (supported: {SUPPORTED})", offset)

    def _tokenize(self, text: str) -> list[_Token]:
        tokens, i = [], 0
        while i < len(text):
            m = _TOKEN.match(text, i)
            if m is None:
                self.tokens, self.i = [], 0
                raise self.error(f"unexpected {text[i]!r}", i)
            if m.lastgroup != "space":
                tokens.append(_Token(str(m.lastgroup), m.group(), i))
            i = m.end()
        return tokens

    def current(self) -> _Token:
        """The next token; the end of the text here is an error."""
        token = self.peek()
        if token is None:
            raise self.error("unexpected end of the grammar")
        return token

    def peek(self, ahead: int = 0) -> _Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def at(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token is not None and token.kind in ("op", "name") and token.text == text

    def accept(self, text: str) -> bool:
        """Takes the token `text` if it comes next; whether it did."""
        if self.at(text):
            self.i += 1
            return True
        return False

    def take(self, text: str) -> _Token:
        if not self.at(text):
            found = self.peek()
            raise self.error(f"expected {text!r}, found {found.text!r}" if found else f"expected {text!r} at the end")
        self.i += 1
        return self.tokens[self.i - 1]

    # -- definitions ------------------------------------------------------------------------------
    def definition_ahead(self) -> bool:
        """Does a definition (`name:`, `?name:`, `!name:`, `NAME.2:`, `name{...}:`) start here?
        As in Lark, a definition starts a line."""
        first = self.peek()
        if first is None or self.text[self.text.rfind("\n", 0, first.offset) + 1:first.offset].strip():
            return False
        ahead = 1 if self.at("?") or self.at("!") else 0
        token = self.peek(ahead)
        if token is None or token.kind != "name":
            return False
        follow = self.peek(ahead + 1)
        return follow is not None and follow.text in (":", ".", "{")

    def parse(self) -> Grammar:
        names = self._defined_names()
        for name in names:  # reserve them, so that helper rules never take one
            self.b.rules.setdefault(name, [])
        self.names = set(names)
        defined: set[str] = set()
        first_rule = None
        while self.i < len(self.tokens):
            if self.at("%"):
                directive = self.peek(1)
                raise self.unsupported(f"the directive %{directive.text if directive else ''}")
            if not self.definition_ahead():
                raise self.error("expected a definition 'name: ...'")
            if self.at("?") or self.at("!"):
                self.i += 1
            token = self.current()
            name = token.text
            self.i += 1
            if self.at("{"):
                raise self.unsupported(f"the template {name}{{...}}")
            if self.at("."):
                raise self.unsupported(f"the priority of {name} ({name}.N)")
            if name in defined:
                raise self.error(f"'{name}' is defined twice", token.offset)
            defined.add(name)
            if first_rule is None and not name.isupper():
                first_rule = name
            self.take(":")
            self.b.define(name, self.alternation())
            if self.at(")") or self.at("]"):
                raise self.error(f"unbalanced {self.current().text!r}")
        if not defined:
            raise GrammarError("the Lark grammar defines no rule")
        start = "start" if "start" in defined else first_rule or names[0]
        return self.b.build(start)

    def _defined_names(self) -> list[str]:
        """The names defined anywhere (a rule may use one defined below it), in order."""
        out, saved = [], self.i
        for self.i in range(len(self.tokens)):
            if self.definition_ahead():
                name = self.tokens[self.i + (1 if self.at("?") or self.at("!") else 0)].text
                if name not in out:
                    out.append(name)
        self.i = saved
        return out

    # -- expansions -------------------------------------------------------------------------------
    def alternation(self) -> Element:
        branches = [self.alias()]
        while self.at("|"):
            self.i += 1
            branches.append(self.alias())
        return branches[0] if len(branches) == 1 else self.b.alt(*branches)

    def alias(self) -> Element:
        e = self.sequence()
        if self.at("->"):  # names the tree node; the language is the same
            self.i += 1
            token = self.peek()
            if token is None or token.kind != "name":
                raise self.error("expected a name after '->'")
            self.i += 1
        return e

    def sequence(self) -> Element:
        items: list[Element] = []
        while True:
            token = self.peek()
            if token is None or token.text in ("|", ")", "]", "->", "%") or self.definition_ahead():
                return self.b.seq(*items)
            items.append(self.repetition(self.atom()))

    def repetition(self, e: Element) -> Element:
        while True:
            if self.accept("?"):
                e = self.b.opt(e)
            elif self.accept("*"):
                e = self.b.star(e)
            elif self.accept("+"):
                e = self.b.plus(e)
            elif self.accept("~"):
                lo = self.number()
                hi = self.number() if self.accept("..") else lo
                if hi < lo:
                    raise self.error(f"repetition ~ {lo}..{hi}: the upper bound is below the lower one")
                e = self.b.repeat(e, lo, hi)
            else:
                return e

    def number(self) -> int:
        token = self.peek()
        if token is None or token.kind != "number":
            raise self.error("expected a number")
        self.i += 1
        return int(token.text)

    def atom(self) -> Element:
        token = self.current()
        if token.kind == "op" and token.text in ("(", "["):
            self.i += 1
            e = self.nested(self.alternation)
            self.take(")" if token.text == "(" else "]")
            return e if token.text == "(" else self.b.opt(e)
        if token.kind == "string":
            self.i += 1
            return self.string(token)
        if token.kind == "regex":
            self.i += 1
            body, _, flags = token.text[1:].rpartition("/")
            if flags:
                raise self.unsupported(f"the regex flags /.../{flags}", token.offset)
            try:
                return regex_element(self.b, body.replace("\\/", "/"))
            except GrammarLimitError:
                raise
            except GrammarError as exc:
                raise self.error(f"regex {token.text}: {exc}", token.offset) from None
        if token.kind == "name":
            if token.text not in self.names:
                raise self.error(f"undefined name '{token.text}'", token.offset)
            self.i += 1
            return self.b.ref(token.text)
        raise self.error(f"unexpected {token.text!r}", token.offset)

    def string(self, token: _Token) -> Element:
        text, insensitive = self.literal(token)
        if self.at(".."):  # "a".."z"
            self.i += 1
            end = self.peek()
            if end is None or end.kind != "string":
                raise self.error("expected a string after '..'")
            self.i += 1
            last, _ = self.literal(end)
            if len(text) != 1 or len(last) != 1 or ord(last) < ord(text):
                raise self.error('a range "a".."z" needs two single characters, in order', token.offset)
            return self.b.char_class([(ord(text), ord(last))])
        if not insensitive:
            return self.b.literal(text)
        return self.b.seq(*[self.b.char_class([(ord(c.lower()), ord(c.lower())), (ord(c.upper()), ord(c.upper()))])
                            if c.lower() != c.upper() else self.b.literal(c) for c in text])

    def literal(self, token: _Token) -> tuple[str, bool]:
        """The text of a string token and whether it has the `i` flag. Escapes are Python's:
        \\n \\t \\r \\\\ \\" \\' \\xhh \\uhhhh \\Uhhhhhhhh; any other backslash stays a backslash."""
        raw, insensitive = token.text, token.text.endswith("i")
        if insensitive:
            raw = raw[:-1]

        def unescape(m: re.Match) -> str:
            e = m.group(1)
            if e[0] in "xuU":
                if len(e) == 1 or int(e[1:], 16) > 0x10FFFF:
                    raise self.error(f"bad escape \\{e} in {raw}", token.offset)
                return chr(int(e[1:], 16))
            return _ESCAPES.get(e, "\\" + e)

        return _ESCAPE.sub(unescape, raw[1:-1]), insensitive
