"""The tokenizer wrapper: ids match transformers 5 on real tokenizers; HF folders load or fail clearly.

Real tokenizers come from ../shared/testdata (skipped without it); the tests at the bottom build a
tiny tokenizer in tmp_path so the wrapper is checked with no shared data at all.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from pyengine.text import ChatTemplateError, Tokenizer


@functools.lru_cache(maxsize=None)
def load(folder: Path, use_file_pipeline: bool = False) -> Tokenizer:
    """Each real tokenizer is parsed once per session (the Qwen files are 7 MB)."""
    return Tokenizer.from_pretrained(folder, use_file_pipeline=use_file_pipeline)


def read_vectors(folder: Path, stem: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's vectors: texts split on the marker (last piece empty), one line of ids per text."""
    texts = (folder / f"{stem}.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    lines = (folder / f"{stem}.gguf.out").read_text(encoding="utf-8").splitlines()
    assert len(texts) == len(lines) == 46
    return [(text, [int(x) for x in line.split()]) for text, line in zip(texts, lines)]


# -- llama.cpp test vectors ------------------------------------------------------------------------

VECTORS = [  # folder, vector file stem, use_file_pipeline
    ("gpt2", "ggml-vocab-gpt-2", False),
    ("qwen2.5-tokenizer", "ggml-vocab-qwen2", False),
    # The Llama vectors record sentencepiece's ids ("▁" before every text, even one starting with a
    # space), which tokenizer.json run as written reproduces; transformers 5 differs on 15 of them.
    ("tinyllama-1.1b-chat-v1.0", "ggml-vocab-llama-spm", True),
]


@pytest.mark.parametrize("name,stem,use_file_pipeline", VECTORS)
def test_llama_cpp_vectors(shared_testdata, name, stem, use_file_pipeline):
    folder = shared_testdata / name
    tokenizer = load(folder, use_file_pipeline)
    wrong = [(text, ids, got) for text, ids in read_vectors(folder, stem)
             if (got := tokenizer.encode(text, add_special_tokens=False)) != ids]
    assert not wrong, f"{len(wrong)} of 46 differ, first: {wrong[0]}"


def test_llama_transformers_5_spacing_differs_only_on_leading_spaces(shared_testdata):
    folder = shared_testdata / "tinyllama-1.1b-chat-v1.0"
    tokenizer = load(folder)
    vectors = read_vectors(folder, "ggml-vocab-llama-spm")
    differ = [text for text, ids in vectors if tokenizer.encode(text, add_special_tokens=False) != ids]
    assert len(differ) == 15 and all(text.startswith(" ") for text in differ)
    # ids from transformers 5.x AutoTokenizer: one "▁" is folded into the text's own leading space
    assert tokenizer.encode(" Hello", add_special_tokens=False) == [15043]
    assert tokenizer.encode("   Hello", add_special_tokens=False) == [259, 15043]
    assert tokenizer.encode(" ", add_special_tokens=False) == [29871]


def test_llama_no_extra_space_after_special_tokens(shared_testdata):
    """The chat-template case: "</s>\\n" is [2, 13] in transformers 5, [2, 29871, 13] in the file."""
    folder = shared_testdata / "tinyllama-1.1b-chat-v1.0"
    assert load(folder).encode("</s>\nhi", add_special_tokens=False) == [2, 13, 2918]
    assert load(folder, True).encode("</s>\nhi", add_special_tokens=False) == [2, 29871, 13, 2918]


def test_llama_legacy_true_prepends_to_every_piece(shared_testdata):
    """stories260K says legacy: true: transformers 5 then uses Metaspace(prepend_scheme="always")."""
    tokenizer = load(shared_testdata / "stories260K" / "hf")
    ids = tokenizer.encode("</s>\nhi", add_special_tokens=False)
    assert ids == [2, 410, 13, 415, 417]
    assert tokenizer.convert_ids_to_tokens(ids) == ["</s>", "▁", "<0x0A>", "h", "i"]
    assert tokenizer.encode(" Once upon", add_special_tokens=False) == [403, 407]  # no doubled "▁"


# -- special tokens and BOS ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tinyllama-1.1b-chat-v1.0", "stories260K/hf"])
def test_llama_adds_bos_once(shared_testdata, name):
    tokenizer = load(shared_testdata / name)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)
    ids = tokenizer.encode("Hello world")
    assert ids[0] == 1 and ids[1] != 1
    assert tokenizer.encode("Hello world", add_special_tokens=False) == ids[1:]


def test_gpt2_special_tokens_from_the_class_defaults(shared_testdata):
    """gpt2's tokenizer_config.json names no token; transformers' GPT2Tokenizer defaults apply."""
    tokenizer = load(shared_testdata / "gpt2")
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == 50256
    assert tokenizer.all_special_ids == {50256}
    assert tokenizer.encode("Hello") == [15496]  # no BOS: GPT-2's post-processor adds none
    assert tokenizer.chat_template is None and tokenizer.vocab_size == 50257
    assert tokenizer.model_max_length == 1024


