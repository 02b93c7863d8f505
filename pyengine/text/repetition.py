"""N-gram repetition detection (api-semantics.md §4.8, vLLM's `check_sequence_repetition`).

After each generated token: for each pattern length L from max(1, min_pattern_size) to
max_pattern_size, the output repeats when its last L tokens equal each of the min_count - 1
blocks of L tokens right before them (the tail is min_count identical copies of one block).

    L = 2, min_count = 3:   ... 10 20 | 10 20 | 10 20   -> repetition

The Python twin checks the definition directly, O(max_pattern_size^2 * min_count) per token.
"""

from __future__ import annotations


class RepetitionDetector:
    def __init__(self, max_pattern_size: int, min_pattern_size: int = 0, min_count: int = 2):
        if max_pattern_size < 0 or min_pattern_size < 0 or min_pattern_size > max_pattern_size:
            raise ValueError("need 0 <= min_pattern_size <= max_pattern_size")
        if max_pattern_size > 0 and min_count < 2:
            raise ValueError(f"min_count must be >= 2, got {min_count}")
        self.lo = max(1, min_pattern_size)
        self.hi = max_pattern_size
        self.min_count = min_count
        self.tokens: list[int] = []

    def push(self, token_id: int) -> bool:
        """Append a generated token; True when the output now ends in a repetition."""
        out = self.tokens
        out.append(token_id)
        for length in range(self.lo, self.hi + 1):
            if length * self.min_count > len(out):
                return False  # no longer pattern fits either
            if all(out[-n] == out[-(length * m + n)]
                   for n in range(1, length + 1) for m in range(1, self.min_count)):
                return True
        return False
