"""Context-free grammars over bytes: the one form every front end (regex, choice, EBNF, JSON Schema) compiles to.

A `Grammar` maps rule names to alternatives; an alternative is a sequence of elements, each either a
`ByteSet` (one byte from a set of inclusive ranges) or a `Ref` to another rule; the empty sequence is
epsilon. Parsing is over *bytes*, not characters or lexemes, so a token whose bytes cross a lexical
boundary (`",` or `"}` in JSON) needs no special case, and a character class is spelled out as the
UTF-8 byte sequences of its code points.

    b = GrammarBuilder()
    digits = b.plus(b.char_class([(ord("0"), ord("9"))]))
    g = b.build(b.seq(b.literal("n="), digits))      # start rule ::= "n=" [0-9]+
    matches(g, b"n=42")  -> True     (matches: the reference recognizer, in matcher.py)

`GrammarBuilder` keeps grammars small for the Earley matcher: sequences and alternations built from
anonymous pieces are inlined, single-byte alternatives merge into one `ByteSet`, and `*` / `+` are
left-recursive (constant work per repetition in Earley, where right recursion is quadratic).

A bounded repetition `e{m,n}` is one element, `Repeat(rule, m, n)`, not n copies of `e`: the
matchers carry a count in the parse item that stands before it (how many `e` it has read), so
`[^"]{0,100000}` is as small, and as quick to mask, as `[^"]{0,10}`.

Limits (each raises `GrammarLimitError`, which the server turns into a 400):

    MAX_RULES           rules in one grammar
    MAX_SYMBOLS         elements summed over all alternatives
    MAX_REPEAT          the bound of one counted repetition {m,n} (m and n both); a count is a
                        number in a parse item, so the cap only keeps it a sane 32-bit number:
                        no text a model writes comes near a million repetitions
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
from typing import Union

MAX_RULES = 100_000
MAX_SYMBOLS = 2_000_000
MAX_REPEAT = 1_000_000
MAX_INLINE = 16  # an anonymous sequence up to this many elements is copied into its users
MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)


class GrammarError(ValueError):
    """An invalid regex, grammar or schema; the message says what and where."""


class GrammarLimitError(GrammarError):
    """A documented limit was hit (rule or state count, nesting depth, repetition bound)."""


class GrammarInternalError(RuntimeError):
    """A bug in a grammar kernel (a broken invariant, or a panic the Rust twin caught), never the input's fault."""


