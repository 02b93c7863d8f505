"""automaton.py: the automaton built with its shortcuts (per-state character sets, memoized
derivatives) equals the one the definition gives, and the caches across compiles change nothing."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.structured import automaton
from pyengine.structured.automaton import (MAX_POINT, NONE, Automaton, both, complement, derivative, length,
                                           multiple_of, parse_regex, search)
from pyengine.structured.json_schema import json_schema_grammar
from pyengine.structured.json_schema.strings import FORMATS, pattern_grammar


def reference_automaton(term: tuple) -> tuple[list, list]:
    """(edges, accepting) by the definition: every state's derivative by one code point of each
    block that no character set of `term` splits, explored in the order `Automaton` explores."""
    starts = sorted(set(automaton._block_starts(term)) | {MAX_POINT + 1})
    terms, edges, index, todo = [term], [], {}, [0]
    while todo:
        state = todo.pop()
        by_target: dict[int, list] = {}
        for lo, next_lo in zip(starts, starts[1:]):
            d = derivative(terms[state], lo, state == 0)
            if d == NONE:
                continue
            if d not in index:
                index[d] = len(terms)
                terms.append(d)
                todo.append(index[d])
            by_target.setdefault(index[d], []).append((lo, next_lo - 1))
        edges += [[]] * (state + 1 - len(edges))
        edges[state] = [(tuple(automaton._merged(r)), target) for target, r in by_target.items()]
    edges += [[]] * (len(terms) - len(edges))
    return edges, [automaton._nullable(t, i == 0, True) for i, t in enumerate(terms)]


ATOMS = ["a", "b", "[a-c]", "[^b]", ".", r"\d", "[0-9a]", "ab", "^", "$", "[b-z]", "é"]
regexes = st.recursive(st.sampled_from(ATOMS), lambda inner: st.one_of(
    st.tuples(inner, inner).map("".join),
    st.tuples(inner, inner).map(lambda ab: f"({ab[0]}|{ab[1]})"),
    st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{0,2}"])).map(lambda aq: f"({aq[0]}){aq[1]}"),
), max_leaves=6)


@st.composite
def terms(draw) -> tuple:
    """A pattern (searched, as JSON Schema's `pattern`), with a length, a complement or a
    `multipleOf`'s digits besides."""
    term = search(parse_regex(draw(regexes)))
    extra = draw(st.sampled_from(["none", "length", "not", "mod", "both"]))
    if extra == "length":
        term = both(term, length(draw(st.integers(0, 3)), draw(st.sampled_from([None, 4, 6]))))
    elif extra == "not":
        term = complement(term)
    elif extra == "mod":
        term = both(term, multiple_of(draw(st.integers(1, 7))))
    elif extra == "both":
        term = both(term, parse_regex(draw(regexes)))
    return term


@settings(max_examples=150, deadline=None)
@given(term=terms())
def test_automaton_equals_the_definition(term):
    built = Automaton(term)
    assert (built.edges, built.accepting) == reference_automaton(term)


def test_automaton_of_a_format_and_length_accepts_what_re_accepts():
    dfa = Automaton(both(parse_regex(FORMATS["date"]), length(0, 10)))
    for text, expected in [("2024-02-29", True), ("2023-02-29", False), ("2024-13-01", False), ("2024-1-01", False)]:
        state = 0
        for c in text:
            state = next((t for ranges, t in dfa.edges[state] if any(lo <= ord(c) <= hi for lo, hi in ranges)), None)
            if state is None:
                break
        assert (state is not None and dfa.accepting[state]) == expected
        assert (re.fullmatch(FORMATS["date"], text) is not None) == expected


def test_cached_regexes_are_shared_unchanged():
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"},
                                               "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]+$"},
                                               "tag": {"type": "string", "pattern": "x+", "maxLength": 5}}}
    before = str(pattern_grammar(FORMATS["date-time"]))
    first = json_schema_grammar(schema).to_flat()
    assert pattern_grammar(FORMATS["date-time"]) is pattern_grammar(FORMATS["date-time"])
    assert parse_regex("x+") is parse_regex("x+")
    assert json_schema_grammar(schema).to_flat() == first  # the second compile reads the caches
    assert str(pattern_grammar(FORMATS["date-time"])) == before  # embedding copied, never changed it
    long_pattern = "ab" * automaton.CACHED_PATTERN_LENGTH  # past the bound: parsed each time, never pinned
    assert parse_regex(long_pattern) is not parse_regex(long_pattern)
    assert pattern_grammar(long_pattern) is not pattern_grammar(long_pattern)
