"""Regular languages that the plain regex front end cannot write as one grammar: intersections,
complements and anchors anywhere, by Brzozowski derivatives.

A term is a regular expression over code points with intersection (`both`) and complement
(`complement`) besides the usual operators, and the zero-width anchors `^` (the very start) and
`$` (the very end). Its derivative by a character c is the term for "what may follow c"; exploring
derivatives from a term gives a deterministic automaton (terms are kept in a normal form, so the
exploration ends). The automaton becomes a left-linear grammar, one rule per state ("the text read
so far leads here"), which Earley runs like a set of states, with the JSON string escapes applied
to each character where the text sits inside a JSON string.

    t = both(search(parse_regex("[0-9]+")), length(2, 3))      # JSON Schema: pattern + min/maxLength
    dfa = Automaton(t)                                         # GrammarLimitError past MAX_STATES
    element = dfa.element(builder, json_string=True)           # None when the language is empty

Python's `$` also matches before a final newline; here it is the very end (stricter, never looser).
"""

from __future__ import annotations

import bisect
import functools
from pyengine.structured.grammar import Element, GrammarBuilder, GrammarLimitError, Ref
from pyengine.structured.regex import parse_with

MAX_STATES = 20_000  # automaton states (each one a grammar rule) before GrammarLimitError
MAX_POINT = 0x10FFFF

# Terms are tuples, interned by the constructors below, so equal terms are equal tuples:
#   ("none",) ("empty",) ("chars", ranges) ("seq", a, b) ("alt", frozenset) ("and", frozenset)
#   ("not", a) ("star", a) ("repeat", a, lo, hi) ("start",) ("end",)
#   ("mod", k, r, places, j): decimal numbers w (digits, and with places > 0 one point) whose value,
#       read after digits of remainder r (j: fraction digits read then, None before the point), is a
#       multiple of k / 10**places: the digits past the point counted up to places, then only zeros
NONE = ("none",)  # no string
EMPTY = ("empty",)  # the empty string
START = ("start",)
END = ("end",)
ANY = ("chars", ((0, MAX_POINT),))


