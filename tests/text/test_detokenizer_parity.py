"""Differential tests: Python twin == Rust kernel == tokenizers, on random id sequences.

For every tokenizer (the hand-drawn ones always; Qwen2.5, GPT-2 and TinyLlama when
../shared/testdata is present), hypothesis draws id sequences rich in the hard cases: special and
added tokens, byte-fallback tokens, byte-level tokens that split characters, ids at the end of
the vocabulary; plus a prompt and the two flags. Then:

1. both implementations give identical deltas, `token_text`s, flushes and texts;
2. the deltas, flushed, are exactly `tokenizers.decode(prompt + ids)` minus the prompt's text;
3. on byte-level tokenizers each delta equals tokenizers' `DecodeStream` step (vLLM's detokenizer);
4. invalid ids give the same ValueError from both.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers.decoders import DecodeStream

from pyengine.text import kernels
from pyengine.text.token_bytes import TokenPieces, token_pieces

TINY = ["byte_level", "sentencepiece", "wordpiece", "metaspace", "plain", "trained_bpe"]
BYTE_LEVEL = {"byte_level", "trained_bpe", "qwen2.5-tokenizer", "gpt2"}
REAL = ["qwen2.5-tokenizer", "gpt2", "tinyllama-1.1b-chat-v1.0"]
SETTINGS = settings(max_examples=80, deadline=None)


@functools.lru_cache(maxsize=None)
def pieces_of(backend) -> TokenPieces:
    return token_pieces(backend)


def interesting_ids(pieces: TokenPieces) -> st.SearchStrategy[int]:
    """Mostly the tokens where detokenizers go wrong, some uniformly random ones."""
    size = len(pieces.pieces)
    special = sorted(pieces.special_ids | set(pieces.added_tokens))
    partial = sorted(i for i, p in enumerate(pieces.pieces[:5000]) if p and not _is_utf8(p))
    byte_ids = sorted(pieces.byte_values)
    choices = [st.integers(0, size - 1), st.integers(max(size - 30, 0), size - 1)]
    choices += [st.sampled_from(group) for group in (special, partial, byte_ids) if group]
    return st.one_of(*choices)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def run(impl_table, impl, ids, prompt, skip, spaces):
    """(token_text before each push, delta) per id, then the flush and the final text."""
    detok = impl.IncrementalDetokenizer(impl_table, prompt, skip, spaces)
    steps = [(detok.token_text(i), detok.push(i)) for i in ids]
    return steps, detok.flush(), detok.text


def check(backend, special_ids, make_table, name, ids, prompt, skip, spaces):
    python_table = make_table("python", backend, special_ids)
    native_table = make_table("native", backend, special_ids)
    expected = run(python_table, kernels.PYTHON, ids, prompt, skip, spaces)
    assert run(native_table, kernels.NATIVE, ids, prompt, skip, spaces) == expected  # (1)
    steps, flushed, text = expected
    assert text == "".join(delta for _, delta in steps) + flushed
    for table in (python_table, native_table):
        assert table.decode(ids, skip) == backend.decode(ids, skip_special_tokens=skip)
    if skip or spaces:  # (2): spaces_between_special_tokens=False departs from decode, as in vLLM
        primed = kernels.PYTHON.IncrementalDetokenizer(python_table, None, skip)
        before = "".join(primed.push(i) for i in prompt or [])  # the prompt's text, as returned
        assert before + text == backend.decode((prompt or []) + ids, skip_special_tokens=skip)
    if name in BYTE_LEVEL and spaces:  # (3), with the stream primed by stepping through the prompt
        reference = DecodeStream(skip_special_tokens=skip)
        for token_id in prompt or []:
            reference.step(backend, token_id)
        assert [delta for _, delta in steps] == [reference.step(backend, i) or "" for i in ids]


@pytest.mark.parametrize("name", TINY)
@SETTINGS
@given(data=st.data(), skip=st.booleans(), spaces=st.booleans())
def test_tiny_tokenizers(native, tiny_tokenizer, make_table, name, data, skip, spaces):
    backend = tiny_tokenizer(name)
    token = interesting_ids(pieces_of(backend))
    ids = data.draw(st.lists(token, max_size=40), label="ids")
    prompt = data.draw(st.none() | st.lists(token, max_size=6), label="prompt")
    check(backend, frozenset(), make_table, name, ids, prompt, skip, spaces)


@pytest.mark.parametrize("name", REAL)
@SETTINGS
@given(data=st.data(), skip=st.booleans(), spaces=st.booleans())
def test_real_tokenizers(native, real_tokenizer, make_table, name, data, skip, spaces):
    tok = real_tokenizer(name)
    backend = tok.backend_tokenizer
    token = interesting_ids(pieces_of(backend))
    ids = data.draw(st.lists(token, max_size=40), label="ids")
    prompt = data.draw(st.none() | st.lists(token, max_size=6), label="prompt")
    check(backend, tok.all_special_ids, make_table, name, ids, prompt, skip, spaces)


@pytest.mark.parametrize("name", ["trained_bpe", "sentencepiece"])
def test_very_long_output(native, tiny_tokenizer, make_table, name):
    """20,000 random tokens: same text from both, equal to decode, with nothing lost."""
    import random

    backend = tiny_tokenizer(name)
    rng = random.Random(1)
    ids = [rng.randrange(backend.get_vocab_size(True)) for _ in range(20_000)]
    for skip in (True, False):
        check(backend, frozenset(), make_table, name, ids, None, skip, True)


@SETTINGS
@given(bad=st.one_of(st.integers(max_value=-1), st.integers(min_value=8)), valid=st.lists(st.integers(0, 7)))
def test_invalid_ids_give_the_same_error(native, tiny_tokenizer, make_table, bad, valid):
    backend = tiny_tokenizer("byte_level")
    messages = []
    for impl in (kernels.PYTHON, native):
        table = make_table(impl.name, backend, frozenset())
        detok = impl.IncrementalDetokenizer(table, valid)
        errors = []
        for call in (lambda: detok.push(bad), lambda: detok.token_text(bad), lambda: table.decode(valid + [bad]),
                     lambda: impl.IncrementalDetokenizer(table, valid + [bad])):
            with pytest.raises(ValueError) as info:
                call()
            errors.append(str(info.value))
        messages.append(errors)
    assert messages[0] == messages[1]
    assert messages[0][0] == f"token id {bad} is out of range for a vocabulary of 8 tokens"
