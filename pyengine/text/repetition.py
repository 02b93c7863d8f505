"""N-gram repetition detection (vLLM's `check_sequence_repetition`).

After each generated token, for each pattern length L from max(1, min_pattern_size) up to
max_pattern_size, the output *repeats* when its last L tokens equal each of the min_count - 1
blocks of L tokens right before them: the tail is min_count identical copies of one block.
Lengths are tried in ascending order and the check stops at the first L with L * min_count
longer than the output (no larger L fits either). Only generated tokens count, never the prompt.

    L = 2, min_count = 3:   ... 7 | 10 20 | 10 20 | 10 20    -> repetition
    L = 3, min_count = 3:   1 2 3 | 1 2 3 | 1 2 4            -> none (the last block differs)

This twin checks the definition directly, as vLLM does: O(max_pattern_size² · min_count) per
token in the worst case, though a mismatch usually ends each L at its first comparison. The Rust
kernel (`rust/repetition.rs`) keeps, for every L, the length of the current run of positions with
out[i] == out[i - L], which makes each token O(max_pattern_size); the parity tests prove the two
agree.
"""

from __future__ import annotations


class RepetitionDetector:
    """Push generated token ids; `push` returns True once the output ends in a repetition.

    Args:
        max_pattern_size: the longest block length checked (0 disables detection).
        min_pattern_size: the shortest block length checked (0 means 1).
        min_count: how many consecutive copies of the block count as a repetition (>= 2).

    Raises:
        ValueError: sizes negative or min_pattern_size > max_pattern_size, or min_count < 2 with
            detection enabled (vLLM's messages).
    """

    def __init__(self, max_pattern_size: int, min_pattern_size: int = 0, min_count: int = 2):
        if max_pattern_size < 0 or min_pattern_size < 0 or min_pattern_size > max_pattern_size:
            raise ValueError("max_pattern_size, min_pattern_size must be >=0, with min_pattern_size "
                             "<= max_pattern_size. Set both to 0 to disable repetitive pattern detection.")
        if max_pattern_size > 0 and min_count < 2:
            raise ValueError("min_count must be >= 2 to detect repetitive patterns in engine output. If you "
                             "do not wish to detect repetitive patterns, set max_pattern_size to 0.")
        self.max_pattern_size = max_pattern_size
        self.min_pattern_size = max(1, min_pattern_size)
        self.min_count = min_count
        self.output: list[int] = []

    def push(self, token_id: int) -> bool:
        """Append a generated token; True when the output now ends in a repetition."""
        out = self.output
        out.append(token_id)
        for length in range(self.min_pattern_size, self.max_pattern_size + 1):
            if length * self.min_count > len(out):
                return False  # no longer block fits either
            # the last block out[-length:] equals each of the min_count - 1 blocks before it
            if all(out[-n] == out[-(length * m + n)]
                   for n in range(1, length + 1) for m in range(1, self.min_count)):
                return True
        return False
