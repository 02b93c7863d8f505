"""Grammar token masks on the Qwen2.5 vocabulary (151,665 tokens): Rust vs Python twin vs llguidance.

For each grammar (regexes and the GBNF of a JSON object), one valid output is tokenized; a fresh
matcher then walks it, timing `fill_bitmask` before every token (EOS included) and accepting the
token. We record compile time (grammar text -> ready matcher, the tokenizer/trie built once
beforehand) and the per-token mask latency p50/p99. The Python twin is timed on the first
PY_STEPS masks only (each costs seconds on a 151k vocabulary); its ratio uses those same steps.

Targets (issue #8): p50 <= llguidance's, p99 <= 2x llguidance's, Rust >= 50x its Python twin.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RATIOS

from pyengine.structured import matcher
from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.regex import regex_grammar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.structured.test_ebnf import JSON_GBNF  # noqa: E402

QWEN = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "qwen2.5-tokenizer" / "tokenizer.json"
PY_STEPS = 3
CASES = {
    "phone": ("regex", r"[0-9]{3}-[0-9]{4}", "555-1234"),
    "email": ("regex", r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}", "ada.lovelace@example.org"),
    "freetext": ("regex", r"[^\n]{0,60}", "Free text, with ünïcode & 😀 symbols!"),
    "json": ("gbnf", JSON_GBNF, '{"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry"], '
                                '"address": {"city": "London", "zip": "W1"}, "ok": true}'),
}
for name in CASES:
    RATIOS.extend([
        (f"mask {name}: llguidance p50 / native p50", f"mask {name} llguidance p50 s", f"mask {name} native p50 s", 1.0),
        (f"mask {name}: 2x llguidance p99 / native p99", f"mask {name} 2x llguidance p99 s",
         f"mask {name} native p99 s", 1.0),
        (f"mask {name}: python twin / native (first steps)", f"mask {name} python first s",
         f"mask {name} native first s", 50.0),
    ])


@pytest.fixture(scope="module")
def qwen():
    if not QWEN.exists():
        pytest.skip("../shared/testdata/qwen2.5-tokenizer not present")
    from tokenizers import Tokenizer

    from pyengine.text.token_bytes import token_pieces

    tok = Tokenizer.from_file(str(QWEN))
    pieces = token_pieces(tok)
    vocab = [None if i in pieces.added_tokens or i in pieces.special_ids else pieces.pieces[i]
             for i in range(len(pieces.pieces))]
    return tok, vocab


def _walk(fill, accept, ids, steps=None):
    """Per-token mask latencies (seconds) along `ids`."""
    times = []
    for token in ids[:steps]:
        t0 = time.perf_counter()
        fill()
        times.append(time.perf_counter() - t0)
        if not accept(token):
            raise AssertionError(f"token {token} refused")
    return np.array(times)


def _record(record, name, impl, compile_s, times):
    record(f"mask {name} {impl} compile s", compile_s)
    record(f"mask {name} {impl} p50 s", float(np.percentile(times, 50)))
    record(f"mask {name} {impl} p99 s", float(np.percentile(times, 99)))


@pytest.mark.parametrize("impl", ["native", "python", "llguidance"])
@pytest.mark.parametrize("name", list(CASES))
def test_mask_latency(benchmark, record, qwen, name, impl):
    tok, vocab = qwen
    kind, source, text = CASES[name]
    eos = 151643  # <|endoftext|>, llguidance's EOS for this tokenizer
    ids = tok.encode(text).ids + [eos]
    if impl == "llguidance":
        llguidance = pytest.importorskip("llguidance")
        llg_numpy = pytest.importorskip("llguidance.numpy")
        ll_tok = llguidance.LLTokenizer(QWEN.read_text())
        words = llg_numpy.allocate_token_bitmask(1, len(vocab))

        def build():
            g = (llguidance.grammar_from("regex", source) if kind == "regex"
                 else llguidance.grammar_from("lark", llguidance.gbnf_to_lark.gbnf_to_lark(source)))
            return llguidance.LLMatcher(ll_tok, g)

        def run(m, steps=None):
            return _walk(lambda: llg_numpy.fill_next_token_bitmask(m, words, 0), m.consume_token, ids, steps)
    else:
        if impl == "native" and matcher.NATIVE_KERNELS is None:
            pytest.skip("needs the compiled extension")
        trie_cls, matcher_cls = matcher.select(impl)
        trie = trie_cls(vocab)
        words = np.zeros((len(vocab) + 31) // 32, dtype=np.int32)

        def build():
            g = regex_grammar(source) if kind == "regex" else ebnf_grammar(source)
            return matcher_cls(g, trie, [eos])

        def run(m, steps=None):
            return _walk(lambda: m.fill_bitmask(words), m.accept_token, ids, steps)

    t0 = time.perf_counter()
    build()
    compile_s = time.perf_counter() - t0
    if impl == "python":
        times = benchmark.pedantic(lambda: run(build(), PY_STEPS), rounds=1, iterations=1)
        record(f"mask {name} python first s", float(times.mean()))
        return
    times = benchmark.pedantic(lambda: run(build()), rounds=5, iterations=1)
    _record(record, name, impl, compile_s, times)
    record(f"mask {name} {impl} first s", float(run(build(), PY_STEPS).mean()))
    if impl == "llguidance":
        record(f"mask {name} 2x llguidance p99 s", 2 * float(np.percentile(times, 99)))