def chars(ranges) -> tuple:
    """One code point from the inclusive ranges."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return ("chars", tuple((lo, hi) for lo, hi in merged)) if merged else NONE


def seq(*terms) -> tuple:
    out = EMPTY
    for t in reversed(terms):
        out = _seq2(t, out)
    return out


def _seq2(a: tuple, b: tuple) -> tuple:
    if a is NONE or b is NONE or a == NONE or b == NONE:
        return NONE
    if a == EMPTY:
        return b
    if b == EMPTY:
        return a
    if a[0] == "seq":  # right-nested: (x y) z -> x (y z)
        return _seq2(a[1], _seq2(a[2], b))
    return ("seq", a, b)


def alt(*terms) -> tuple:
    members: set = set()
    for t in terms:
        if t[0] == "alt":
            members |= t[1]
        elif t != NONE:
            members.add(t)
    if not members:
        return NONE
    if len(members) == 1:
        return next(iter(members))
    return ("alt", frozenset(members))


def both(*terms) -> tuple:
    """Intersection."""
    members: set = set()
    for t in terms:
        if t == NONE:
            return NONE
        if t[0] == "and":
            members |= t[1]
        elif t != ("not", NONE):
            members.add(t)
    if not members:
        return ("not", NONE)
    if len(members) == 1:
        return next(iter(members))
    return ("and", frozenset(members))


def complement(t: tuple) -> tuple:
    return t[1] if t[0] == "not" else ("not", t)


def star(t: tuple) -> tuple:
    if t in (NONE, EMPTY):
        return EMPTY
    return t if t[0] == "star" else ("star", t)


def repeat(t: tuple, lo: int, hi: int | None) -> tuple:
    if hi == 0 or t == EMPTY:
        return EMPTY
    if t == NONE:
        return EMPTY if lo == 0 else NONE
    if lo and _nullable(t, False, False) and not _has_anchor(t):
        lo = 0  # t{lo,hi} is t{0,hi} when t matches the empty string
    if lo == 0 and hi is None:
        return star(t)
    if (lo, hi) == (1, 1):
        return t
    return ("repeat", t, lo, hi)


def literal(text: str) -> tuple:
    return seq(*[chars([(ord(c), ord(c))]) for c in text])


def multiple_of(k: int, places: int = 0) -> tuple:
    """Decimal digit strings whose value is a multiple of k / 10**places (k >= 1; one state per
    remainder and fraction digit read): with places > 0, numbers I.F with a point, or I alone."""
    return ("mod", k, 0, places, None)


def _mod_step(t: tuple, c: int) -> tuple:
    """The derivative of a `mod` term by code point c."""
    _, k, r, places, j = t
    if c == 0x2E:  # '.': once, before any fraction digit, when the step has places
        return ("mod", k, r, places, 0) if j is None and places else NONE
    if not 0x30 <= c <= 0x39:
        return NONE
    if j is not None and j == places:  # past the counted digits: only zeros
        return t if c == 0x30 else NONE
    return ("mod", k, (r * 10 + c - 0x30) % k, places, None if j is None else j + 1)


def search(t: tuple) -> tuple:
    """Strings that contain a match of t anywhere (JSON Schema's `pattern`; anchors still anchor)."""
    return seq(star(ANY), t, star(ANY))


def length(lo: int, hi: int | None) -> tuple:
    """Strings of lo..hi characters."""
    return repeat(ANY, lo, hi) if (lo, hi) != (0, None) else star(ANY)


# -- derivatives -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=200_000)
def _nullable(t: tuple, at_start: bool, at_end: bool) -> bool:
    kind = t[0]
    if kind == "empty" or kind == "star":
        return True
    if kind in ("none", "chars"):
        return False
    if kind == "mod":  # the digits read, padded with zeros to `places` fraction digits, are a multiple
        return t[2] * 10 ** (t[3] - (t[4] or 0)) % t[1] == 0
    if kind == "start":
        return at_start
    if kind == "end":
        return at_end
    if kind == "seq":
        return _nullable(t[1], at_start, at_end) and _nullable(t[2], at_start, at_end)
    if kind == "alt":
        return any(_nullable(m, at_start, at_end) for m in t[1])
    if kind == "and":
        return all(_nullable(m, at_start, at_end) for m in t[1])
    if kind == "not":
        return not _nullable(t[1], at_start, at_end)
    return t[2] == 0 or _nullable(t[1], at_start, at_end)  # repeat


@functools.lru_cache(maxsize=200_000)
def _has_anchor(t: tuple) -> bool:
    kind = t[0]
    if kind in ("start", "end"):
        return True
    if kind in ("none", "empty", "chars", "mod"):
        return False
    if kind in ("alt", "and"):
        return any(_has_anchor(m) for m in t[1])
    if kind == "seq":
        return _has_anchor(t[1]) or _has_anchor(t[2])
    return _has_anchor(t[1])


def derivative(t: tuple, c: int, at_start: bool) -> tuple:
    """The term for the strings w such that c w is in t (c read at the very start when at_start)."""
    kind = t[0]
    if kind in ("none", "empty", "start", "end"):
        return NONE
    if kind == "chars":
        return EMPTY if any(lo <= c <= hi for lo, hi in t[1]) else NONE
    if kind == "mod":
        return _mod_step(t, c)
    if kind == "seq":
        head = _seq2(derivative(t[1], c, at_start), t[2])
        return alt(head, derivative(t[2], c, at_start)) if _nullable(t[1], at_start, False) else head
    if kind == "alt":
        return alt(*[derivative(m, c, at_start) for m in t[1]])
    if kind == "and":
        return both(*[derivative(m, c, at_start) for m in t[1]])
    if kind == "not":
        return complement(derivative(t[1], c, at_start))
    if kind == "star":
        return _seq2(derivative(t[1], c, at_start), t)
    _, inner, lo, hi = t  # repeat
    return _seq2(derivative(inner, c, at_start), repeat(inner, max(lo - 1, 0), None if hi is None else hi - 1))


class _Derivatives:
    """The derivatives one automaton's construction needs, each subterm's computed once per block.

    Every term an automaton meets is made of the leaves (character sets) of its first term, so code
    points that no leaf tells apart (a block, see `_block_starts`) take every subterm to the same
    derivative; and its states share most of their subterms (the part of a pattern not read yet
    recurs beside every count of a length, say). So the memo is keyed on a subterm (by value: equal
    subterms built apart share an entry) and the block of the character. It lives as long as the
    construction: a later automaton's blocks are not these."""

    def __init__(self, first: tuple) -> None:
        self.starts = _block_starts(first)
        self.memo: dict[tuple[tuple, int], tuple] = {}  # (subterm, block) -> its derivative
        self.leaves: dict[tuple, frozenset] = {}  # term -> the character sets its first character meets

    def __call__(self, t: tuple, c: int, at_start: bool) -> tuple:
        """`derivative(t, c, at_start)`."""
        if at_start:  # the start state's own (where `^` holds): nothing to share
            return derivative(t, c, True)
        return self._derivative(t, c, bisect.bisect_right(self.starts, c))

    def _derivative(self, t: tuple, c: int, block: int) -> tuple:
        kind = t[0]
        if kind in ("none", "empty", "start", "end", "chars", "mod"):  # leaves: cheaper than the memo
            return derivative(t, c, False)
        key = (t, block)
        d = self.memo.get(key)
        if d is not None:
            return d
        if kind == "seq":
            head = _seq2(self._derivative(t[1], c, block), t[2])
            d = alt(head, self._derivative(t[2], c, block)) if _nullable(t[1], False, False) else head
        elif kind == "alt":
            d = alt(*[self._derivative(m, c, block) for m in t[1]])
        elif kind == "and":
            d = both(*[self._derivative(m, c, block) for m in t[1]])
        elif kind == "not":
            d = complement(self._derivative(t[1], c, block))
        elif kind == "star":
            d = _seq2(self._derivative(t[1], c, block), t)
        else:
            _, inner, lo, hi = t  # repeat
            d = _seq2(self._derivative(inner, c, block), repeat(inner, max(lo - 1, 0), None if hi is None else hi - 1))
        self.memo[key] = d
        return d

    def first_leaves(self, t: tuple) -> frozenset:
        """The character sets (ranges) that t's derivatives depend on: those that may read t's first
        character (a sequence's tail only after a head that may be empty, with or without `^`).
        Each decimal digit is a set of its own under `mod`, whose derivative depends on the digit."""
        kind = t[0]
        if kind == "chars":
            return frozenset((t[1],))
        if kind == "mod":
            return _DIGITS_AND_POINT if t[3] else _DIGITS
        if kind in ("none", "empty", "start", "end"):
            return _NO_LEAVES
        known = self.leaves.get(t)
        if known is not None:
            return known
        if kind == "seq":
            found = self.first_leaves(t[1])
            if _nullable(t[1], True, False) or _nullable(t[1], False, False):
                found = found | self.first_leaves(t[2])
        elif kind in ("alt", "and"):
            found = frozenset().union(*[self.first_leaves(m) for m in t[1]])
        else:  # not, star, repeat
            found = self.first_leaves(t[1])
        self.leaves[t] = found
        return found


_NO_LEAVES: frozenset = frozenset()
_DIGITS = frozenset(((digit, digit),) for digit in range(0x30, 0x3A))
_DIGITS_AND_POINT = _DIGITS | {((0x2E, 0x2E),)}


def _block_starts(t: tuple) -> list[int]:
    """The code points where some leaf of t starts or stops holding (each decimal digit apart
    when t counts digits, `mod`): the starts of blocks of code points no leaf tells apart."""
    starts = {0}
    stack = [t]
    while stack:
        t = stack.pop()
        kind = t[0]
        if kind == "chars":
            starts.update(p for lo, hi in t[1] for p in (lo, hi + 1))
        elif kind == "mod":
            starts.update((*range(0x30, 0x3B), 0x2E, 0x2F))
        elif kind in ("alt", "and"):
            stack.extend(t[1])
        elif kind == "seq":
            stack += (t[1], t[2])
        elif kind in ("not", "star", "repeat"):
            stack.append(t[1])
    return sorted(starts)


class Automaton:
    """The deterministic automaton of a term: states, transitions on code point ranges, accepting states.

    State 0 is the start (the only state where `^` holds). Raises GrammarLimitError past MAX_STATES.
    """

    def __init__(self, term: tuple, max_states: int = MAX_STATES) -> None:
        terms = [term]  # state -> its term (dropped after construction: cached automata stay small)
        self.edges: list[list[tuple[tuple[tuple[int, int], ...], int]]] = []  # state -> [(ranges, target)]
        index: dict[tuple, int] = {}  # terms of the non-start states
        todo = [0]
        derivatives_of = _Derivatives(term)
        while todo:
            state = todo.pop()
            term, at_start = terms[state], state == 0
            # The code points split into ranges where no set that may read the next character
            # changes its membership; two ranges in the same sets (the same `inside` bits) have the
            # same derivative, computed once.
            toggles: dict[int, int] = {0: 0, MAX_POINT + 1: 0}
            for bit, ranges in enumerate(derivatives_of.first_leaves(term)):
                for lo, hi in ranges:  # merged ranges: disjoint and never adjacent, so flips pair up
                    toggles[lo] = toggles.get(lo, 0) ^ (1 << bit)
                    toggles[hi + 1] = toggles.get(hi + 1, 0) ^ (1 << bit)
            points = sorted(toggles)
            by_target: dict[int, list[tuple[int, int]]] = {}
            derivatives: dict[int, tuple] = {}
            inside = 0
            for lo, next_lo in zip(points, points[1:]):
                inside ^= toggles[lo]
                d = derivatives.get(inside)
                if d is None:
                    d = derivatives[inside] = derivatives_of(term, lo, at_start)
                if d == NONE:
                    continue
                target = index.get(d)
                if target is None:
                    target = index[d] = len(terms)
                    if target >= max_states:
                        raise GrammarLimitError(f"a string's regular language needs more than {max_states} "
                                                "automaton states (pattern, format and length together)")
                    terms.append(d)
                    todo.append(target)
                by_target.setdefault(target, []).append((lo, next_lo - 1))
            while len(self.edges) <= state:
                self.edges.append([])
            self.edges[state] = [(tuple(_merged(r)), target) for target, r in by_target.items()]
        while len(self.edges) < len(terms):
            self.edges.append([])
        self.accepting = [_nullable(t, i == 0, True) for i, t in enumerate(terms)]

    @functools.cached_property
    def live(self) -> list[bool]:
        """States from which an accepting state can be reached."""
        incoming: list[list[int]] = [[] for _ in self.edges]
        for source, edges in enumerate(self.edges):
            for _, target in edges:
                incoming[target].append(source)
        alive = list(self.accepting)
        todo = [s for s, a in enumerate(alive) if a]
        while todo:
            for source in incoming[todo.pop()]:
                if not alive[source]:
                    alive[source] = True
                    todo.append(source)
        return alive

    def is_empty(self) -> bool:
        return not any(self.accepting)

    def element(self, b: GrammarBuilder, json_string: bool = False) -> Element | None:
        """The language as a left-linear grammar inside `b` (None when empty). With `json_string`,
        each character is written as JSON writes it inside a string (escapes where JSON needs one)."""
        alive = self.live
        if not alive[0]:
            return None
        names = {s: b.new_rule("dfa") for s, ok in enumerate(alive) if ok}
        refs = {s: Ref(name) for s, name in names.items()}
        incoming: dict[int, list[tuple]] = {s: [] for s in names}
        pieces_of: dict[tuple, list[tuple]] = {}  # a class on many edges is written (and gets its rules) once
        for source, source_ref in refs.items():
            for ranges, target in self.edges[source]:
                if target in names:
                    pieces = pieces_of.get(ranges)
                    if pieces is None:
                        pieces = pieces_of[ranges] = _pieces(b, ranges, json_string)
                    for piece in pieces:
                        incoming[target].append((source_ref, *piece))
        incoming[0].append(())
        for state, alternatives in incoming.items():
            b.define(names[state], b.alt(*[b.seq(*alternative) for alternative in alternatives]))
        return b.alt(*[refs[s] for s in names if self.accepting[s]])


_JSON_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_UNSAFE = set(range(0x20)) | {0x22, 0x5C}
_UNSAFE_SORTED = tuple(sorted(_UNSAFE))


@functools.lru_cache(maxsize=4096)
def json_string_split(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...]]:
    """Sorted disjoint `ranges` (code points or bytes) as a JSON string writes them: the ranges
    that stand for themselves, and the escapes of the points JSON must escape (`"`, `\\`, the
    controls), in order. Cached: a grammar's classes repeat, from schema to schema too."""
    plain = tuple(subtract_points(list(ranges), _UNSAFE))
    escapes = tuple(_JSON_ESCAPES.get(c, "\\u%04x" % c) for c in _UNSAFE_SORTED
                    if any(lo <= c <= hi for lo, hi in ranges))
    return plain, escapes


