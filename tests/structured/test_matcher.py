"""GrammarMatcher: the Python twin and the Rust kernel give identical masks; EOS, rollback, errors.

A hand-sized vocabulary (toktrie's style) keeps the expected masks readable; hypothesis then draws
random grammars and random token walks and checks twin == Rust at every step, and that the
matcher accepts exactly when `Grammar.matches` (the plain Earley recognizer) does.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.structured import matcher
from pyengine.structured.grammar import (ByteSet, Grammar, GrammarBuilder, GrammarError, GrammarLimitError, Ref,
                                         choice_grammar)
from pyengine.structured.json_schema import JsonOptions, json_schema_grammar
from pyengine.structured.matcher import matches
from pyengine.structured.regex import regex_grammar

KERNELS = ["python"] + (["native"] if matcher.NATIVE_KERNELS is not None else [])
#          0     1     2      3     4      5        6        7     8     9      10    11
VOCAB = [b"a", b"b", b"ab", b"ba", b"(", b"()", b"\xc3", b"\xa9", "é".encode(), None, b"a(", b""]
EOS = 9


def make(kind, grammar, vocab=VOCAB, eos=(EOS,)):
    trie_cls, matcher_cls = matcher.select(kind)
    return matcher_cls(grammar, trie_cls(vocab), list(eos))


@pytest.mark.parametrize("kind", KERNELS)
def test_masks_eos_and_rollback(kind):
    m = make(kind, regex_grammar(r"a(b|é)*"))
    assert m.allowed_token_ids() == [0, 2]  # "a", "ab"; never None, "" or EOS before accepting
    assert not m.accept_token(1) and m.num_accepted == 0  # "b" refused, nothing changed
    assert m.accept_token(0)
    assert m.is_accepting()
    assert m.allowed_token_ids() == [1, 6, 8, EOS]  # "b", the lead byte of é alone, "é", EOS
    assert m.accept_token(6) and not m.is_accepting() and m.allowed_token_ids() == [7]
    assert m.accept_token(7) and m.accept_token(EOS) and m.is_terminated()
    assert m.allowed_token_ids() == [EOS] and not m.accept_token(1)
    m.rollback(2)
    assert not m.is_terminated() and m.allowed_token_ids() == [7]
    out = np.zeros(1, dtype=np.int32)
    m.fill_bitmask(out)
    assert out[0] == 1 << 7
    m.reset()
    assert m.num_accepted == 0 and m.allowed_token_ids() == [0, 2]


@pytest.mark.parametrize("kind", KERNELS)
def test_argument_errors(kind):
    m = make(kind, regex_grammar("a"))
    with pytest.raises(ValueError, match="out of range"):
        m.accept_token(len(VOCAB))
    with pytest.raises(ValueError, match="cannot roll back"):
        m.rollback(1)
    with pytest.raises(ValueError, match="bitmask"):
        m.fill_bitmask(np.zeros(2, dtype=np.int32))
    with pytest.raises(ValueError, match=r"got float64 \(1,\)"):
        m.fill_bitmask(np.zeros(1))
    with pytest.raises(ValueError, match="cannot roll back -1 tokens"):
        m.rollback(-1)
    with pytest.raises(GrammarError, match="EOS token id 99"):
        make(kind, regex_grammar("a"), eos=(99,))


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
def test_twin_and_rust_raise_the_same_exceptions_with_the_same_messages():
    calls = [lambda kind: make(kind, regex_grammar("a"), eos=(99,)),
             lambda kind: make(kind, regex_grammar("a")).accept_token(len(VOCAB)),
             lambda kind: make(kind, regex_grammar("a")).rollback(1),
             lambda kind: make(kind, regex_grammar("a")).rollback(-1),
             lambda kind: make(kind, regex_grammar("a")).fill_bitmask(np.zeros(2, dtype=np.int32)),
             lambda kind: make(kind, regex_grammar("a")).fill_bitmask(np.zeros(1)),
             lambda kind: make(kind, regex_grammar("a")).fill_bitmask([0])]
    for call in calls:
        raised = []
        for kind in ("python", "native"):
            with pytest.raises(ValueError) as info:
                call(kind)
            raised.append((info.type, str(info.value)))
        assert raised[0] == raised[1]


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
def test_matchers_of_one_grammar_share_its_native_tables_and_nothing_else():
    g = regex_grammar(r"a(b|é)*")
    first = make("native", g)
    tables = g.__dict__["_native"]  # built with the first matcher, kept with the grammar
    second = make("native", g)
    assert g.__dict__["_native"] is tables
    assert first.accept_token(0) and first.allowed_token_ids() == [1, 6, 8, EOS]
    assert second.allowed_token_ids() == [0, 2]  # its own state, at the start


@pytest.mark.parametrize("kind", KERNELS)
def test_a_huge_alternation_hits_the_earley_item_limit(kind):
    g = choice_grammar([f"w{i}" for i in range(matcher.MAX_EARLEY_ITEMS + 10)])
    with pytest.raises(GrammarLimitError, match="Earley items"):
        make(kind, g)


@st.composite
def grammars(draw):
    """Random grammars over a, b, é, ( ) with every combinator and one recursive rule."""
    b = GrammarBuilder()
    paren = b.new_rule("paren")  # paren ::= "(" inner ")" , inner drawn below (may use paren)

    def element(depth):
        leaves = [lambda: b.literal(draw(st.sampled_from(["a", "b", "é", "ab", "()"]))),
                  lambda: b.char_class([(ord("a"), ord("b"))], negate=draw(st.booleans())),
                  lambda: b.ref(paren)]
        if depth == 0:
            return draw(st.sampled_from(leaves))()
        kind = draw(st.sampled_from(["leaf", "seq", "alt", "opt", "star", "plus", "repeat"]))
        if kind == "leaf":
            return draw(st.sampled_from(leaves))()
        if kind in ("seq", "alt"):
            parts = [element(depth - 1) for _ in range(draw(st.integers(1, 3)))]
            return getattr(b, kind)(*parts)
        if kind == "repeat":
            lo = draw(st.integers(0, 2))
            return b.repeat(element(depth - 1), lo, draw(st.sampled_from([lo, lo + 1, lo + 3, lo + 40, None])))
        return getattr(b, kind)(element(depth - 1))

    b.define(paren, b.seq(b.literal("("), b.opt(element(1)), b.literal(")")))
    return b.build(element(3))


def rust_tables(g) -> tuple:
    """The tables the Rust kernel read from `g`, and `g.to_flat()`'s, in one form (byte sets as merged ranges)."""
    start, alternatives, byte_sets, repeats, _ = g.to_flat()
    merged = [list(ByteSet.of(ranges).ranges) for ranges in byte_sets]
    rows = [(lhs, list(symbols)) for lhs, symbols in alternatives]
    return matcher._native.CompiledGrammar(g).to_flat(), (start, rows, merged, repeats)


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
@settings(max_examples=100, deadline=None)
@given(g=grammars())
def test_rust_reads_a_grammar_into_the_numbers_to_flat_gives(g):
    rust, python = rust_tables(g)
    assert rust == python


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"name": {"type": "string"}, "rank": {"type": "integer", "minimum": 3}},
     "required": ["name"], "additionalProperties": {"enum": ["x", 1.5, None]}},
    {"$defs": {"t": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/t"}}}}},
     "$ref": "#/$defs/t"},
    {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{2,40}$"}, "minItems": 3, "maxItems": 9},
])
def test_rust_reads_schema_grammars_into_the_numbers_to_flat_gives(schema):
    rust, python = rust_tables(json_schema_grammar(schema))
    assert len(python[1]) > 5 and rust == python


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
def test_rust_reads_alternatives_written_as_any_sequences():
    a, b = ByteSet(((97, 97),)), ByteSet(((98, 98),))
    as_tuples = Grammar({"s": [(a, Ref("t")), ()], "t": [(b,)]}, "s")
    as_lists = Grammar({"s": ([a, Ref("t")], []), "t": ([b],)}, "s")
    assert rust_tables(as_lists) == rust_tables(as_tuples)


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
def test_rust_refuses_a_grammar_it_cannot_read():
    with pytest.raises(GrammarError, match="undefined rule"):
        matcher._native.CompiledGrammar(Grammar({"s": [(Ref("nope"),)]}, "s"))
    with pytest.raises(GrammarError, match="not a ByteSet, Ref or Repeat"):
        matcher._native.CompiledGrammar(Grammar({"s": [("a",)]}, "s"))


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
@settings(max_examples=150, deadline=None)
@given(g=grammars(), choices=st.lists(st.integers(0, 1000), min_size=1, max_size=12),
       rollbacks=st.lists(st.integers(0, 2), min_size=12, max_size=12))