def test_qwen_special_tokens(shared_testdata):
    tokenizer = load(shared_testdata / "qwen2.5-tokenizer")
    assert tokenizer.eos_token_id == 151645  # <|im_end|>
    assert tokenizer.bos_token_id is None
    assert tokenizer.special_tokens == {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    assert set(range(151643, 151657)) <= tokenizer.all_special_ids
    assert not tokenizer.is_special(151657)  # <tool_call> is an added token but not a special one
    assert tokenizer.vocab_size == 151665
    text = "<|im_start|>user\nHi<|im_end|>"
    ids = tokenizer.encode(text)
    assert ids[0] == 151644 and ids[-1] == 151645
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.decode(ids) == "user\nHi"


# -- decoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,stem", [("gpt2", "ggml-vocab-gpt-2"), ("qwen2.5-tokenizer", "ggml-vocab-qwen2")])
def test_byte_level_decode_round_trips_the_vectors(shared_testdata, name, stem):
    folder = shared_testdata / name
    tokenizer = load(folder)
    for text, ids in read_vectors(folder, stem):
        assert tokenizer.decode(ids) == text


def test_llama_decode_round_trips_the_vectors(shared_testdata):
    """The decoder strips the "▁" the encoder puts first; with transformers 5's Metaspace a text's
    own leading space *is* that "▁", so such a text comes back one space shorter (as in transformers)."""
    folder = shared_testdata / "tinyllama-1.1b-chat-v1.0"
    tokenizer = load(folder)
    for text, _ in read_vectors(folder, "ggml-vocab-llama-spm"):
        expected = text[1:] if text.startswith(" ") else text
        assert tokenizer.decode(tokenizer.encode(text)) == expected


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_qwen_decode_round_trips_any_text(shared_testdata, text):
    tokenizer = load(shared_testdata / "qwen2.5-tokenizer")
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=False) == unicodedata.normalize("NFC", text)


# -- a tiny tokenizer built here (no shared data needed) -------------------------------------------

TINY_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def write_tiny(folder: Path, config: dict | None = None, bos_processor: bool = False) -> Path:
    """A byte-level BPE trained on a few words, with <|endoftext|> <|im_start|> <|im_end|> <bos>."""
    folder.mkdir(parents=True, exist_ok=True)
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["hello world, héllo wörld!"] * 20, trainer)
    if bos_processor:
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 3)])
    backend.save(str(folder / "tokenizer.json"))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny(tmp_path, {"eos_token": {"content": "<|im_end|>", "special": True}, "bos_token": None,
                                 "model_max_length": 512, "chat_template": TINY_TEMPLATE})


def test_tiny_round_trips_and_special_tokens(tiny):
    tokenizer = Tokenizer.from_pretrained(str(tiny))
    assert tokenizer.eos_token_id == tokenizer.backend_tokenizer.token_to_id("<|im_end|>") == 2
    assert tokenizer.bos_token_id is None and tokenizer.model_max_length == 512
    for text in ["hello world", "héllo wörld!", "日本語 🎉", " two  spaces ", ""]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = tokenizer.encode("hello<|im_end|>")
    assert ids[-1] == 2 and tokenizer.is_special(2) and not tokenizer.is_special(ids[0])
    assert tokenizer.decode(ids) == "hello" and tokenizer.decode(ids, skip_special_tokens=False) == "hello<|im_end|>"
    assert tokenizer.all_special_ids == {0, 1, 2, 3}  # all four were trained as special tokens
    assert tokenizer.vocab_size == tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    assert tokenizer.convert_ids_to_tokens([2, 10**6]) == ["<|im_end|>", None]


