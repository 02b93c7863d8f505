"""Differential tests for repetition detection: the Rust run-length kernel == vLLM's definition.

The Python twin checks the definition directly (the output ends with min_count copies of one
block); the Rust kernel keeps one run length per block size. Hypothesis draws outputs made of
repeated blocks (so repetitions really happen, with near misses) and parameters in the valid
range, and compares every step.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.text import kernels


@st.composite
def outputs(draw) -> list[int]:
    """Concatenated pieces: fresh tokens or a block repeated a few times (maybe with a change)."""
    out: list[int] = []
    for _ in range(draw(st.integers(0, 8))):
        block = draw(st.lists(st.integers(0, 3), min_size=1, max_size=6))
        copies = [list(block) for _ in range(draw(st.integers(1, 4)))]
        if draw(st.booleans()):
            copies[-1][-1] += 1  # a near miss
        out += [t for copy in copies for t in copy]
    return out


@settings(max_examples=300, deadline=None)
@given(tokens=outputs(), max_size=st.integers(0, 8), min_size=st.integers(0, 8), count=st.integers(2, 4))
def test_native_agrees_with_the_definition(native, tokens, max_size, min_size, count):
    min_size = min(min_size, max_size)
    python = kernels.PYTHON.RepetitionDetector(max_size, min_size, count)
    rust = native.RepetitionDetector(max_size, min_size, count)
    assert [rust.push(t) for t in tokens] == [python.push(t) for t in tokens]


@settings(max_examples=100, deadline=None)
@given(max_size=st.integers(-3, 5), min_size=st.integers(-3, 5), count=st.integers(-1, 3))
def test_same_validation(native, max_size, min_size, count):
    errors = []
    for impl in (kernels.PYTHON, native):
        try:
            impl.RepetitionDetector(max_size, min_size, count)
            errors.append(None)
        except ValueError as error:
            errors.append(str(error))
    assert errors[0] == errors[1]


def test_long_periodic_output(native):
    """4,096 tokens of a slowly changing period-7 pattern, max_pattern_size 64."""
    tokens = [(i % 7) + 10 * (i // 700) for i in range(4096)]
    for count in (2, 3, 5):
        python = kernels.PYTHON.RepetitionDetector(64, 0, count)
        rust = native.RepetitionDetector(64, 0, count)
        assert [rust.push(t) for t in tokens] == [python.push(t) for t in tokens]
