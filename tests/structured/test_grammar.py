"""The byte-level Grammar and its builder: UTF-8 classes, combinators, limits, errors."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.structured.grammar import (MAX_REPEAT, ByteSet, GrammarBuilder, GrammarError, GrammarLimitError, Ref, Repeat,
                                         SymbolKind, choice_grammar)
from pyengine.structured.json_schema import json_schema_grammar
from pyengine.structured.matcher import matches

SCALARS = st.integers(0, 0x10FFFF).filter(lambda c: not 0xD800 <= c <= 0xDFFF)


@settings(max_examples=150, deadline=None)
@given(lo=SCALARS, width=st.sampled_from([0, 1, 63, 64, 2047, 70000]), negate=st.booleans(), probe=SCALARS)
def test_char_class_matches_exactly_the_utf8_of_its_code_points(lo, width, negate, probe):
    hi = min(lo + width, 0x10FFFF)
    b = GrammarBuilder()
    g = b.build(b.char_class([(lo, hi)], negate=negate))
    for c in (probe, lo, hi, max(lo - 1, 0), min(hi + 1, 0x10FFFF)):
        if 0xD800 <= c <= 0xDFFF:
            continue
        assert matches(g, chr(c).encode()) == ((lo <= c <= hi) != negate), hex(c)


def test_any_char_rejects_invalid_utf8():
    b = GrammarBuilder()
    g = b.build(b.plus(b.any_char()))
    assert matches(g, "aé€😀".encode())
    for bad in (b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"):
        assert not matches(g, bad), bad


def test_combinators_and_left_recursion():
    b = GrammarBuilder()
    expr = b.new_rule("expr")  # expr ::= expr "+" num | num   (left recursive)
    num = b.plus(b.char_class([(ord("0"), ord("9"))]))
    b.define(expr, b.alt(b.seq(b.ref(expr), b.literal("+"), num), num))
    g = b.build(expr)
    assert matches(g, b"1+22+333") and matches(g, b"7")
    assert not matches(g, b"1+") and not matches(g, b"+1") and not matches(g, b"")


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 3), (2, 2), (2, 5), (3, None)])
def test_repeat_bounds(lo, hi):
    b = GrammarBuilder()
    g = b.build(b.repeat(b.literal("ab"), lo, hi))
    for n in range(8):
        assert matches(g, b"ab" * n) == (n >= lo and (hi is None or n <= hi)), n


def test_one_byte_alternatives_merge_into_one_byteset():
    b = GrammarBuilder()
    g = b.build(b.alt(b.literal("a"), b.literal("b"), b.literal("c"), b.literal("xy")))
    assert g.rules[g.start][0] == (ByteSet(((97, 99),)),)
    assert matches(g, b"b") and matches(g, b"xy") and not matches(g, b"x")


@pytest.mark.parametrize("texts", [["ab", "ac", "d"], ["a", "ab", "abc", "b"], ["\\u0000", "\\u001f", "\\n", "\\\\"],
                                   ["é", "è", "e"], ["x"]])
def test_literals_is_the_alternation_of_its_texts_prefix_factored(texts):
    b = GrammarBuilder()
    g = b.build(b.literals(texts))
    assert all(matches(g, t.encode()) for t in texts)
    prefixes = {t[:k] for t in texts for k in range(len(t) + 2)} | {t + "a" for t in texts}
    assert all(matches(g, p.encode()) == (p in texts) for p in prefixes)
    # one alternative per distinct first byte at the top: a parser predicts that many items
    assert len(g.rules[g.start]) <= len({t.encode()[0] for t in texts})


def test_literals_refuses_empty_texts():
    b = GrammarBuilder()
    with pytest.raises(GrammarError):
        b.literals([])
    with pytest.raises(GrammarError):
        b.literals(["a", ""])


def test_choice_grammar():
    g = choice_grammar(["yes", "no", "maybe", "né"])
    assert all(matches(g, s.encode()) for s in ["yes", "no", "maybe", "né"])
    assert not matches(g, b"ye") and not matches(g, b"yesno")
    with pytest.raises(GrammarError):
        choice_grammar([])


def test_to_flat_round_trip():
    b = GrammarBuilder()
    bc = b.char_class([(ord("b"), ord("c"))])
    g = b.build(b.seq(b.literal("a"), b.star(bc), b.repeat(bc, 3, 70_000)))
    start, alts, byte_sets, repeats, names = g.to_flat()
    assert names[start] == g.start

    def element(kind, i):
        if kind == SymbolKind.RULE:
            return Ref(names[i])
        if kind == SymbolKind.REPEAT:
            rule, low, high = repeats[i]
            return Repeat(names[rule], low, high)
        return ByteSet(tuple(byte_sets[i]))

    rebuilt: dict[str, list[tuple]] = {name: [] for name in names}
    for lhs, symbols in alts:
        rebuilt[names[lhs]].append(tuple(element(kind, i) for kind, i in symbols))
    assert rebuilt == g.rules
    assert [low_high for _, *low_high in repeats] == [[3, 70_000]]  # one counted symbol, not 70,000 rules


def test_to_flat_names_each_symbols_kind():
    b = GrammarBuilder()
    digit = b.new_rule("digit")
    b.define(digit, b.char_class([(ord("0"), ord("9"))]))
    g = b.build(b.seq(b.literal("n"), b.ref(digit)))
    start, alts, byte_sets, _, names = g.to_flat()
    (lhs, symbols), = [alt for alt in alts if alt[0] == start]
    assert symbols == ((SymbolKind.BYTES, byte_sets.index([(ord("n"), ord("n"))])),
                       (SymbolKind.RULE, names.index(digit)))


def test_a_flat_grammar_leaves_the_garbage_collector_nothing_to_walk():
    # A cached grammar keeps its flat form; every full collection, which holds all threads (a
    # server's event loop too), would walk its rows were they tracked: ~100k for 10k properties.
    g = json_schema_grammar({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(100)}})
    start, alts, byte_sets, _, names = g.to_flat()
    # The collector drops a tuple once it holds nothing tracked: a symbol, then the row's symbols,
    # then the row. One pass visits them in the order of its lists, which earlier allocations
    # shuffle (a survivor of a young collection moves behind younger objects), so it takes up to
    # three passes, one per level; and gc.collect() returns at once while another thread (a test
    # server's) is collecting. So: collect until the rows are untracked, a bounded number of times.
    for _ in range(20):
        gc.collect()
        if not any(gc.is_tracked(alt) for alt in alts):
            break
    assert len(alts) > 200 and not any(gc.is_tracked(alt) for alt in alts)


def test_errors():
    b = GrammarBuilder()
    with pytest.raises(GrammarError, match="undefined rule 'nope'"):
        b.build(b.seq(b.literal("x"), Ref("nope")))
    with pytest.raises(GrammarLimitError, match="exceeds the limit"):
        b.repeat(b.literal("x"), 0, MAX_REPEAT + 1)
    with pytest.raises(GrammarError, match="invalid repetition"):
        b.repeat(b.literal("x"), 3, 2)
    with pytest.raises(GrammarError, match="invalid code point"):
        b.char_class([(0, 0x110000)])
    with pytest.raises(GrammarError, match="not valid Unicode"):
        b.literal("\ud800")
    r = b.new_rule()
    b.define(r, b.literal("x"))
    with pytest.raises(GrammarError, match="defined twice"):
        b.define(r, b.literal("y"))
    assert issubclass(GrammarLimitError, GrammarError) and issubclass(GrammarError, ValueError)


def test_rule_and_as_items_write_alternatives_directly():
    b = GrammarBuilder()
    digit = b.byte_set([(0x30, 0x39)])
    r = b.rule([(), (*b.as_items(b.literal("x=")), digit)], "r")  # r ::= "" | "x=" [0-9]
    g = b.build(b.seq(r, b.literal(";")))
    assert matches(g, b";") and matches(g, b"x=7;") and not matches(g, b"x=;")
    assert g.rules[r.name] == [(), (ByteSet(((0x78, 0x78),)), ByteSet(((0x3D, 0x3D),)), digit)]


def test_copy_in_copies_reachable_rules_once_under_fresh_names():
    lib = GrammarBuilder()
    item = lib.new_rule("item")  # item ::= "a" | "[" item "]"  (recursive)
    lib.define(item, lib.alt(lib.literal("a"), lib.seq(lib.literal("["), lib.ref(item), lib.literal("]"))))
    pair = lib.seq(lib.ref(item), lib.literal(","), lib.ref(item))  # an anonymous piece over it
    b = GrammarBuilder()
    b.rules["item_0"] = []  # a name the copy must not take
    copied: dict = {}
    first, again = b.copy_in(lib, pair, copied), b.copy_in(lib, lib.ref(item), copied)
    assert list(copied) == [item] and copied[item].name != "item_0" and again == copied[item]
    g = b.build(b.seq(first, b.literal(";")))
    assert matches(g, b"a,[[a]];") and not matches(g, b"a,[a;")
