"""Counted repetition: a bound of 5 or of 100,000 is one counted symbol, and the mask allows exactly
the lengths the bound allows, on both twins.

    token:  0    1    2     3      4    5    6    7    8     9      10
    VOCAB:  "    a    aa    a"     [    ]    1    ,    ,1    1]     (EOS)

A string `{"type": "string", "maxLength": N}` is read up to N-1 characters, then to N; an array
`{"type": "array", "maxItems": N}` of 1s up to N-1 items, then to N. At N-1 one more character
(item) is allowed and two are not; at N none is, and closing is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyengine.structured import matcher
from pyengine.structured.grammar import Repeat
from pyengine.structured.json_schema import JsonOptions, json_schema_grammar
from pyengine.structured.matcher import matches

KERNELS = ["python"] + (["native"] if matcher.NATIVE_KERNELS is not None else [])
VOCAB = [b'"', b"a", b"aa", b'a"', b"[", b"]", b"1", b",", b",1", b"1]", None]
EOS = 10
COMPACT = JsonOptions(whitespace="compact")
BOUNDS = [5, 4096, 100_000]


def make(kind, schema):
    trie_class, matcher_class = matcher.select(kind)
    return matcher_class(json_schema_grammar(schema, COMPACT), trie_class(VOCAB), [EOS])


def allowed_text(m) -> set[bytes]:
    return {VOCAB[t] or b"<eos>" for t in m.allowed_token_ids()}


@pytest.mark.parametrize("n", BOUNDS)
def test_a_bound_is_one_counted_symbol(n):
    g = json_schema_grammar({"type": "string", "maxLength": n}, COMPACT)
    assert [e for alt in g.rules[g.start] for e in alt if isinstance(e, Repeat)] == [Repeat(g.rules[g.start][0][1].name, 0, n)]
    assert len(g.rules) < 10


@pytest.mark.parametrize("kind", KERNELS)
@pytest.mark.parametrize("n", BOUNDS)
def test_max_length_allows_exactly_n_characters(kind, n):
    m = make(kind, {"type": "string", "maxLength": n})
    one_character = {b"a", b"[", b"]", b"1", b","}
    assert m.accept_bytes(b'"' + b"a" * (n - 1))
    assert allowed_text(m) == one_character | {b'"', b'a"'}  # one more character, not two ("aa", ",1")
    assert m.accept_token(1)
    assert allowed_text(m) == {b'"'}  # n characters: only the closing quote
    assert not m.accept_token(1) and m.accept_token(0) and allowed_text(m) == {b"<eos>"}


@pytest.mark.parametrize("kind", KERNELS)
@pytest.mark.parametrize("n", BOUNDS)
def test_max_items_allows_exactly_n_items(kind, n):
    m = make(kind, {"type": "array", "items": {"const": 1}, "maxItems": n})
    assert m.accept_bytes(b"[" + b"1," * (n - 2) + b"1")
    assert allowed_text(m) == {b"]", b",", b",1"}  # n-1 items: one more may follow
    assert m.accept_token(8)
    assert allowed_text(m) == {b"]"}  # n items: only the close
    assert not m.accept_token(7) and m.accept_token(5) and allowed_text(m) == {b"<eos>"}


@pytest.mark.skipif("native" not in KERNELS, reason="needs the compiled extension")
@pytest.mark.parametrize("schema", [{"type": "string", "minLength": 3, "maxLength": 12},
                                    {"type": "array", "items": {"const": 1}, "minItems": 2, "maxItems": 9}])
def test_the_twins_agree_at_every_count_up_to_the_bound(schema):
    # The native masks keep a count exactly only near its bounds (within the longest token, two
    # bytes here): walked one byte at a time, every mask on the way crosses from far to near.
    twins = [make(kind, schema) for kind in KERNELS]
    text = b'"' + b"a" * 12 + b'"' if schema["type"] == "string" else b"[" + b"1," * 8 + b"1]"
    for byte in text:
        python, native = (allowed_text(m) for m in twins)
        assert python == native, bytes([byte])
        assert all(m.accept_bytes(bytes([byte])) for m in twins)
    assert all(allowed_text(m) == {b"<eos>"} for m in twins)


@pytest.mark.parametrize("n", [5, 4096])
def test_the_reference_recognizer_agrees_at_the_bound(n):
    g = json_schema_grammar({"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 2, "maxItems": n},
                            COMPACT)
    for items, expected in [(1, False), (2, True), (n, True), (n + 1, False)]:
        assert matches(g, json.dumps(["abc"] * items, separators=(",", ":")).encode()) == expected
    assert not matches(g, b'["abcd","a"]')


@pytest.mark.slow
@pytest.mark.skipif("native" not in KERNELS, reason="needs the compiled extension")
def test_an_array_of_a_hundred_objects_of_bounded_strings_walks_on_a_real_vocabulary(shared_testdata):
    """Every element of a counted array makes parser states of its own; the walk of a whole document,
    a mask before every token (20,000 of them), never runs out of room: no GrammarLimitError half way
    (before counted repetition this schema passed 500,000 parser states a fifth of the way in)."""
    from pyengine.constrained import vocabulary_bytes
    from pyengine.text import Tokenizer

    tokenizer = Tokenizer.from_pretrained(shared_testdata / "qwen2.5-tokenizer")
    trie_class, matcher_class = matcher.select("native")
    trie = trie_class(vocabulary_bytes(tokenizer, tokenizer.vocab_size))
    item = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 400},
                                             "city": {"type": "string", "minLength": 1, "maxLength": 300}},
            "required": ["name", "city"], "additionalProperties": False}
    schema = {"type": "array", "items": item, "minItems": 100, "maxItems": 100}
    grammar = json_schema_grammar(schema)
    words = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)
    eos = tokenizer.eos_token_id

    def walk(text: str):
        """The matcher after `text`, a mask before every token; None once a token is refused."""
        m = matcher_class(grammar, trie, [eos])
        for token in tokenizer.encode(text, add_special_tokens=False):
            m.fill_bitmask(words)
            if not words[token // 32] >> (token % 32) & 1:
                return None
            assert m.accept_token(token)
        m.fill_bitmask(words)
        return m

    def allowed(token_text: str) -> bool:
        token, = tokenizer.encode(token_text, add_special_tokens=False)
        return bool(words[token // 32] >> (token % 32) & 1)

    people = [{"name": f"person {i} " + "é" * (i * 3), "city": "Zürich " + "xy " * (i % 90)} for i in range(100)]
    text = json.dumps(people, ensure_ascii=False)
    m = walk(text[:-1])
    assert m is not None and allowed("]") and not allowed(",")  # 100 items: no 101st
    assert m.accept_token(tokenizer.encode("]", add_special_tokens=False)[0]) and m.is_accepting()
    assert walk(json.dumps([{"name": "n" * 401, "city": "c"}])[:-1]) is None  # one character too many
    assert walk(json.dumps([{"name": "n" * 400, "city": "c"}])[:-1]) is not None