@functools.lru_cache(maxsize=1024)
def automaton_of(term: tuple, max_states: int = MAX_STATES) -> Automaton:
    """`Automaton(term)`, kept for the next grammar that needs the same language (they are immutable)."""
    return Automaton(term, max_states)


def _pieces(b: GrammarBuilder, ranges: tuple, json_string: bool) -> list[tuple]:
    """The ways to write one character from `ranges`: its UTF-8 bytes, or (in a JSON string) an escape."""
    if not json_string:
        return [b.as_items(b.char_class(list(ranges)))]
    plain, escapes = json_string_split(tuple(ranges))
    out = [b.as_items(b.char_class(list(plain)))] if plain else []
    if escapes:  # one piece (a rule, when several) for all of them, not an alternative each per edge
        out.append(b.as_items(json_escapes(b, escapes)))
    return out


def json_escapes(b: GrammarBuilder, escapes: tuple[str, ...]) -> Element:
    """Any one of `escapes` (from `json_string_split`), escapes that differ only in their last
    character merged: the 32 `\\u00XX` of the controls are two alternatives, not 32 literals."""
    last_chars: dict[str, list[tuple[int, int]]] = {}
    for escape in escapes:
        last_chars.setdefault(escape[:-1], []).append((ord(escape[-1]), ord(escape[-1])))
    return b.alt(*[b.seq(b.literal(prefix), b.byte_set(lasts)) for prefix, lasts in last_chars.items()])


