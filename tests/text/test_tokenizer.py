"""Tokenization matches transformers on real tokenizers; the wrapper reads HF tokenizer folders."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from pyengine.text import Tokenizer

VECTORS = [
    # folder, llama.cpp vector file stem, tokenizer_config override
    ("gpt2", "ggml-vocab-gpt-2", None),
    ("qwen2.5-tokenizer", "ggml-vocab-qwen2", None),
    # llama.cpp's SentencePiece vectors record the sentencepiece-era ("legacy") ids; transformers
    # 5 differs from them on texts that start with spaces (see test_llama_default_matches_transformers_5)
    ("tinyllama-1.1b-chat-v1.0", "ggml-vocab-llama-spm", True),
]


def _vectors(folder, stem):
    texts = (folder / f"{stem}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    ids = [[int(x) for x in line.split()] for line in (folder / f"{stem}.gguf.out").read_text().splitlines()]
    assert len(texts) == len(ids)
    return list(zip(texts, ids))


@pytest.mark.parametrize("name,stem,legacy", VECTORS)
def test_llama_cpp_test_vectors(shared_testdata, name, stem, legacy):
    folder = shared_testdata / name
    tokenizer = Tokenizer.from_pretrained(folder, legacy=legacy)
    for text, expected in _vectors(folder, stem):
        assert tokenizer.encode(text, add_special_tokens=False) == expected, repr(text)


def test_llama_default_matches_transformers_5_after_special_tokens(shared_testdata):
    """transformers 5 prepends "▁" to the first piece only: "</s>\\n" is [2, 13], not [2, 29871, 13]."""
    tokenizer = Tokenizer.from_pretrained(shared_testdata / "tinyllama-1.1b-chat-v1.0")
    assert tokenizer.encode("</s>\nhi", add_special_tokens=False) == [2, 13, 2918]
    legacy = Tokenizer.from_pretrained(shared_testdata / "tinyllama-1.1b-chat-v1.0", legacy=True)
    assert legacy.encode("</s>\nhi", add_special_tokens=False) == [2, 29871, 13, 2918]


def test_llama_adds_bos_once(shared_testdata):
    tokenizer = Tokenizer.from_pretrained(shared_testdata / "tinyllama-1.1b-chat-v1.0")
    assert tokenizer.bos_token_id == 1 and tokenizer.eos_token_id == 2
    ids = tokenizer.encode("Hello world")
    assert ids[0] == 1 and ids[1] != 1
    assert tokenizer.encode("Hello world", add_special_tokens=False) == ids[1:]


def test_qwen_special_tokens(shared_testdata):
    tokenizer = Tokenizer.from_pretrained(shared_testdata / "qwen2.5-tokenizer")
    assert tokenizer.eos_token_id == 151645  # <|im_end|>
    assert tokenizer.bos_token_id is None
    assert {151643, 151644, 151645} <= tokenizer.all_special_ids
    assert tokenizer.vocab_size >= 151643
    text = "<|im_start|>user\nHi<|im_end|>"
    ids = tokenizer.encode(text)
    assert ids[0] == 151644 and ids[-1] == 151645
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.decode(ids) == "user\nHi"


@pytest.fixture
def tiny_folder(tmp_path):
    """A byte-level BPE trained here, with a tokenizer_config.json: no ../shared needed."""
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["hello world, héllo wörld!"] * 20, trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    config = {"eos_token": {"content": "<|im_end|>"}, "bos_token": None, "model_max_length": 512,
              "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return tmp_path


def test_tiny_tokenizer_round_trips(tiny_folder):
    tokenizer = Tokenizer.from_pretrained(tiny_folder)
    assert tokenizer.eos_token_id == tokenizer.backend_tokenizer.token_to_id("<|im_end|>")
    for text in ["hello world", "héllo wörld!", "日本語 🎉", ""]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.is_special(tokenizer.eos_token_id)
    assert tokenizer.model_max_length == 512


def test_chat_template_ids_are_tokenized_without_special_tokens(tiny_folder):
    tokenizer = Tokenizer.from_pretrained(tiny_folder)
    messages = [{"role": "user", "content": "hello"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True) == \
        tokenizer.encode(text, add_special_tokens=False)


def test_chat_template_jinja_file_is_read(tiny_folder):
    (tiny_folder / "chat_template.jinja").write_text("{{ messages[0].content | upper }}")
    tokenizer = Tokenizer.from_pretrained(tiny_folder)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) == "HI"


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        Tokenizer.from_pretrained(tmp_path)