def test_twin_and_rust_agree_on_random_grammars(g, choices, rollbacks):
    py, rs = make("python", g), make("native", g)
    text = [b""]
    for choice, back in zip(choices, rollbacks):
        allowed = py.allowed_token_ids()
        assert rs.allowed_token_ids() == allowed
        words = np.zeros(1, dtype=np.int32)
        rs.fill_bitmask(words)
        assert [i for i in range(len(VOCAB)) if words[0] >> i & 1] == allowed
        assert py.is_accepting() == rs.is_accepting() == matches(g, text[-1])
        if not allowed or py.is_terminated():
            break
        if back and back <= py.num_accepted and choice % 3 == 0:
            py.rollback(back), rs.rollback(back)
            del text[-back:]
            continue
        refused = [t for t in range(len(VOCAB)) if t not in allowed]
        if refused:  # a token outside the mask is refused by both, with no change
            assert not py.accept_token(refused[0]) and not rs.accept_token(refused[0])
            assert py.allowed_token_ids() == rs.allowed_token_ids() == allowed
        token = allowed[choice % len(allowed)]
        assert py.accept_token(token) and rs.accept_token(token)
        text.append(text[-1] + (VOCAB[token] or b""))


# The Rust slicer (tokens made of a class a state loops on are allowed without a walk) must give
# the twin's masks exactly: loops, counted runs, runs entered one step late, UTF-8 and partial UTF-8,
# tokens that leave the class after k characters (the exit groups), wide trie nodes (fans) and
# closed classes.
SLICER_VOCAB = ([bytes([b]) for b in range(256)]
                + [w.encode() for w in ["ab", "abc", "hello", " world", "x\n", "\ny", '"', '",', 'a"', "\\n",
                                        "é", "日本", "語x", "a-b", "0123", "aaaaaaa", "é\n", "ab@cd", ".com",
                                        "mail.example", "x.y-z"]]
                + [b"\xe6\x97", b"\x97\xa5", b"\xc3", "日".encode()[:2] + b"a"]
                # a wide node (a fan of 12 children), and partial characters after whole ones
                + [f"q{c}".encode() for c in "abcdefghij\n\""] + [b"ab\xc3", "é".encode() + b"\xe6\x97", b"a\xc3x"]
                + [None])