def test_tiny_chat_ids_are_tokenized_without_special_tokens(tmp_path):
    tokenizer = Tokenizer.from_pretrained(write_tiny(tmp_path, {"bos_token": "<bos>", "chat_template": TINY_TEMPLATE},
                                                     bos_processor=True))
    messages = [{"role": "user", "content": "hello"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert ids == tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.encode(text) == [3] + ids  # the post-processor's BOS, only outside chat ids


def test_post_processor_decides_bos_not_the_config_flags(tmp_path):
    """transformers 5 ignores add_bos_token/add_eos_token when tokenizer.json exists."""
    flags = {"bos_token": "<bos>", "add_bos_token": True, "eos_token": "<|im_end|>", "add_eos_token": True}
    with_processor = Tokenizer.from_pretrained(write_tiny(tmp_path / "a", flags, bos_processor=True))
    assert with_processor.encode("hello") == [3] + with_processor.encode("hello", add_special_tokens=False)
    without = Tokenizer.from_pretrained(write_tiny(tmp_path / "b", flags))
    assert without.encode("hello") == without.encode("hello", add_special_tokens=False)


def test_template_files_and_named_templates(tiny):
    (tiny / "chat_template.jinja").write_text("{{ messages[0].content | upper }}", encoding="utf-8")
    (tiny / "additional_chat_templates").mkdir()
    (tiny / "additional_chat_templates" / "tool_use.jinja").write_text("tools given: {{ tools is not none }}", encoding="utf-8")
    tokenizer = Tokenizer.from_pretrained(tiny)
    messages = [{"role": "user", "content": "hi"}]
    assert tokenizer.chat_template == "{{ messages[0].content | upper }}"  # the .jinja file wins
    assert tokenizer.apply_chat_template(messages) == "HI"
    assert tokenizer.apply_chat_template(messages, tools=[{"type": "function"}]) == "tools given: True"
    assert tokenizer.apply_chat_template(messages, chat_template="tool_use") == "tools given: False"  # by name
    assert tokenizer.apply_chat_template(messages, chat_template="{{ 1 + 1 }}") == "2"  # a source


def test_list_of_templates_in_the_config(tmp_path):
    templates = [{"name": "default", "template": "plain"}, {"name": "rag", "template": "{{ documents | length }}"}]
    tokenizer = Tokenizer.from_pretrained(write_tiny(tmp_path, {"chat_template": templates}))
    assert tokenizer.chat_template == "plain"
    assert tokenizer.apply_chat_template([], tools=[]) == "plain"  # no tool_use template: the default
    assert tokenizer.apply_chat_template([], chat_template="rag", documents=[{"title": "a", "text": "b"}]) == "1"


def test_missing_template_errors(tmp_path):
    no_template = Tokenizer.from_pretrained(write_tiny(tmp_path / "a"))
    with pytest.raises(ChatTemplateError, match="no chat template"):
        no_template.apply_chat_template([{"role": "user", "content": "hi"}])
    named_only = Tokenizer.from_pretrained(write_tiny(tmp_path / "b", {"chat_template": [{"name": "rag", "template": "x"}]}))
    with pytest.raises(ChatTemplateError, match=r"no default.*\['rag'\]"):
        named_only.apply_chat_template([{"role": "user", "content": "hi"}])


def test_special_tokens_map_json_is_read_in_the_older_layout(tmp_path):
    write_tiny(tmp_path, {"model_max_length": 64})
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": {"content": "<|endoftext|>", "lstrip": False}, "pad_token": "<|im_end|>"}), encoding="utf-8")
    tokenizer = Tokenizer.from_pretrained(tmp_path)
    assert tokenizer.eos_token_id == 0
    assert tokenizer.special_tokens == {"eos_token": "<|endoftext|>", "pad_token": "<|im_end|>"}


def test_spm_llama_rebuild_on_a_tiny_tokenizer(tmp_path):
    """A SentencePiece-style file (Prepend normalizer) gets transformers 5's Metaspace pipeline."""
    backend = BackendTokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"])
    backend.train_from_iterator(["hi there\nhi you", "say hi"] * 10, trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizerFast"}))
    rebuilt, as_file = Tokenizer.from_pretrained(tmp_path), Tokenizer.from_pretrained(tmp_path, use_file_pipeline=True)
    assert (rebuilt.bos_token_id, rebuilt.eos_token_id) == (1, 2)  # LlamaTokenizer's default names
    space = backend.token_to_id("▁")
    assert space in as_file.encode("</s>\nhi", add_special_tokens=False)  # "▁" again after </s>
    assert space not in rebuilt.encode("</s>\nhi", add_special_tokens=False)
    assert rebuilt.encode("hi there") == as_file.encode("hi there")  # the first piece is unchanged
    assert rebuilt.decode(rebuilt.encode("hi there\nhi")) == "hi there\nhi"


@pytest.mark.parametrize("files,error,match", [
    ({}, FileNotFoundError, "tokenizer.json not found"),
    ({"tokenizer.json": "{broken"}, ValueError, "tokenizer.json is not a valid tokenizer.json"),
    ({"tokenizer_config.json": "{broken"}, ValueError, "tokenizer_config.json is not valid JSON"),
    ({"tokenizer_config.json": "[1, 2]"}, ValueError, "tokenizer_config.json must contain a JSON object"),
    ({"tokenizer_config.json": '{"chat_template": 3}'}, ValueError, "chat_template must be a string or a list"),
    ({"special_tokens_map.json": "nope"}, ValueError, "special_tokens_map.json is not valid JSON"),
])
def test_missing_and_corrupt_files_name_the_file(tmp_path, files, error, match):
    if "tokenizer.json" not in files and files:
        write_tiny(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(error, match=match):
        Tokenizer.from_pretrained(tmp_path)


def test_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        Tokenizer.from_pretrained(tmp_path / "nowhere")
