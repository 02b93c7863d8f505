"""Differential test against llguidance: identical allowed-token sets at every step, Qwen2.5 vocabulary.

Same grammar (regex, or GBNF converted by llguidance's own `gbnf_to_lark`), same tokenizer, same
valid token sequence; at each step our Rust mask must equal llguidance's, bit for bit. Conventions
aligned for the comparison: every added token (special or not) is unmatchable, as llguidance treats
them, and EOS is `<|endoftext|>`. Regexes use explicit ASCII classes: llguidance's \\d is Unicode.
Skipped when llguidance, the extension or ../shared/testdata is missing.

JSON Schemas go through both JSON compilers under the same whitespace policy (compact: `,` and `:`
with no whitespace; flexible: any JSON whitespace between tokens) and must give the same sets too,
except where llguidance or we narrow the grammar on purpose. Each exception is checked narrowly:

- forced bytes: where the next bytes are forced (`{"id":` with a required first key), llguidance
  allows only the first token of their canonical tokenization; we allow every token spelling a
  prefix of them. Our extra tokens there must be prefixes of llguidance's forced bytes;
- string values: llguidance writes each string one way (no `\\/`, `\\u` only for control
  characters, no raw DEL); we accept every JSON string. Our extra tokens there must hold `\\/`,
  `\\u` or DEL;
- keys of additional properties: we refuse `\\u` escapes in them (an escape could spell a declared
  name and repeat it); llguidance's extra tokens there must hold `\\u`;
- no negative zero: an integer after `-` cannot start with `0` for us (as xgrammar); llguidance's
  extra tokens right after `-` must start with `0`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyengine.structured import matcher
from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.json_schema import JsonOptions, json_schema_grammar
from pyengine.structured.regex import regex_grammar

from .test_ebnf import JSON_GBNF

llguidance = pytest.importorskip("llguidance")
llg_numpy = pytest.importorskip("llguidance.numpy")
pytestmark = pytest.mark.skipif(matcher.NATIVE_KERNELS is None, reason="needs the compiled extension")

CASES = [
    ("regex", r"[0-9]{3}-[0-9]{4}", "555-1234"),
    ("regex", r"[A-Za-z ]{1,40}\.", "Hello world and friends."),
    ("regex", r"(cat|dog|bird)s?( and (cat|dog|bird)s?)*", "cats and dog and birds"),
    ("regex", r"[^\n]{0,60}", "Free text, with ünïcode & 😀 symbols!"),
    ("regex", r"(0|-?[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", "-12.5e+3"),
    ("regex", r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}", "ada.lovelace@example.org"),
    ("gbnf", JSON_GBNF, '{"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry\\n"], '
                        '"nested": {"x": -1.5e3, "ok": true, "u": "\\u00e9t\u00e9"}}'),
    ("gbnf", 'root ::= greeting ", " name "!"\ngreeting ::= "Hello" | "Hi" | "Good " ("morning" | "evening")\n'
             'name ::= [A-Z] [a-z]{1,12}', "Good evening, Ada!"),
]


@pytest.fixture(scope="module")
def qwen(shared_testdata):
    from tokenizers import Tokenizer

    from pyengine.text.token_bytes import token_pieces

    path = shared_testdata / "qwen2.5-tokenizer" / "tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    pieces = token_pieces(tok)
    vocab = [None if i in pieces.added_tokens or i in pieces.special_ids else pieces.pieces[i]
             for i in range(len(pieces.pieces))]
    trie_cls, _ = matcher.select("native")
    return tok, trie_cls(vocab), llguidance.LLTokenizer(path.read_text()), len(vocab), pieces.pieces


def _ids(words: np.ndarray, vocab_size: int) -> np.ndarray:
    return np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size])


@pytest.mark.slow
@pytest.mark.parametrize("kind,source,text", CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)])
def test_same_masks_as_llguidance(qwen, kind, source, text):
    tok, trie, ll_tok, vocab_size, _ = qwen
    eos = ll_tok.eos_token
    grammar = regex_grammar(source) if kind == "regex" else ebnf_grammar(source)
    ll_grammar = (llguidance.grammar_from("regex", source) if kind == "regex"
                  else llguidance.grammar_from("lark", llguidance.gbnf_to_lark.gbnf_to_lark(source)))
    ours = matcher.select("native")[1](grammar, trie, [eos])
    theirs = llguidance.LLMatcher(ll_tok, ll_grammar)
    assert not theirs.is_error(), theirs.get_error()
    words = np.zeros((vocab_size + 31) // 32, dtype=np.int32)
    ll_words = llg_numpy.allocate_token_bitmask(1, vocab_size)
    for step, token in enumerate(tok.encode(text).ids + [eos]):
        ours.fill_bitmask(words)
        llg_numpy.fill_next_token_bitmask(theirs, ll_words, 0)
        mine, ref = _ids(words, vocab_size), _ids(ll_words[0], vocab_size)
        assert np.array_equal(mine, ref), (
            f"step {step} after {tok.decode(tok.encode(text).ids[:step])!r}: ours only "
            f"{[tok.id_to_token(int(t)) for t in np.setdiff1d(mine, ref)[:8]]}, llguidance only "
            f"{[tok.id_to_token(int(t)) for t in np.setdiff1d(ref, mine)[:8]]}")
        assert ours.accept_token(token) and theirs.consume_token(token)
    assert ours.is_terminated()


NODE = {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["v", "kids"], "additionalProperties": False}
JSON_CASES = [  # (schema, instance): flat, arrays and enums, bounds, recursion, optional keys, anyOf,
    # formats and lengths, additional properties, prefixItems
    ({"type": "object", "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"},
                                       "name": {"type": "string"}}, "required": ["id", "ok", "name"],
      "additionalProperties": False}, {"id": -12, "ok": True, "name": "Ada Lovelace, née Byron 😀"}),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["x", "yy", "zzz"]}},
                                       "n": {"type": "number"}}, "required": ["tags", "n"],
      "additionalProperties": False}, {"tags": ["x", "zzz"], "n": -1.5e-3}),
    ({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 20}},
                                 "required": ["a"], "additionalProperties": False}, "minItems": 1, "maxItems": 3},
     [{"a": 3}, {"a": 19}]),
    (NODE, {"v": 1, "kids": [{"v": 2, "kids": []}, {"v": 30, "kids": []}]}),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "null"}},
      "required": ["a"], "additionalProperties": False}, {"a": 'q\n"x"\t', "c": None}),
    ({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}, {"type": "integer", "minimum": 10}]}, 123),
    ({"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                       "id": {"type": "string", "format": "uuid"},
                                       "s": {"type": "string", "minLength": 2, "maxLength": 4}, "k": {"const": "fixed"}},
      "required": ["when", "id", "s", "k"], "additionalProperties": False},
     {"when": "2024-05-31", "id": "123e4567-e89b-12d3-a456-426614174000", "s": "abc", "k": "fixed"}),
    ({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
     {"x": 1, "extra": [1, "two", {"three": False}]}),
    ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}, [7, "seven"]),
]
STRING_ONLY_OURS = (b"\x7f", b"\\/", b"\\u")


@pytest.mark.slow
@pytest.mark.parametrize("whitespace", ["compact", "flexible"])
@pytest.mark.parametrize("schema,instance", JSON_CASES, ids=[f"schema-{i}" for i in range(len(JSON_CASES))])
def test_same_json_masks_as_llguidance(qwen, whitespace, schema, instance):
    tok, trie, ll_tok, vocab_size, pieces = qwen
    eos = ll_tok.eos_token
    if whitespace == "compact":
        text = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
        compiler = llguidance.JsonCompiler(separators=(",", ":"), whitespace_flexible=False)
    else:
        text = json.dumps(instance, indent=2, ensure_ascii=False)
        compiler = llguidance.JsonCompiler(whitespace_flexible=True)
    plain = JsonOptions(whitespace, disable_additional_properties=False)  # llguidance's reading of objects
    ours = matcher.select("native")[1](json_schema_grammar(schema, plain), trie, [eos])
    theirs = llguidance.LLMatcher(ll_tok, compiler.compile(json.dumps(schema)))
    assert not theirs.is_error(), theirs.get_error()
    words = np.zeros((vocab_size + 31) // 32, dtype=np.int32)
    ll_words = llg_numpy.allocate_token_bitmask(1, vocab_size)
    ids = tok.encode(text).ids
    identical = 0
    for step, token in enumerate(ids + [eos]):
        ours.fill_bitmask(words)
        llg_numpy.fill_next_token_bitmask(theirs, ll_words, 0)
        mine, ref = _ids(words, vocab_size), _ids(ll_words[0], vocab_size)
        only_ours = [pieces[t] for t in np.setdiff1d(mine, ref)]
        only_theirs = [pieces[t] for t in np.setdiff1d(ref, mine)]
        forced = bytes(theirs.compute_ff_bytes())
        before = tok.decode(ids[:step])
        escape = b"\\" if (len(before) - len(before.rstrip("\\"))) % 2 else b""  # a pending backslash
        unexplained_ours = [p for p in only_ours
                            if not (forced.startswith(p) or any(s in escape + p for s in STRING_ONLY_OURS))]
        unexplained_theirs = [p for p in only_theirs
                              if not (b"\\u" in p or (before.endswith("-") and p.startswith(b"0")))]
        assert not unexplained_ours and not unexplained_theirs, (
            f"step {step} after {before!r}: ours only {unexplained_ours[:8]}, llguidance only {unexplained_theirs[:8]}")
        identical += not only_ours and not only_theirs
        assert ours.accept_token(token) and theirs.consume_token(token)
    assert ours.is_terminated()
    assert 4 * identical >= len(ids) + 1  # many steps agree exactly, not only up to the exceptions
