"""The per-token text kernels: Rust vs their Python twins, and the detokenizer vs tokenizers.

Each round processes one 4,096-token output, one call per token from Python, as the engine makes
them. Groups:

- detokenizer: `IncrementalDetokenizer.push` (native, python) and tokenizers' own
  `DecodeStream.step` (the peer vLLM uses), on the Qwen2.5 tokenizer (151,665 tokens) from
  ../shared/testdata, or else on a 50,000-token byte-level BPE trained here;
- stop strings: `StopChecker.push` with three stop strings that never match (every delta is
  searched and held back), on that output's text deltas;
- repetition: `RepetitionDetector.push` with max_pattern_size 64, min_count 3.

Targets: each Rust kernel >= 10x its Python twin; the detokenizer >= 1.5x
DecodeStream; repetition detection <= 1 us per token at max_pattern_size 64 on a 4,096-token
output.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import RATIOS
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.decoders import DecodeStream

from pyengine.text import kernels

NUM_TOKENS = 4096
QWEN = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "qwen2.5-tokenizer" / "tokenizer.json"
DOCS = Path(__file__).resolve().parents[1] / "docs"
MIXED = "中文的分词 ünïcödé façade 🙂🚀 Привет, мир! "  # characters that byte-level BPE splits
STOPS = ["</answer>", "\n\nUser:", "<|im_end|>"]

RATIOS.extend([
    ("detokenizer: python twin / native", "detok python s/token", "detok native s/token", 10.0),
    ("detokenizer: DecodeStream / native", "detok DecodeStream s/token", "detok native s/token", 1.5),
    ("stop strings: python twin / native", "stop python s/token", "stop native s/token", 10.0),
    ("repetition: python twin / native", "repetition python s/token", "repetition native s/token", 10.0),
    ("repetition: 1 us budget / native per token", "1 us", "repetition native s/token", 1.0),
])
IMPLS = [k for k in (kernels.NATIVE, kernels.PYTHON) if k is not None]


def trained_bpe(vocab_size: int = 50_000) -> Tokenizer:
    """A byte-level BPE trained on pseudo-words (about 3 s): the fallback >= 49k vocabulary."""
    rng = random.Random(0)
    syllables = ["ka", "ri", "to", "ne", "su", "mi", "ra", "lo", "pe", "da", "gu", "chi", "an", "or", "el",
                 "qu", "zy", "bo", "we", "fi", "ü", "é", "中", "文", "ж"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 5))) for _ in range(200_000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((" ".join(words[i:i + 50]) for i in range(0, len(words), 50)), trainer)
    return tok


@pytest.fixture(scope="module")
def workload():
    """(tokenizer, 4,096 output ids, their text deltas); the tokenizer has >= 49k tokens."""
    backend = Tokenizer.from_file(str(QWEN)) if QWEN.exists() else trained_bpe()
    assert backend.get_vocab_size(with_added_tokens=True) >= 49_000
    text = "".join(p.read_text() for p in sorted(DOCS.glob("*.md")))
    text = "".join(line + ("\n" + MIXED if i % 5 == 0 else "\n") for i, line in enumerate(text.splitlines()))
    ids = backend.encode(text).ids[:NUM_TOKENS]
    assert len(ids) == NUM_TOKENS
    detok = kernels.PYTHON.IncrementalDetokenizer(kernels.PYTHON.TokenTable.from_tokenizer(backend))
    deltas = [detok.push(i) for i in ids]
    return backend, ids, deltas


@pytest.fixture(scope="module")
def tables(workload):
    backend = workload[0]
    return {impl.name: impl.TokenTable.from_tokenizer(backend) for impl in IMPLS}


@pytest.mark.parametrize("impl", IMPLS, ids=lambda k: k.name)
def test_detokenizer(benchmark, record, workload, tables, impl):
    backend, ids, _ = workload
    table = tables[impl.name]

    def run():
        push = impl.IncrementalDetokenizer(table).push
        for token_id in ids:
            push(token_id)

    benchmark.group = f"detokenizer, {NUM_TOKENS} tokens, vocab {backend.get_vocab_size(True)}"
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    record(f"detok {impl.name} s/token", benchmark.stats.stats.median / NUM_TOKENS)


def test_detokenizer_decode_stream(benchmark, record, workload):
    backend, ids, _ = workload

    def run():
        step = DecodeStream(skip_special_tokens=True).step
        for token_id in ids:
            step(backend, token_id)

    benchmark.group = f"detokenizer, {NUM_TOKENS} tokens, vocab {backend.get_vocab_size(True)}"
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    record("detok DecodeStream s/token", benchmark.stats.stats.median / NUM_TOKENS)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda k: k.name)
def test_stop_strings(benchmark, record, workload, impl):
    deltas = workload[2]

    def run():
        push = impl.StopChecker(STOPS, False).push
        for delta in deltas:
            push(delta)

    benchmark.group = f"stop strings, {len(STOPS)} strings, {NUM_TOKENS} deltas"
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    record(f"stop {impl.name} s/token", benchmark.stats.stats.median / NUM_TOKENS)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda k: k.name)
def test_repetition(benchmark, record, workload, impl):
    ids = workload[1]

    def run():
        push = impl.RepetitionDetector(64, 0, 3).push
        for token_id in ids:
            push(token_id)

    benchmark.group = f"repetition, max_pattern_size 64, {NUM_TOKENS} tokens"
    benchmark.pedantic(run, rounds=15 if impl.name == "native" else 3, warmup_rounds=1)
    record(f"repetition {impl.name} s/token", benchmark.stats.stats.median / NUM_TOKENS)
    record("1 us", 1e-6)  # the per-token budget of the target