def walk_both(py, rs, choices) -> None:
    """Both twins take the same tokens (picked by `choices` among the allowed ones), with equal masks."""
    for choice in choices:
        allowed = py.allowed_token_ids()
        assert rs.allowed_token_ids() == allowed
        if not allowed or py.is_terminated():
            break
        token = allowed[choice % len(allowed)]
        assert py.accept_token(token) and rs.accept_token(token)


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
@pytest.mark.parametrize("pattern", [
    r"[^\n]{0,5}", r"[^\n]*x", r'"([^"\\]|\\.)*"', r'"([^"\\\x00-\x1f]){0,4}"', r"[a-z0-9._-]+@[a-z]{2,4}",
    r"(ab|[^a])*", r"[ -~]{2,9}", r".{3}", r"[^\n]{0,3}[^\n]*", r"q[a-e\n]*", r"[^\n]{0,2}\n[a-z]*",
    # closed classes: states that read the same byte class forever, through different states
    r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}", r"([a-z0-9-]+\.)+[a-z]{2,6}", r"[a-z0-9.-]+\.[a-z]{2}x",
    # counted repetitions with large bounds (one counted item, whatever the bound)
    r'"([^"\\]|\\.){0,100000}"', r"(ab|[^a]){2,5000}x", r"[a-z]{3,70000}(\n[a-z]{0,9}){0,3}", r"(a|é|){2,300}b",
])
@settings(max_examples=15, deadline=None)
@given(choices=st.lists(st.integers(0, 10_000), min_size=1, max_size=10))
def test_slicer_masks_match_the_twin(pattern, choices):
    g = regex_grammar(pattern)
    eos = [len(SLICER_VOCAB) - 1]
    py, rs = make("python", g, SLICER_VOCAB, eos), make("native", g, SLICER_VOCAB, eos)
    walk_both(py, rs, choices)


# Jumps (Rust): a state met in the walk that loops on a class takes the class tokens below a
# trie node as one range and walks only where they leave it (and the first characters it excepts).
# An object that allows additional keys is the case: after `{"` or `, "` a key is a declared name or
# any other string. A vocabulary of every word of up to four letters from a small alphabet (with
# UTF-8 characters, quotes and escapes) is big enough for the walk to jump from the key's state.
JUMP_LETTERS = ["a", "b", "n", "r", "é", "日"]
JUMP_VOCAB = ([bytes([b]) for b in range(256)]
              + ["".join(w).encode() for n in (2, 3, 4)
                 for w in itertools.product(JUMP_LETTERS, repeat=n)]
              + [w.encode() for w in ['{"', '", "', '":', '": ', '"}', "ab\"", 'an":', "a\\n", '\\"', "1,", ", "]]
              + [b"ab\xc3", b"\xe6\x97", "é".encode() + b"\xe6"]
              + [None])
JUMP_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "rank": {"type": "integer"},
                                                "rare": {"type": "boolean"}, "bar": {"type": "string"}},
               "required": ["name"]}


@pytest.mark.skipif(len(KERNELS) < 2, reason="needs the compiled extension")
@settings(max_examples=10, deadline=None)
@given(choices=st.lists(st.integers(0, 100_000), min_size=1, max_size=12))
def test_jump_masks_match_the_twin(choices):
    g = json_schema_grammar(JUMP_SCHEMA, JsonOptions(disable_additional_properties=False))
    eos = [len(JUMP_VOCAB) - 1]
    py, rs = make("python", g, JUMP_VOCAB, eos), make("native", g, JUMP_VOCAB, eos)
    for text in (b'{"', b'{"name": "x", "'):  # a key's state, first and after a member
        assert py.accept_bytes(text) and rs.accept_bytes(text)
        assert rs.allowed_token_ids() == py.allowed_token_ids()
        py.reset()
        rs.reset()
    walk_both(py, rs, choices)
