"""Fixtures for the text kernels: both implementations, hand-drawn tokenizers, real tokenizers.

`impl` runs a behaviour test once per implementation (the Python twins and, when the extension
is built, the Rust kernels). The hand-drawn vocabularies are built with the tokenizers library
itself, so `tokenizers` decodes them too and every kernel result can be checked against it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from pyengine.text import kernels
from pyengine.text import Tokenizer as PyengineTokenizer

IMPLS = [k for k in (kernels.PYTHON, kernels.NATIVE) if k is not None]
REAL_TOKENIZERS = ["qwen2.5-tokenizer", "gpt2", "tinyllama-1.1b-chat-v1.0"]


@pytest.fixture(params=IMPLS, ids=lambda k: k.name)
def impl(request) -> kernels.Kernels:
    """The Python twins, then the Rust kernels."""
    return request.param


def byte_level_tokenizer() -> Tokenizer:
    """A byte-level BPE vocabulary (GPT-2 style; "Ġ" is the space byte, "ä" is byte e4, ...).

        id  token        bytes        note
        0   a            61
        1   Ġb           20 62        " b"
        2   ä            e4           first byte of "你" (e4 bd a0)
        3   ½ł           bd a0        the rest of "你"
        4   ÿ            ff           never valid UTF-8
        5   Ċ            0a           "\\n"
        6   <|end|>                   added, special
        7   <|tool|>                  added, not special
    """
    tok = Tokenizer(models.BPE({"a": 0, "Ġb": 1, "ä": 2, "½ł": 3, "ÿ": 4, "Ċ": 5}, merges=[]))
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|end|>", special=True)])
    tok.add_tokens([AddedToken("<|tool|>", special=False)])
    return tok


def sentencepiece_tokenizer() -> Tokenizer:
    """A SentencePiece vocabulary with byte fallback (Llama-2 style decoder).

        id  token     note
        0   <unk>     special
        1   <s>       special
        2   </s>      special
        3   ▁hi       " hi"; the first space of the text is stripped
        4   ▁         " "
        5   <0xE4>    byte tokens: "你" is <0xE4><0xBD><0xA0>
        6   <0xBD>
        7   <0xA0>
        8   <0x20>    a space spelled as a byte
        9   x
    """
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁hi": 3, "▁": 4, "<0xE4>": 5, "<0xBD>": 6, "<0xA0>": 7,
             "<0x20>": 8, "x": 9}
    tok = Tokenizer(models.BPE(vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<unk>", "<s>", "</s>")])
    return tok


def wordpiece_tokenizer() -> Tokenizer:
    """A BERT-style WordPiece vocabulary: "##" continues a word; cleanup glues punctuation.

        id  token    id  token
        0   [UNK]    4   play
        1   [CLS]    5   ##ing
        2   [SEP]    6   .
        3   we       7   n't
    """
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "we": 3, "play": 4, "##ing": 5, ".": 6, "n't": 7}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("[UNK]", "[CLS]", "[SEP]")])
    return tok


def metaspace_tokenizer() -> Tokenizer:
    """A Metaspace decoder (newer SentencePiece files): "▁" is a space, dropped in the first token."""
    vocab = {"<s>": 0, "▁the": 1, "▁cat": 2, "s": 3, "▁": 4, "▁▁": 5}
    tok = Tokenizer(models.BPE(vocab, merges=[]))
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.add_special_tokens([AddedToken("<s>", special=True)])
    return tok


def plain_tokenizer() -> Tokenizer:
    """No decoder at all: tokenizers joins the tokens with spaces."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.add_special_tokens([AddedToken("<s>", special=True)])
    return tok


def trained_byte_level_tokenizer(vocab_size: int = 600) -> Tokenizer:
    """A byte-level BPE trained here on mixed-script text, so characters split across tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The quick brown fox jumps over the lazy dog. 你好，世界！ Ünïcödé façade — naïve café 🙂🚀.",
              "Привет, мир! こんにちは 世界. 12345 + 67890 = 80235; x**2 -> y", "\t\n  indented {json: [1, 2]}"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 20, trainer)
    return tok


TINY_TOKENIZERS = {
    "byte_level": byte_level_tokenizer,
    "sentencepiece": sentencepiece_tokenizer,
    "wordpiece": wordpiece_tokenizer,
    "metaspace": metaspace_tokenizer,
    "plain": plain_tokenizer,
    "trained_bpe": trained_byte_level_tokenizer,
}


@functools.lru_cache(maxsize=None)
def tiny(name: str) -> Tokenizer:
    return TINY_TOKENIZERS[name]()


@functools.lru_cache(maxsize=None)
def real(folder: Path) -> PyengineTokenizer:
    """A real tokenizer, through the wrapper the engine uses (parsed once per session)."""
    return PyengineTokenizer.from_pretrained(folder)


@functools.lru_cache(maxsize=None)
def table(kind: str, backend: Tokenizer, special_ids: frozenset[int] = frozenset()) -> Any:
    """One TokenTable per (implementation, tokenizer), as the engine builds it once."""
    impl = kernels.PYTHON if kind == "python" else kernels.NATIVE
    return impl.TokenTable.from_tokenizer(backend, special_ids)


@pytest.fixture(scope="session")
def real_tokenizer(shared_testdata):
    """name -> the wrapper Tokenizer of ../shared/testdata/<name> (skipped when absent)."""
    return lambda name: real(shared_testdata / name)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """name -> one of the hand-drawn (or trained-here) tokenizers above."""
    return tiny


@pytest.fixture(scope="session")
def make_table():
    """(implementation name, backend, special ids) -> its TokenTable, built once."""
    return table


@pytest.fixture(scope="session")
def native() -> kernels.Kernels:
    """The Rust kernels (skipped when the extension was built without them)."""
    if kernels.NATIVE is None:
        pytest.skip("pyengine._native has no text kernels")
    return kernels.NATIVE
