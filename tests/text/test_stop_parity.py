"""Differential tests for stop strings: Python twin == Rust kernel == vLLM's whole-text algorithm.

The oracle below restates vLLM's rules on the *whole* output text (`check_stop_strings` and
`get_next_output_text` in vllm/v1/engine/detokenizer.py): it keeps all the text and searches
from `len(text) - new_chars - len(stop) + 1`. Both kernels keep only the last
`max(len(stop)) - 1` characters; hypothesis checks, on random texts cut into random chunks
(some of them "min_tokens" chunks that are not searched), that nobody can tell the difference.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.text import kernels

ALPHABET = "ab🙂é\n"  # few letters, so stop strings really occur; multi-byte ones on purpose


class VllmOracle:
    """vLLM's stop-string handling on the full text (the reference, not the kernel)."""

    def __init__(self, stops: list[str], include: bool):
        self.stops, self.include = stops, include
        self.hold = max(len(s) for s in stops) - 1 if stops and not include else 0
        self.text, self.sent, self.stopped = "", 0, None

    def step(self, delta: str, searched: bool = True) -> tuple[str, str | None]:
        self.text += delta
        if searched and delta:
            for stop in self.stops:
                index = self.text.find(stop, max(len(self.text) - len(delta) - len(stop) + 1, 0))
                if index >= 0:
                    self.text = self.text[: index + len(stop) if self.include else index]
                    self.stopped = stop
                    return self.release(finished=True), stop
        return self.release(finished=False), None

    def release(self, finished: bool) -> str:
        end = len(self.text) if finished else len(self.text) - self.hold
        out = self.text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0] + points, points + [len(text)])]


def run(checker, deltas: list[str], num_skipped: int) -> tuple[list[str], str | None]:
    out = []
    for i, delta in enumerate(deltas):
        if i < num_skipped:
            out.append(checker.skip(delta) if hasattr(checker, "skip") else checker.step(delta, False)[0])
            continue
        emit, stopped = checker.push(delta) if hasattr(checker, "push") else checker.step(delta)
        out.append(emit)
        if stopped is not None:
            return out, stopped
    out.append(checker.flush() if hasattr(checker, "flush") else checker.release(finished=True))
    return out, None


@settings(max_examples=300, deadline=None)
@given(text=st.text(ALPHABET, max_size=40), cuts=st.lists(st.integers(0, 60), max_size=12),
       stops=st.lists(st.text(ALPHABET, min_size=1, max_size=4), max_size=3), include=st.booleans(),
       num_skipped=st.integers(0, 3))
def test_kernels_agree_with_vllm(native, text, cuts, stops, include, num_skipped):
    deltas = chunks(text, cuts)
    expected = run(VllmOracle(stops, include), deltas, num_skipped)
    assert run(kernels.PYTHON.StopChecker(stops, include), deltas, num_skipped) == expected
    assert run(native.StopChecker(stops, include), deltas, num_skipped) == expected


@settings(max_examples=100, deadline=None)
@given(text=st.text(ALPHABET, max_size=40), stops=st.lists(st.text(ALPHABET, min_size=1, max_size=4),
                                                         min_size=1, max_size=3),
       cuts_a=st.lists(st.integers(0, 60), max_size=12), cuts_b=st.lists(st.integers(0, 60), max_size=12))
def test_nothing_emitted_is_taken_back_and_no_partial_stop_leaks(native, text, stops, cuts_a, cuts_b):
    """However the text is chunked, the emitted text is a prefix of the text, and while running it
    never ends inside a stop string that the rest of the text completes."""
    for impl in (kernels.PYTHON, native):
        for cuts in (cuts_a, cuts_b):
            checker = impl.StopChecker(stops, False)
            sent = ""
            for delta in chunks(text, cuts):
                emit, stopped = checker.push(delta)
                sent += emit
                assert text.startswith(sent)
                if stopped is not None:
                    assert stopped not in sent
                    break
            else:
                sent += checker.flush()
                assert sent == text


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["push", "skip", "flush"]), st.text(ALPHABET, max_size=6)),
                    max_size=15),
       stops=st.lists(st.text(ALPHABET, min_size=1, max_size=4), max_size=3), include=st.booleans())
def test_any_call_sequence_gives_the_same_results(native, ops, stops, include):
    """Any order of push/skip/flush (even pushing after a flush): same results, no crash."""
    results = []
    for impl in (kernels.PYTHON, native):
        checker = impl.StopChecker(stops, include)
        trace = [getattr(checker, op)(*([] if op == "flush" else [arg])) for op, arg in ops]
        results.append((trace, checker.stopped))
    assert results[0] == results[1]