def subtract_points(ranges: list[tuple[int, int]], points: set[int]) -> list[tuple[int, int]]:
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


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


# -- regex text -> term -----------------------------------------------------------------------------------


class TermBuilder:
    """The combinators the regex parser calls (those of GrammarBuilder), building terms instead."""

    def literal(self, text: str) -> tuple:
        return literal(text)

    def char_class(self, ranges, negate: bool = False) -> tuple:
        t = chars(ranges)
        return chars(_complement(list(t[1]) if t != NONE else [])) if negate else t

    def seq(self, *terms) -> tuple:
        return seq(*terms)

    def alt(self, *terms) -> tuple:
        return alt(*terms)

    def opt(self, t) -> tuple:
        return alt(t, EMPTY)

    def star(self, t) -> tuple:
        return star(t)

    def plus(self, t) -> tuple:
        return seq(t, star(t))

    def repeat(self, t, lo: int, hi: int | None) -> tuple:
        return repeat(t, lo, hi)

    def anchor(self, which: str) -> tuple:
        return START if which == "^" else END


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, nxt = [], 0
    for lo, hi in _merged(ranges):
        if nxt < lo:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= MAX_POINT:
        out.append((nxt, MAX_POINT))
    return out


CACHED_PATTERN_LENGTH = 4096  # longer patterns are parsed each time: a cache entry would pin a large term


def parse_regex(pattern: str) -> tuple:
    """A regex in the regex front end's dialect, as a term; `^`/`$` anchors may stand anywhere.

    Kept by the pattern's text (an LRU of 1,024, patterns up to CACHED_PATTERN_LENGTH characters):
    patterns and formats recur from schema to schema, and a term is an immutable tuple that depends
    on the text alone (an invalid pattern raises every time)."""
    if len(pattern) > CACHED_PATTERN_LENGTH:
        return _parse_regex(pattern)
    return _cached_parse_regex(pattern)


def _parse_regex(pattern: str) -> tuple:
    return parse_with(TermBuilder(), pattern, anchors=True)


_cached_parse_regex = functools.lru_cache(maxsize=1024)(_parse_regex)
