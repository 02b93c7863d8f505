"""Differential test against llguidance: identical allowed-token sets at every step, Qwen2.5 vocabulary.

Same grammar (regex, or GBNF converted by llguidance's own `gbnf_to_lark`), same tokenizer, same
valid token sequence; at each step our Rust mask must equal llguidance's, bit for bit. Conventions
aligned for the comparison: every added token (special or not) is unmatchable, as llguidance treats
them, and EOS is `<|endoftext|>`. Regexes use explicit ASCII classes: llguidance's \\d is Unicode.
Skipped when llguidance, the extension or ../shared/testdata is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.structured import matcher
from pyengine.structured.ebnf import ebnf_grammar
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
    return tok, trie_cls(vocab), llguidance.LLTokenizer(path.read_text()), len(vocab)


def _ids(words: np.ndarray, vocab_size: int) -> np.ndarray:
    return np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size])


@pytest.mark.slow
@pytest.mark.parametrize("kind,source,text", CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)])
def test_same_masks_as_llguidance(qwen, kind, source, text):
    tok, trie, ll_tok, vocab_size = qwen
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
