"""MaskBench (the subset in ../shared/testdata/maskbench): token by token on the Qwen2.5 tokenizer.

For every schema that compiles, each test instance (json.dumps, default separators) is walked one
token at a time, a mask computed before each token, then EOS. A schema passes when every valid
instance is accepted and every invalid one rejected. The hard rule: no invalid instance is ever
accepted, and no compiled schema fails mid-walk. The run prints, for pyengine and (when installed)
llguidance side by side: pass, refused (the compiler said no), rejects-valid, accepts-invalid, walk
errors, compile p50/p90 and mask mean/p50/p99.

The same runner measures the larger set (one jsonl.gz of cases) outside the unit tests:

    python -m tests.structured.test_maskbench ../shared/testdata/maskbench-more/schemas.jsonl.gz [LIMIT]
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pyengine.constrained import vocabulary_bytes
from pyengine.structured import GrammarError, JsonOptions
from pyengine.structured.json_schema import json_schema_grammar
from pyengine.structured.matcher import select
from pyengine.text import Tokenizer
from pyengine_server.concurrency import quiet_collector

MIN_PASSING = 300  # of 396: 305 today (llguidance 1.9 passes 282 of them in the same run)
MAX_REJECTS_VALID = 8  # compiled, but some valid instance rejected (stricter than the schema)
PLAIN = JsonOptions(disable_additional_properties=False)  # the benchmark measures JSON Schema itself


@dataclasses.dataclass
class Tally:
    """One implementation's results over a set of cases."""

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    refused: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # reason -> schemas
    accepts_invalid: list[str] = dataclasses.field(default_factory=list)
    rejects_valid: list[str] = dataclasses.field(default_factory=list)
    walk_errors: list[str] = dataclasses.field(default_factory=list)  # a GrammarError (a limit) mid-walk
    compile_s: list[float] = dataclasses.field(default_factory=list)
    mask_s: list[float] = dataclasses.field(default_factory=list)

    def line(self, name: str) -> str:
        total = sum(self.counts.values())
        compile_ms = np.percentile(self.compile_s, [50, 90]) * 1e3 if self.compile_s else [0, 0]
        mask_us = ((np.mean(self.mask_s), *np.percentile(self.mask_s, [50, 99])) if self.mask_s else (0, 0, 0))
        return (f"{name:>10}: pass {self.counts['pass']}/{total}, refused {self.counts['refused']}, "
                f"rejects-valid {self.counts['rejects-valid']}, accepts-invalid {self.counts['accepts-invalid']}, "
                f"walk errors {len(self.walk_errors)}; "
                f"compile p50/p90 {compile_ms[0]:.2f}/{compile_ms[1]:.2f} ms; "
                f"mask mean/p50/p99 {mask_us[0] * 1e6:.0f}/{mask_us[1] * 1e6:.1f}/{mask_us[2] * 1e6:.0f} us")


class Pyengine:
    """pyengine's compiler and matcher (the native kernels when built)."""

    name = "pyengine"

    def __init__(self, tokenizer):
        trie_class, self.matcher_class = select()
        self.trie = trie_class(vocabulary_bytes(tokenizer, tokenizer.vocab_size))
        self.eos = tokenizer.eos_token_id
        self.words = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)

    def compile(self, schema):
        return self.matcher_class(json_schema_grammar(schema, PLAIN), self.trie, [self.eos])

    def walk(self, matcher, ids, times):
        matcher.reset()
        for token in ids:
            t0 = time.perf_counter()
            matcher.fill_bitmask(self.words)
            times.append(time.perf_counter() - t0)
            if not matcher.accept_token(token):
                return False
        return matcher.accept_token(self.eos)


class Llguidance:
    """llguidance's JSON compiler and matcher, on the same tokenizer (a benchmark peer, never a dependency)."""

    name = "llguidance"

    def __init__(self, tokenizer_json: Path):
        import llguidance
        import llguidance.numpy

        self.llg = llguidance
        self.tokenizer = llguidance.LLTokenizer(tokenizer_json.read_text())
        self.words = llguidance.numpy.allocate_token_bitmask(1, self.tokenizer.vocab_size)
        self.fill = llguidance.numpy.fill_next_token_bitmask

    def compile(self, schema):
        grammar = self.llg.JsonCompiler(whitespace_flexible=True).compile(json.dumps(schema))
        matcher = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(matcher.get_error())
        return grammar

    def walk(self, grammar, ids, times):
        matcher = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        for token in ids:
            t0 = time.perf_counter()
            self.fill(matcher, self.words, 0)
            times.append(time.perf_counter() - t0)
            if not matcher.consume_token(token):
                return False
        return matcher.is_accepting() and not matcher.is_error()


