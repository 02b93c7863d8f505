"""Grammar token masks on the Qwen2.5 vocabulary (151,665 tokens): Rust vs Python twin vs peers.

Cases: regexes, the GBNF of a JSON object, and a fixed set of JSON Schemas (flat object,
nested with arrays, recursive $defs/$ref, enum-heavy, a tool call's parameters), each with one
valid instance serialized by `json.dumps` (default separators). The instance is tokenized; a fresh
matcher then walks it, timing the mask before every token (EOS included) and accepting the token.
We record compile time (grammar/schema text -> ready matcher; the tokenizer-level tables — our
trie, llguidance's LLTokenizer, xgrammar's TokenizerInfo, outlines-core's Vocabulary — are built
once beforehand) and the per-token mask latency p50/p99 for each implementation:

- native: pyengine's grammar (`json_schema_grammar` with the default, flexible-whitespace
  JsonOptions) on the Rust matcher; python: its Python twin, timed on the first PY_STEPS masks only
  (a whole walk would take seconds on a 151k vocabulary);
- llguidance: `fill_next_token_bitmask` (JSON Schemas through its JSON compiler with flexible
  whitespace);
- xgrammar (optional): `GrammarCompiler(cache_enabled=False).compile_json_schema(any_whitespace=True)`
  / `compile_regex` / `compile_grammar`, `fill_next_token_bitmask`;
- outlines (optional, outlines-core): `build_regex_from_schema` (its default whitespace pattern)
  -> Index -> Guide; the mask is `Guide.write_mask_into` (the allowed tokens of the current state
  as a bitmask). It has no GBNF front end, so the GBNF case skips.

A peer whose import fails is skipped. xgrammar and outlines-core are not in pyproject's extras;
install them beside the bench extra to run the whole comparison:

    pip install -e ".[bench]" xgrammar outlines-core
    python -m pytest benchmarks/test_structured_mask.py --benchmark-only -p no:cacheprovider -q

Targets: p50 <= llguidance's, p99 <= 2x llguidance's, compile <= 2x the fastest peer's,
Rust >= 50x its Python twin.

Bounded repetition (`test_bounded_repetition`): the same instances under `maxLength` / `maxItems`
of 10 and of 100,000, on the native matcher. A bound is a count in the parse item, not a rule per
count, so the masks cost about the same: target bound-10 p50 / bound-100,000 p50 >= 0.5.

The twin ratio ("python twin / native (first steps)") compares the *first* masks of a fresh
matcher, the same way on both sides (`_first_masks`): a fresh matcher on the same compiled grammar
times its first PY_STEPS masks (fill, then accept the instance's token), and we keep the mean of
those; that is repeated with FIRST_ROUNDS fresh matchers per side (fewer for the twin, whose walk
costs ~0.5 ms a mask) and the median taken. One fresh matcher alone is µs-level noise on the Rust
side. Each round builds a new matcher, so nothing a matcher learns (states, masks) carries over.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RATIOS, RESULTS

from pyengine.structured import matcher
from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.json_schema import JsonOptions, json_schema_grammar
from pyengine.structured.regex import regex_grammar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.structured.test_ebnf import JSON_GBNF  # noqa: E402

QWEN = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "qwen2.5-tokenizer" / "tokenizer.json"
PY_STEPS = 3
FIRST_ROUNDS = {"python": 5, "native": 20}  # fresh matchers per side for the twin ratio (median)
COMPILE_ROUNDS = 3  # compile time: the median of this many compiles, after one untimed warm-up
EOS = 151643  # <|endoftext|>, llguidance's EOS for this tokenizer
PEERS = ("llguidance", "xgrammar", "outlines")

# the JSON Schemas, each with one valid instance
FLAT = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "age": {"type": "integer"},
                   "active": {"type": "boolean"}},
    "required": ["name", "email", "age", "active"],
}
NESTED = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "items": {"type": "array", "minItems": 1, "maxItems": 5, "items": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}, "price": {"type": "number"}},
            "required": ["sku", "quantity", "price"]}},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
    },
    "required": ["order_id", "items", "tags"],
}
TREE = {
    "$defs": {"node": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["name", "children"]}},
    "$ref": "#/$defs/node",
}
_COUNTRIES = ["Argentina", "Australia", "Austria", "Belgium", "Brazil", "Canada", "Chile", "China", "Colombia",
              "Denmark", "Egypt", "Finland", "France", "Germany", "Greece", "India", "Indonesia", "Ireland",
              "Israel", "Italy", "Japan", "Kenya", "Mexico", "Netherlands", "New Zealand", "Nigeria", "Norway",
              "Peru", "Poland", "Portugal", "Spain", "Sweden", "Switzerland", "Turkey", "United Kingdom",
              "United States"]
ENUMS = {
    "type": "object",
    "properties": {
        "country": {"enum": _COUNTRIES},
        "currency": {"enum": ["USD", "EUR", "GBP", "JPY", "CNY", "INR", "BRL", "CAD", "AUD", "CHF", "SEK", "NOK"]},
        "weekday": {"enum": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]},
        "size": {"enum": ["xs", "s", "m", "l", "xl", "xxl"]},
        "priority": {"enum": [1, 2, 3, 4, 5]},
    },
    "required": ["country", "currency", "weekday", "size", "priority"],
}
TOOL = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "The temperature unit"},
        "days": {"type": "number", "description": "How many days of forecast to return"},
    },
    "required": ["location", "unit", "days"],
}
SCHEMAS = {
    "schema flat": (FLAT, {"name": "Ada Lovelace", "email": "ada@example.org", "age": 36, "active": True}),
    "schema nested": (NESTED, {"order_id": "A-1042", "items": [{"sku": "pen-01", "quantity": 3, "price": 1.25},
                                                               {"sku": "ink-7", "quantity": 1, "price": 9.5}],
                               "tags": ["office", "gift"]}),
    "schema recursive": (TREE, {"name": "root", "children": [{"name": "a", "children": []},
                                                             {"name": "b", "children": [{"name": "b1",
                                                                                         "children": []}]}]}),
    "schema enums": (ENUMS, {"country": "New Zealand", "currency": "NOK", "weekday": "thursday", "size": "xl",
                             "priority": 4}),
    "schema tool": (TOOL, {"location": "San Francisco, CA", "unit": "celsius", "days": 3}),
}
CASES = {
    "phone": ("regex", r"[0-9]{3}-[0-9]{4}", "555-1234"),
    "email": ("regex", r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}", "ada.lovelace@example.org"),
    "freetext": ("regex", r"[^\n]{0,60}", "Free text, with ünïcode & 😀 symbols!"),
    "json": ("gbnf", JSON_GBNF, '{"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry"], '
                                '"address": {"city": "London", "zip": "W1"}, "ok": true}'),
    **{name: ("schema", json.dumps(schema), json.dumps(instance)) for name, (schema, instance) in SCHEMAS.items()},
}
for name in CASES:
    RATIOS.extend([
        (f"mask {name}: llguidance p50 / native p50", f"mask {name} llguidance p50 s", f"mask {name} native p50 s", 1.0),
        (f"mask {name}: 2x llguidance p99 / native p99", f"mask {name} 2x llguidance p99 s",
         f"mask {name} native p99 s", 1.0),
        (f"mask {name}: 2x fastest peer compile / native", f"mask {name} 2x fastest peer compile s",
         f"mask {name} native compile s", 1.0),
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


_TABLES: dict[str, object] = {}  # impl -> its tokenizer-level tables, built once per run


def _tables(impl, vocab, build):
    if impl not in _TABLES:
        _TABLES[impl] = build()
    return _TABLES[impl]


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


def _first_masks(new, fill_accept, compiled, ids, rounds):
    """The median over `rounds` fresh matchers of the mean time of their first PY_STEPS masks."""
    return float(np.median([_walk(*fill_accept(new(compiled)), ids, PY_STEPS).mean() for _ in range(rounds)]))


def _record(record, name, impl, compile_s, times):
    record(f"mask {name} {impl} compile s", compile_s)
    record(f"mask {name} {impl} p50 s", float(np.percentile(times, 50)))
    record(f"mask {name} {impl} p99 s", float(np.percentile(times, 99)))
    peers = [RESULTS[f"mask {name} {p} compile s"] for p in PEERS if f"mask {name} {p} compile s" in RESULTS]
    if peers:
        record(f"mask {name} 2x fastest peer compile s", 2 * min(peers))


def _llguidance(vocab, kind, source):
    llguidance = pytest.importorskip("llguidance")
    llg_numpy = pytest.importorskip("llguidance.numpy")
    ll_tok = _tables("llguidance", vocab, lambda: llguidance.LLTokenizer(QWEN.read_text()))
    words = llg_numpy.allocate_token_bitmask(1, len(vocab))

    def compile_():
        if kind == "regex":
            return llguidance.grammar_from("regex", source)
        if kind == "gbnf":
            return llguidance.grammar_from("lark", llguidance.gbnf_to_lark.gbnf_to_lark(source))
        return llguidance.JsonCompiler(whitespace_flexible=True).compile(source)

    def new(g):
        m = llguidance.LLMatcher(ll_tok, g)
        if m.is_error():
            raise AssertionError(m.get_error())
        return m

    def fill_accept(m):
        return lambda: llg_numpy.fill_next_token_bitmask(m, words, 0), m.consume_token
    return compile_, new, fill_accept


def _xgrammar(vocab, kind, source):
    xgr = pytest.importorskip("xgrammar")

    def info():
        transformers = pytest.importorskip("transformers")
        hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(QWEN))
        return xgr.TokenizerInfo.from_huggingface(hf, vocab_size=len(vocab), stop_token_ids=[EOS])
    compiler = xgr.GrammarCompiler(_tables("xgrammar", vocab, info), cache_enabled=False)
    bitmask = xgr.allocate_token_bitmask(1, len(vocab))

    def compile_():
        if kind == "regex":
            return compiler.compile_regex(source)
        if kind == "gbnf":  # its EBNF parser wants an explicit "" for the empty alternative
            return compiler.compile_grammar(source.replace("ws ::= |", 'ws ::= "" |'))
        return compiler.compile_json_schema(source, any_whitespace=True)

    def fill_accept(m):
        return lambda: m.fill_next_token_bitmask(bitmask), m.accept_token
    return compile_, xgr.GrammarMatcher, fill_accept


def _outlines(vocab, kind, source):
    oc = pytest.importorskip("outlines_core")
    if kind == "gbnf":
        pytest.skip("outlines-core has no GBNF front end")

    def vocabulary():
        tokens: dict[bytes, list[int]] = {}
        for i, piece in enumerate(vocab):
            if piece is not None and i != EOS:
                tokens.setdefault(bytes(piece), []).append(i)
        return oc.Vocabulary(EOS, tokens)
    ov = _tables("outlines", vocab, vocabulary)
    words = np.zeros((len(vocab) + 31) // 32, dtype=np.int32)

    def compile_():
        regex = source if kind == "regex" else oc.json_schema.build_regex_from_schema(source)
        return oc.Index(regex, ov)

    def fill_accept(m):
        def accept(token):
            if token == EOS:  # a final state allows EOS, but the Guide has no state past it
                return m.is_finished()
            m.advance(token, return_tokens=False)
            return True
        return lambda: m.write_mask_into(words.ctypes.data, words.size, 4), accept
    return compile_, oc.Guide, fill_accept


def _ours(vocab, kind, source, impl):
    if impl == "native" and matcher.NATIVE_KERNELS is None:
        pytest.skip("needs the compiled extension")
    trie_cls, matcher_cls = matcher.select(impl)
    trie = _tables(impl, vocab, lambda: trie_cls(vocab))
    words = np.zeros((len(vocab) + 31) // 32, dtype=np.int32)

    def compile_():
        if kind == "regex":
            return regex_grammar(source)
        if kind == "gbnf":
            return ebnf_grammar(source)
        # Plain JSON Schema (undeclared keys allowed), as the peers compile it: like for like.
        return json_schema_grammar(source, JsonOptions(disable_additional_properties=False))

    def fill_accept(m):
        return lambda: m.fill_bitmask(words), m.accept_token
    return compile_, lambda g: matcher_cls(g, trie, [EOS]), fill_accept


@pytest.mark.parametrize("impl", ["native", "python", *PEERS])
@pytest.mark.parametrize("name", list(CASES))
def test_mask_latency(benchmark, record, qwen, name, impl):
    tok, vocab = qwen
    kind, source, text = CASES[name]
    ids = tok.encode(text).ids + [EOS]
    if impl == "llguidance":
        compile_, new, fill_accept = _llguidance(vocab, kind, source)
    elif impl == "xgrammar":
        compile_, new, fill_accept = _xgrammar(vocab, kind, source)
    elif impl == "outlines":
        compile_, new, fill_accept = _outlines(vocab, kind, source)
    else:
        compile_, new, fill_accept = _ours(vocab, kind, source, impl)

    def run(steps=None):  # a fresh matcher on the compiled grammar, walked along `ids`
        return _walk(*fill_accept(new(compiled)), ids, steps)

    new(compile_())  # one untimed compile first: a server compiles many grammars in a warm process
    compile_times = []
    for _ in range(COMPILE_ROUNDS):  # the median of a few, for every implementation alike
        t0 = time.perf_counter()
        compiled = compile_()
        new(compiled)
        compile_times.append(time.perf_counter() - t0)
    compile_s = float(np.median(compile_times))
    if impl == "python":
        benchmark.pedantic(lambda: run(PY_STEPS), rounds=1, iterations=1)
        record(f"mask {name} python first s", _first_masks(new, fill_accept, compiled, ids, FIRST_ROUNDS[impl]))
        return
    times = benchmark.pedantic(run, rounds=3, iterations=1)
    _record(record, name, impl, compile_s, times)
    if impl == "native":
        record(f"mask {name} native first s", _first_masks(new, fill_accept, compiled, ids, FIRST_ROUNDS[impl]))
    if impl == "llguidance":
        record(f"mask {name} 2x llguidance p99 s", 2 * float(np.percentile(times, 99)))


BOUNDED = {  # name -> (schema with the bound as {bound}, one instance within bound 10)
    "string": ('{{"type": "string", "maxLength": {bound}}}', json.dumps("Ada Lovel")),
    "array": ('{{"type": "array", "items": {{"type": "string", "maxLength": 8}}, "maxItems": {bound}}}',
              json.dumps(["pen", "ink", "gift", "office", "paper", "tape", "glue", "clip", "pad"])),
}
BOUNDS = (10, 100_000)
for name in BOUNDED:
    RATIOS.append((f"mask bound {name}: bound 10 p50 / bound 100000 p50", f"mask bound {name} 10 p50 s",
                   f"mask bound {name} 100000 p50 s", 0.5))


@pytest.mark.parametrize("bound", BOUNDS)
@pytest.mark.parametrize("name", list(BOUNDED))
def test_bounded_repetition(benchmark, record, qwen, name, bound):
    tok, vocab = qwen
    schema, text = BOUNDED[name]
    compile_, new, fill_accept = _ours(vocab, "schema", json.loads(schema.format(bound=bound)), "native")
    compiled = compile_()
    ids = tok.encode(text).ids + [EOS]
    times = benchmark.pedantic(lambda: _walk(*fill_accept(new(compiled)), ids), rounds=5, iterations=1)
    record(f"mask bound {name} {bound} p50 s", float(np.percentile(times, 50)))
