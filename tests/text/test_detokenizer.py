"""The incremental detokenizer's behaviour, on both implementations (`impl`).

Hand-drawn vocabularies (see conftest.py) make each rule visible; the real tokenizers of
../shared/testdata check that whole texts round-trip and that the deltas are the ones tokenizers'
own `DecodeStream` (what vLLM uses) produces.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models
from tokenizers.decoders import DecodeStream

from pyengine.text import kernels
from pyengine.text.token_bytes import token_pieces

REPLACEMENT = "\ufffd"


def stream(impl, backend, ids, prompt=None, skip=True, spaces=True):
    """The deltas of pushing `ids` one at a time, then the flush."""
    detok = impl.IncrementalDetokenizer(impl.TokenTable.from_tokenizer(backend), prompt, skip, spaces)
    return [detok.push(i) for i in ids] + [detok.flush()]


# -- byte-level BPE --------------------------------------------------------------------------------


def test_decoding_each_token_separately_is_wrong(impl, tiny_tokenizer):
    """ä (e4) + ½ł (bd a0) is "你": alone each half is U+FFFD; the detokenizer waits for the whole."""
    tok = tiny_tokenizer("byte_level")
    assert [tok.decode([i]) for i in (0, 2, 3)] == ["a", REPLACEMENT, REPLACEMENT * 2]
    assert stream(impl, tok, [0, 2, 3, 1]) == ["a", "", "你", " b", ""]
    assert tok.decode([0, 2, 3, 1]) == "a你 b"


def test_invalid_bytes_are_held_while_the_text_ends_in_replacement(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    # ff can never start a character: it is U+FFFD at once, but held (DecodeStream's rule) until
    # text that is not U+FFFD follows.
    assert stream(impl, tok, [0, 4, 4, 1]) == ["a", "", "", "\ufffd\ufffd b", ""]
    assert "".join(stream(impl, tok, [0, 4, 4, 1])) == tok.decode([0, 4, 4, 1])


def test_flush_releases_an_unfinished_character_as_decode_shows_it(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    assert stream(impl, tok, [0, 2]) == ["a", "", REPLACEMENT]
    assert tok.decode([0, 2]) == "a" + REPLACEMENT


def test_skip_special_tokens(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    assert stream(impl, tok, [0, 6, 7], skip=True) == ["a", "", "<|tool|>", ""]  # <|tool|> is not special
    assert stream(impl, tok, [0, 6, 7], skip=False) == ["a", "<|end|>", "<|tool|>", ""]


def test_prompt_is_decoded_first_but_not_returned(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    detok = impl.IncrementalDetokenizer(impl.TokenTable.from_tokenizer(tok), [0, 1, 2])  # ends in half of 你
    assert detok.push(3) == "你"  # the prompt's e4 completes with the first output token, as in vLLM
    assert detok.text == "你"


def test_text_accumulates_the_deltas(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    detok = impl.IncrementalDetokenizer(impl.TokenTable.from_tokenizer(tok))
    for token_id in (0, 2, 3, 5, 1):
        detok.push(token_id)
    assert detok.text == "a你\n b"


# -- SentencePiece with byte fallback ---------------------------------------------------------------


def test_byte_fallback_run_is_text_only_as_a_whole(impl, tiny_tokenizer):
    tok = tiny_tokenizer("sentencepiece")
    assert stream(impl, tok, [5, 6, 7, 3]) == ["", "", "", "你 hi", ""]
    # A run that is not valid UTF-8 as a whole is one U+FFFD per byte token, like tokenizers.
    assert "".join(stream(impl, tok, [5, 6, 3])) == tok.decode([5, 6, 3]) == "\ufffd\ufffd hi"
    # A valid run followed by one more byte token turns invalid: so a run is never emitted early.
    assert tok.decode([5, 6, 7, 5, 3]) == "\ufffd" * 4 + " hi"
    assert "".join(stream(impl, tok, [5, 6, 7, 5, 3])) == tok.decode([5, 6, 7, 5, 3])


def test_sentencepiece_leading_space_depends_on_context(impl, tiny_tokenizer):
    tok = tiny_tokenizer("sentencepiece")
    assert stream(impl, tok, [3, 3]) == ["hi", " hi", ""]  # Strip drops the text's first space
    assert stream(impl, tok, [3, 3], prompt=[1, 9]) == [" hi", " hi", ""]  # after a prompt it stays
    assert stream(impl, tok, [8, 3]) == ["", " hi", ""]  # a byte-spelled space is stripped too


def test_a_kept_special_token_breaks_a_byte_run(impl, tiny_tokenizer):
    tok = tiny_tokenizer("sentencepiece")
    ids = [5, 2, 6, 7]
    assert "".join(stream(impl, tok, ids, skip=True)) == tok.decode(ids) == "你"
    kept = "".join(stream(impl, tok, ids, skip=False))
    assert kept == tok.decode(ids, skip_special_tokens=False) == "\ufffd</s>\ufffd\ufffd"


# -- WordPiece, Metaspace, no decoder ---------------------------------------------------------------


def test_wordpiece_joins_subwords_and_cleans_punctuation(impl, tiny_tokenizer):
    tok = tiny_tokenizer("wordpiece")
    ids = [3, 4, 5, 7, 6]
    assert stream(impl, tok, ids) == ["we", " play", "ing", "n't", ".", ""]
    assert tok.decode(ids) == "we playingn't."


def test_spaces_between_special_tokens(impl, tiny_tokenizer):
    """vLLM: with special tokens kept and the flag off, an added token after another is bare."""
    tok = tiny_tokenizer("wordpiece")
    ids = [1, 3, 2, 1]
    assert "".join(stream(impl, tok, ids, skip=False)) == "[CLS] we [SEP] [CLS]"
    assert "".join(stream(impl, tok, ids, skip=False, spaces=False)) == "[CLS] we [SEP][CLS]"
    assert "".join(stream(impl, tok, ids, skip=True, spaces=False)) == "we"  # skipping wins


def test_metaspace_drops_the_first_tokens_marker(impl, tiny_tokenizer):
    tok = tiny_tokenizer("metaspace")
    assert stream(impl, tok, [1, 2, 3]) == ["the", " cat", "s", ""]
    assert stream(impl, tok, [5, 1]) == ["", " the", ""]  # every "▁" of the first token goes


def test_no_decoder_joins_with_spaces(impl, tiny_tokenizer):
    tok = tiny_tokenizer("plain")
    assert stream(impl, tok, [1, 2, 1]) == ["a", " b", " a", ""]
    assert tok.decode([1, 2, 1]) == "a b a"


def test_unsupported_decoder_is_a_clear_error():
    tok = Tokenizer(models.WordLevel({"a</w>": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    with pytest.raises(ValueError, match="decoder step BPEDecoder .* is not supported"):
        token_pieces(tok)


# -- ids, errors, vocabulary size -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 8, 2**40, 2**70])
def test_out_of_range_ids_are_value_errors_and_change_nothing(impl, tiny_tokenizer, bad):
    detok = impl.IncrementalDetokenizer(impl.TokenTable.from_tokenizer(tiny_tokenizer("byte_level")))
    detok.push(2)  # half of 你
    with pytest.raises(ValueError, match=f"^token id {bad} is out of range for a vocabulary of 8 tokens$"):
        detok.push(bad)
    assert detok.push(3) == "你"
    with pytest.raises(ValueError, match="out of range"):
        impl.IncrementalDetokenizer(detok.table, [0, bad])


def test_model_vocabulary_larger_than_the_tokenizer(impl, tiny_tokenizer):
    """Qwen pads its embedding past the tokenizer; those ids decode to nothing, as in `decode`."""
    table = impl.TokenTable.from_tokenizer(tiny_tokenizer("byte_level"), (), vocab_size=12)
    assert table.vocab_size == 12
    assert table.decode([0, 11, 1]) == "a b"


def test_native_is_the_default_when_built(monkeypatch):
    """What the engine gets: the Rust kernels unless PYENGINE_KERNELS=python asks for the twins."""
    import os

    from pyengine import settings

    assert kernels.SELECTED.name == kernels.KERNELS
    if kernels.NATIVE is not None and "PYENGINE_KERNELS" not in os.environ:
        assert kernels.IncrementalDetokenizer is kernels.NATIVE.IncrementalDetokenizer
    with pytest.raises(ValueError, match="PYENGINE_KERNELS must be 'native' or 'python'"):
        settings.parse("fast")


# -- logprob decoded_token --------------------------------------------------------------------------


def test_token_text_as_vllm_reports_it(impl, tiny_tokenizer):
    tok = tiny_tokenizer("byte_level")
    detok = impl.IncrementalDetokenizer(impl.TokenTable.from_tokenizer(tok))
    assert detok.token_text(1) == " b"
    assert detok.token_text(6) == "<|end|>"  # special tokens keep their text in logprobs
    assert detok.token_text(2) == ""  # half a character, and no context to complete it
    detok.push(0)
    detok.push(2)
    # ½ł completes the e4 pushed before it: vLLM reports the whole character for this token.
    assert detok.token_text(3) == "你"
    assert detok.table.token_text(3, [0, 2]) == "你"


# -- real tokenizers --------------------------------------------------------------------------------

SAMPLE = "Hello, world! 你好，世界 🙂 naïve café — ünïcödé\n\tcode: x = {'a': [1, 2]}  # done"


@pytest.mark.parametrize("name", ["qwen2.5-tokenizer", "gpt2", "tinyllama-1.1b-chat-v1.0"])
def test_real_tokenizers_round_trip(impl, real_tokenizer, make_table, name):
    tok = real_tokenizer(name)
    backend = tok.backend_tokenizer
    table = make_table(impl.name, backend, tok.all_special_ids)
    ids = backend.encode(SAMPLE, add_special_tokens=False).ids
    detok = impl.IncrementalDetokenizer(table)
    deltas = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(deltas) == backend.decode(ids)
    assert all(REPLACEMENT not in d for d in deltas)  # never half a character
    # With a prompt, the text is what the prompt + output decode to, minus the prompt's text.
    prompt = backend.encode("Say it:", add_special_tokens=True).ids
    detok = impl.IncrementalDetokenizer(table, prompt)
    out = "".join(detok.push(i) for i in ids) + detok.flush()
    assert backend.decode(prompt + ids) == backend.decode(prompt) + out


@pytest.mark.parametrize("name", ["qwen2.5-tokenizer", "gpt2"])
def test_deltas_match_decode_stream(impl, real_tokenizer, make_table, name):
    """On byte-level tokenizers every delta is the one vLLM's DecodeStream gives."""
    tok = real_tokenizer(name)
    backend = tok.backend_tokenizer
    prompt = backend.encode("<|im_start|>user\nhi<|im_end|>\n").ids
    ids = backend.encode(SAMPLE * 3).ids
    reference = DecodeStream(ids=prompt, skip_special_tokens=True)
    detok = impl.IncrementalDetokenizer(make_table(impl.name, backend, tok.all_special_ids), prompt)
    assert [detok.push(i) for i in ids] == [reference.step(backend, i) or "" for i in ids]