def run(cases, tokenizer, impls) -> dict[str, Tally]:
    """Walk every (name, case) through every implementation; the tallies by implementation name.

    The heap built before (tokenizer, trie, test session) is frozen out of garbage collection while
    it runs, as the server freezes its start-up heap (`quiet_collector`): a compile is timed as the
    server pays for it, not with collections walking a test session's objects."""
    with quiet_collector():
        return _run(cases, tokenizer, impls)


def _run(cases, tokenizer, impls) -> dict[str, Tally]:
    tallies = {impl.name: Tally() for impl in impls}
    for name, case in cases:
        encoded = [(tokenizer.encode(json.dumps(test["data"], ensure_ascii=False), add_special_tokens=False),
                    test["valid"]) for test in case["tests"]]
        for impl in impls:
            tally = tallies[impl.name]
            t0 = time.perf_counter()
            try:
                compiled = impl.compile(case["schema"])
            except (GrammarError, ValueError, RecursionError) as exc:
                tally.counts["refused"] += 1
                tally.refused[str(exc).split(":")[0][:60]] += 1
                continue
            tally.compile_s.append(time.perf_counter() - t0)
            outcome = "pass"
            for ids, valid in encoded:
                try:
                    accepted = impl.walk(compiled, ids, tally.mask_s if valid else [])
                except GrammarError:
                    accepted = False
                    tally.walk_errors.append(name)
                if accepted and not valid:
                    tally.accepts_invalid.append(name)
                    outcome = "accepts-invalid"
                elif valid and not accepted and outcome == "pass":
                    outcome = "rejects-valid"
                    tally.rejects_valid.append(name)
            tally.counts[outcome] += 1
    return tallies


def folder_cases(folder: Path):
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            yield path.name, json.loads(path.read_text())


def jsonl_cases(path: Path, limit: int | None):
    with gzip.open(path, "rt") as lines:
        for i, line in enumerate(lines):
            if limit is not None and i >= limit:
                return
            case = json.loads(line)
            yield case.get("description", str(i)), case


def implementations(testdata: Path):
    tokenizer = Tokenizer.from_pretrained(testdata / "qwen2.5-tokenizer")
    impls = [Pyengine(tokenizer)]
    try:
        impls.append(Llguidance(testdata / "qwen2.5-tokenizer" / "tokenizer.json"))
    except ImportError:
        pass
    return tokenizer, impls


def report(tallies: dict[str, Tally]) -> None:
    for name, tally in tallies.items():
        print(tally.line(name))
    ours = tallies["pyengine"]
    print("pyengine refused, by reason:", dict(ours.refused.most_common(10)))
    print("pyengine rejects a valid instance of:", ", ".join(ours.rejects_valid))


@pytest.mark.slow
def test_maskbench_never_accepts_an_invalid_instance(shared_testdata):
    folder = shared_testdata / "maskbench"
    if not folder.is_dir():
        pytest.skip("../shared/testdata/maskbench not present")
    tokenizer, impls = implementations(shared_testdata)
    tallies = run(folder_cases(folder), tokenizer, impls)
    print()
    report(tallies)
    ours = tallies["pyengine"]
    assert ours.accepts_invalid == [] and ours.walk_errors == []
    assert ours.counts["pass"] >= MIN_PASSING and ours.counts["rejects-valid"] <= MAX_REJECTS_VALID


if __name__ == "__main__":
    source = Path(sys.argv[1])
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    testdata = source.parent if source.is_dir() else source.parent.parent
    tokenizer, impls = implementations(testdata)
    cases = folder_cases(source) if source.is_dir() else jsonl_cases(source, limit)
    report(run(cases, tokenizer, impls))