@dataclasses.dataclass(frozen=True)
class ByteSet:
    """One byte from the union of inclusive ranges, e.g. `((0x30, 0x39),)` for an ASCII digit."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, byte: int) -> bool:
        return any(lo <= byte <= hi for lo, hi in self.ranges)

    @staticmethod
    def of(ranges) -> "ByteSet":
        """Sorted, merged, validated ranges."""
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges):
            if not 0 <= lo <= hi <= 255:
                raise GrammarError(f"invalid byte range ({lo}, {hi})")
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return ByteSet(tuple((lo, hi) for lo, hi in merged))


@dataclasses.dataclass(frozen=True)
class Ref:
    """A reference to the rule `name`."""

    name: str


@dataclasses.dataclass(frozen=True)
class Repeat:
    """The rule `name`, `min` to `max` times in a row (a counted repetition, 0 <= min <= max)."""

    name: str
    min: int
    max: int


class _Anonymous:
    """A piece built by `GrammarBuilder.seq` / `alt` (and literals, classes): its alternatives, not a rule yet.

    Most pieces are only ever copied into their users (a sequence's elements spliced into a longer
    sequence, an alternation's branches into a larger alternation), so none becomes a rule; the
    builder gives a piece a rule, once, only where it must be referenced (`_rule_of`). Never part of
    a built `Grammar`.
    """

    __slots__ = ("alternatives", "ref")

    def __init__(self, alternatives: list[tuple["Element", ...]]) -> None:
        self.alternatives = alternatives
        self.ref: Ref | None = None  # its rule, once it has one


Element = Union[ByteSet, Ref, Repeat, _Anonymous]  # a built Grammar holds only ByteSet, Ref and Repeat
_NAMED = (Ref, Repeat)  # the elements that name a rule


class SymbolKind(enum.IntEnum):
    """What a symbol of `Grammar.to_flat()` stands for: a rule, one byte from a byte set, or a counted
    repetition of a rule."""

    RULE = 0
    BYTES = 1
    REPEAT = 2


FlatSymbol = tuple[int, int]  # (kind, index), kind a SymbolKind value: see `Grammar.to_flat`


@dataclasses.dataclass
class Grammar:
    """name -> alternatives (each a tuple of elements; `()` is epsilon), and the start rule's name."""

    rules: dict[str, list[tuple[Element, ...]]]
    start: str

    def to_flat(self) -> tuple[int, list[tuple[int, tuple[FlatSymbol, ...]]], list[list[tuple[int, int]]],
                               list[tuple[int, int, int]], list[str]]:
        """The grammar as plain numbers, for the matchers: (start, alternatives, byte_sets, repeats, names).

        Rules are numbered in `self.rules` order (`names[i]` is rule i). `alternatives` lists every
        alternative as `(lhs, symbols)`, `symbols` a tuple of `(kind, index)` pairs: `(SymbolKind.RULE,
        i)` is rule i, `(SymbolKind.BYTES, k)` one byte of `byte_sets[k]` (inclusive ranges),
        `(SymbolKind.REPEAT, j)` the repetition `repeats[j] = (rule, min, max)`; byte sets (by their
        ranges) and repetitions are numbered in the order they first occur. Computed once per
        grammar (a grammar is not changed after `build`).

        The Python twin reads this; the Rust kernel reads the same numbers straight from `rules`
        (rust/python/grammar.rs), which spares a compile building this form only to have it read
        back a tuple at a time. A parity test holds the two readings equal.

        The kinds are stored as plain ints and the symbols as tuples: tuples of ints are dropped from
        the garbage collector's lists, so the flat form of a large cached grammar (10k properties:
        ~100k tuples) adds nothing to the full collections that pause every thread, the event loop's
        included.
        """
        flat = self.__dict__.get("_flat")  # built once: every matcher of this grammar needs it
        if flat is not None:
            return flat
        names = list(self.rules)
        rule_kind, bytes_kind = SymbolKind.RULE.value, SymbolKind.BYTES.value
        rules = {name: (rule_kind, i) for i, name in enumerate(names)}
        byte_sets: dict[tuple, FlatSymbol] = {}  # keyed by the ranges: a tuple hashes in C
        repeats: dict[tuple[int, int, int], FlatSymbol] = {}
        alternatives = []
        for name, rule_alternatives in self.rules.items():
            lhs = rules[name][1]
            for alt in rule_alternatives:
                symbols = []
                for e in alt:
                    if e.__class__ is Ref:
                        symbols.append(rules[e.name])
                    elif e.__class__ is Repeat:
                        key = (rules[e.name][1], e.min, e.max)
                        symbol = repeats.get(key)
                        if symbol is None:
                            symbol = repeats[key] = (SymbolKind.REPEAT.value, len(repeats))
                        symbols.append(symbol)
                    else:
                        symbol = byte_sets.get(e.ranges)
                        if symbol is None:
                            symbol = byte_sets[e.ranges] = (bytes_kind, len(byte_sets))
                        symbols.append(symbol)
                alternatives.append((lhs, tuple(symbols)))
        flat = (rules[self.start][1], alternatives, [list(ranges) for ranges in byte_sets], list(repeats), names)
        self.__dict__["_flat"] = flat
        return flat

    def __str__(self) -> str:
        """GBNF-like text, one rule per line, start rule first."""
        def show(e: Element) -> str:
            if isinstance(e, Ref):
                return e.name
            if isinstance(e, Repeat):
                return f"{e.name}{{{e.min},{e.max}}}"
            return "[" + "".join(_show_range(lo, hi) for lo, hi in e.ranges) + "]"

        order = [self.start] + [n for n in self.rules if n != self.start]
        return "\n".join(f"{n} ::= " + " | ".join(" ".join(map(show, alt)) or '""' for alt in self.rules[n])
                         for n in order)


def _show_range(lo: int, hi: int) -> str:
    def one(b: int) -> str:
        return chr(b) if 0x21 <= b < 0x7F and chr(b) not in "]\\^-" else f"\\x{b:02X}"
    return one(lo) if lo == hi else f"{one(lo)}-{one(hi)}"


EPSILON: tuple[Element, ...] = ()


class GrammarBuilder:
    """Combinators that build a `Grammar`; every method returns an `Element` to compose further."""

    def __init__(self) -> None:
        self.rules: dict[str, list[tuple[Element, ...]]] = {}
        self._pieces: dict[str, _Anonymous] = {}  # rule name -> the anonymous piece it was made for
        self._counter = itertools.count()
        self._symbols = 0

    # -- rules ------------------------------------------------------------------------------------
    def new_rule(self, hint: str = "r") -> str:
        """A fresh rule name (define it later with `define`; reference it now with `ref`)."""
        while True:
            name = f"{hint}_{next(self._counter)}"
            if name not in self.rules:
                self.rules[name] = []  # reserved; `define` fills it
                return name

    def define(self, name: str, e: Element) -> None:
        """name ::= e. The rule may already be referenced; defining it twice is an error."""
        if self.rules.get(name):
            raise GrammarError(f"rule '{name}' is defined twice")
        self._set(name, self._alternatives(e))

    def ref(self, name: str) -> Ref:
        return Ref(name)

    def rule(self, alternatives: list[tuple[Element, ...]], hint: str = "r") -> Ref:
        """A new rule with exactly these alternatives: tuples of ByteSets and Refs, as a `Grammar`
        holds them (nothing merged or deduplicated). For front ends that generate many alternatives
        at once, where going through `seq` and `alt` for each would cost more than the result."""
        name = self.new_rule(hint)
        self._set(name, alternatives)
        return Ref(name)

    def as_items(self, e: Element) -> tuple[Element, ...]:
        """`e` as the elements of a sequence, exactly as `seq` copies it in (for `rule`)."""
        return self._items(e)

    def _set(self, name: str, alternatives: list[tuple[Element, ...]]) -> None:
        self._count(alternatives)
        self.rules[name] = alternatives

    def _count(self, alternatives: list[tuple[Element, ...]]) -> None:
        # A memory guard while building (inlined helper pieces count too); `build` checks the limits.
        self._symbols += (len(alternatives[0]) if len(alternatives) == 1 else sum(map(len, alternatives))) + 1
        if self._symbols > 4 * MAX_SYMBOLS:
            raise GrammarLimitError(f"the grammar has more than {MAX_SYMBOLS} symbols")

    def _anonymous_rule(self, alternatives: list[tuple[Element, ...]]) -> Element:
        """The result of seq/alt/literal/char_class: one element, else an `_Anonymous` piece."""
        if len(alternatives) == 1 and len(alternatives[0]) == 1:
            return alternatives[0][0]
        self._count(alternatives)
        return _Anonymous(alternatives)

    def _piece(self, e: Element) -> _Anonymous | None:
        """The anonymous piece `e` is, or references (a piece stays inlinable once it has a rule)."""
        if e.__class__ is _Anonymous:
            return e
        if e.__class__ is Ref:
            return self._pieces.get(e.name)
        return None

    def _alternatives(self, e: Element) -> list[tuple[Element, ...]]:
        """The alternatives `e` stands for (an anonymous piece's own, else `e` alone)."""
        piece = self._piece(e)
        return [(e,)] if piece is None else list(piece.alternatives)

    def _items(self, e: Element) -> tuple[Element, ...]:
        """`e` as the elements of a sequence (a small anonymous sequence is copied in)."""
        piece = self._piece(e)
        if piece is None:
            return (e,)
        alts = piece.alternatives
        if len(alts) == 1 and len(alts[0]) <= MAX_INLINE:
            return alts[0]
        return (self._rule_of(piece),)

    def _rule_of(self, piece: _Anonymous) -> Ref:
        """A rule for an anonymous piece that must be referenced, made once however often it is used."""
        if piece.ref is None:
            name = self.new_rule("_")
            self.rules[name] = piece.alternatives
            self._pieces[name] = piece
            piece.ref = Ref(name)
        return piece.ref

    def copy_in(self, source: "GrammarBuilder", e: Element, copied: dict[str, Ref]) -> Element:
        """`e`, built by the builder `source`, with every rule it reaches copied into this builder.

        Copies get fresh names; `copied` maps the `source` rule names already copied to their copies
        (pass the same dict on every call, so that pieces sharing a rule share its one copy). This
        is how a front end reuses prebuilt, input-independent rules (JSON's string characters, any
        value) without rebuilding them through the combinators each compile.
        """
        def element(x: Element) -> Element:
            if x.__class__ not in _NAMED:
                return x  # a ByteSet (immutable, shared as is)
            ref = copied.get(x.name)
            if ref is None:
                ref = copied[x.name] = Ref(self.new_rule(x.name.rpartition("_")[0] or x.name))
                todo.append(x.name)
            return ref if x.__class__ is Ref else Repeat(ref.name, x.min, x.max)

        todo: list[str] = []
        if e.__class__ is _Anonymous:
            out: Element = _Anonymous([tuple(map(element, alt)) for alt in e.alternatives])
        else:
            out = element(e)
        while todo:
            name = todo.pop()
            alternatives = source.rules[name]
            if not alternatives:
                raise GrammarError(f"rule '{name}' is referenced but never defined")
            self._set(copied[name].name, [tuple(map(element, alt)) for alt in alternatives])
        return out

    # -- terminals --------------------------------------------------------------------------------
    def literal(self, text: str | bytes) -> Element:
        """Exactly these bytes (a str is UTF-8 encoded); "" is epsilon."""
        return self._anonymous_rule([literal_items(text)])

    def literals(self, texts: list[str]) -> Element:
        """Any one of `texts` (none empty), prefix-factored: `ab | ac | d` is `a [bc] | d`, so that a
        parser state before it holds an item per distinct first byte, not one per text."""
        if not texts:
            raise GrammarError("an alternation needs at least one branch")
        if any(not t for t in texts):
            raise GrammarError("literals() takes non-empty texts")
        return self._literal_tree(sorted({t.encode("utf-8") for t in texts}))

    def _literal_tree(self, data: list[bytes]) -> Element:
        by_first: dict[int, list[bytes]] = {}
        for d in data:
            by_first.setdefault(d[0], []).append(d[1:])
        ends = [b for b, rests in by_first.items() if rests == [b""]]
        parts: list[Element] = [ByteSet.of([(b, b) for b in ends])] if ends else []
        for b, rests in by_first.items():
            if rests != [b""]:
                longer = [r for r in rests if r]
                tail = self._literal_tree(longer)
                parts.append(self.seq(_SINGLE_BYTES[b], self.opt(tail) if b"" in rests else tail))
        return self.alt(*parts)

    def byte_set(self, ranges: list[tuple[int, int]]) -> ByteSet:
        """One byte from the inclusive ranges (raw bytes, not code points)."""
        return ByteSet.of(ranges)

    def char_class(self, ranges: list[tuple[int, int]], negate: bool = False) -> Element:
        """One code point from the inclusive ranges (or outside them), as its UTF-8 bytes."""
        points = _normalize(ranges)
        if negate:
            points = _complement(points)
        points = _complement(_complement(points))  # drops the surrogates, which UTF-8 cannot encode
        alternatives = _utf8_alternatives(tuple(points))
        if not alternatives:
            return ByteSet(())  # the empty class: matches nothing
        return self._anonymous_rule(list(alternatives))

    def any_char(self) -> Element:
        """Any Unicode scalar value, as valid UTF-8."""
        return self.char_class([(0, MAX_CODE_POINT)])

    # -- combinators ------------------------------------------------------------------------------
    def seq(self, *elements: Element) -> Element:
        items: list[Element] = []
        for e in elements:
            if e.__class__ is ByteSet:  # the common case, without a call
                items.append(e)
            else:
                items.extend(self._items(e))
        return self._anonymous_rule([tuple(items)])

    def alt(self, *elements: Element) -> Element:
        if not elements:
            raise GrammarError("an alternation needs at least one branch")
        alternatives: list[tuple[Element, ...]] = []
        for e in elements:
            alternatives.extend(self._alternatives(e))
        return self._anonymous_rule(_merge_alternatives(alternatives))

    def opt(self, e: Element) -> Element:
        return self.alt(e, self.seq())

    def star(self, e: Element) -> Element:
        """e*, as the left-recursive rule  r ::= "" | r e."""
        name = self.new_rule("star")
        self._set(name, [EPSILON, (Ref(name), *self._items(e))])
        return Ref(name)

    def plus(self, e: Element) -> Element:
        """e+, as the left-recursive rule  r ::= e | r e."""
        name = self.new_rule("plus")
        self._set(name, [self._items(e), (Ref(name), *self._items(e))])
        return Ref(name)

    def repeat(self, e: Element, min: int, max: int | None) -> Element:
        """e{min,max} (max None: unbounded). Both bounds are limited to MAX_REPEAT.

        A bounded repetition is one counted element, `Repeat(rule of e, min, max)`; e{min,} is
        e{min,min} then e*. The small cases that need no count (e?, e, e*, e+) stay plain rules.
        """
        if min < 0 or (max is not None and max < min):
            raise GrammarError(f"invalid repetition bounds {{{min},{'' if max is None else max}}}")
        if min > MAX_REPEAT or (max is not None and max > MAX_REPEAT):
            raise GrammarLimitError(f"repetition bound {max if max is not None else min} exceeds the limit "
                                    f"of {MAX_REPEAT}")
        if max is None:
            if min <= 1:
                return self.star(e) if min == 0 else self.plus(e)
            return self.seq(self.repeat(e, min, min), self.star(e))
        if max <= 1:
            return self.seq(*[e] * min) if min == max else self.opt(e)
        return Repeat(self._rule_name(e), min, max)

    def _rule_name(self, e: Element) -> str:
        """The name of a rule that matches exactly `e` (`e`'s own, if it is a reference)."""
        if e.__class__ is Ref:
            return e.name
        piece = e if e.__class__ is _Anonymous else _Anonymous([(e,)])
        return self._rule_of(piece).name

    # -- result -----------------------------------------------------------------------------------
    def build(self, start: Element | str) -> Grammar:
        """The grammar from the start rule (a name or an element); unreachable rules are dropped.

        Raises:
            GrammarError: a referenced rule is never defined.
        """
        if isinstance(start, str):
            if start not in self.rules:
                raise GrammarError(f"undefined start rule '{start}'")
            start_name = start
        else:
            start_name = self.new_rule("start")
            self._set(start_name, self._alternatives(start))
        rules: dict[str, list[tuple[Element, ...]]] = {}
        todo = [start_name]
        symbols = 0
        while todo:  # one pass over every reachable element: plain loops, it is most of a build's time
            name = todo.pop()
            if name in rules:
                continue
            alternatives = self.rules.get(name)
            if alternatives is None:
                raise GrammarError(f"undefined rule '{name}'")
            rules[name] = alternatives
            for alt in alternatives:
                symbols += len(alt)
                for e in alt:
                    if e.__class__ in _NAMED and e.name not in rules:
                        todo.append(e.name)
        for name, alternatives in rules.items():
            if not alternatives:
                raise GrammarError(f"rule '{name}' is referenced but never defined")
        if len(rules) > MAX_RULES:
            raise GrammarLimitError(f"the grammar has more than {MAX_RULES} rules")
        if symbols > MAX_SYMBOLS:
            raise GrammarLimitError(f"the grammar has more than {MAX_SYMBOLS} symbols")
        return Grammar(rules, start_name)


_SINGLE_BYTES = tuple(ByteSet(((b, b),)) for b in range(256))  # literals reuse these


def literal_items(text: str | bytes) -> tuple[ByteSet, ...]:
    """The bytes of `text` (a str is UTF-8 encoded) as the elements of a sequence, one ByteSet
    each: what `GrammarBuilder.literal` is made of, for alternatives written out directly."""
    try:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as e:
        raise GrammarError(f"literal {text!r} is not valid Unicode text ({e.reason})") from None
    return tuple(map(_SINGLE_BYTES.__getitem__, data))


@functools.lru_cache(maxsize=1024)
def _utf8_alternatives(points: tuple[tuple[int, int], ...]) -> tuple[tuple[Element, ...], ...]:
    """A code point class as alternatives of byte sequences: one ByteSet for its ASCII/1-byte
    part, then one sequence per run of 2-4 byte encodings. Cached: schemas repeat their classes."""
    single: list[tuple[int, int]] = []
    multi: list[tuple[Element, ...]] = []
    for seq in utf8_sequences(list(points)):
        if len(seq) == 1:
            single.append(seq[0])
        else:
            multi.append(tuple(ByteSet(((lo, hi),)) for lo, hi in seq))
    return tuple(([(ByteSet.of(single),)] if single else []) + multi)


def choice_grammar(strings: list[str]) -> Grammar:
    """Exactly one of `strings` (vLLM's `choice`)."""
    if not strings:
        raise GrammarError("choice needs at least one string")
    b = GrammarBuilder()
    return b.build(b.alt(*(b.literal(s) for s in strings)))


def _merge_alternatives(alternatives: list[tuple[Element, ...]]) -> list[tuple[Element, ...]]:
    """Deduplicate, and merge all one-byte alternatives into a single ByteSet."""
    single = [a[0] for a in alternatives if len(a) == 1 and a[0].__class__ is ByteSet]
    if len(single) > 1:
        merged = (ByteSet.of([r for bs in single for r in bs.ranges]),)
        alternatives = [merged] + [a for a in alternatives if not (len(a) == 1 and a[0].__class__ is ByteSet)]
    return list(dict.fromkeys(alternatives))  # first occurrences, in order


# -- Unicode code point ranges -> UTF-8 byte-range sequences ----------------------------------------

def _normalize(ranges) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if not 0 <= lo <= hi <= MAX_CODE_POINT:
            raise GrammarError(f"invalid code point range ({lo:#x}, {hi:#x})")
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The scalar values (no surrogates) not in the normalized `ranges`."""
    out, nxt = [], 0
    for lo, hi in ranges + [(MAX_CODE_POINT + 1, MAX_CODE_POINT + 1)]:
        if nxt < lo:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    no_surrogates = []
    for lo, hi in out:
        if lo < SURROGATES[0] and hi >= SURROGATES[0]:
            no_surrogates.append((lo, SURROGATES[0] - 1))
        if lo <= SURROGATES[1] and hi > SURROGATES[1]:
            no_surrogates.append((SURROGATES[1] + 1, hi))
        if hi < SURROGATES[0] or lo > SURROGATES[1]:
            no_surrogates.append((lo, hi))
    return sorted(no_surrogates)


_UTF8_LENGTH_ENDS = (0x7F, 0x7FF, 0xFFFF, MAX_CODE_POINT)


def utf8_sequences(ranges: list[tuple[int, int]]) -> list[tuple[tuple[int, int], ...]]:
    """Code point ranges (no surrogates) -> byte-range sequences matching exactly their UTF-8.

    Split each range where the encoded length changes, then where a continuation byte would not
    cover its full 0x80-0xBF span, until each piece encodes as a product of byte ranges.
    """
    out: list[tuple[tuple[int, int], ...]] = []
    todo = list(reversed(ranges))
    while todo:
        lo, hi = todo.pop()
        split = False
        for end in _UTF8_LENGTH_ENDS:  # one encoded length per piece
            if lo <= end < hi:
                todo += [(end + 1, hi), (lo, end)]
                split = True
                break
        if split:
            continue
        n = len(chr(lo).encode("utf-8", "surrogatepass"))
        for i in range(1, n):  # align the low-order continuation bytes
            m = (1 << (6 * i)) - 1
            if lo & ~m != hi & ~m:
                if lo & m != 0:
                    todo += [((lo | m) + 1, hi), (lo, lo | m)]
                    split = True
                    break
                if hi & m != m:
                    todo += [(hi & ~m, hi), (lo, (hi & ~m) - 1)]
                    split = True
                    break
        if split:
            continue
        a = chr(lo).encode("utf-8", "surrogatepass")
        b = chr(hi).encode("utf-8", "surrogatepass")
        out.append(tuple(zip(a, b)))
    return out
