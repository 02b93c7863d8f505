"""Stop strings, matched on the generated text across token boundaries (api-semantics.md §4.6).

After each delta, only the part of the text a new match could touch is searched: from
`len(text) - len(delta) - len(stop) + 1`. Stop strings are tried in list order and the first
one found wins (vLLM's rule, even if another occurs earlier in the text). On a match the text
is cut before the stop string (after it with `include_stop_str_in_output`).

While streaming, the last `max(len(stop)) - 1` characters are held back (nothing with
`include_stop_str_in_output`), so text that might be the start of a stop string is never sent
and then taken back. This is the Python twin of the native kernel.
"""

from __future__ import annotations


class StopChecker:
    """Push text deltas; get back what is safe to emit and the stop string once one matches."""

    def __init__(self, stop_strings: list[str], include_stop_str_in_output: bool = False):
        if any(not s for s in stop_strings):
            raise ValueError("stop strings must be non-empty")
        self.stop_strings = list(stop_strings)
        self.include = include_stop_str_in_output
        self.hold = 0 if include_stop_str_in_output else max((len(s) for s in stop_strings), default=1) - 1
        self.text = ""  # all text seen (cut at the match once stopped)
        self.emitted = 0  # characters of `text` already returned
        self.searchable_from = 0  # text before this never matches (min_tokens)
        self.stopped: str | None = None

    def skip(self, delta: str) -> str:
        """Text that must not take part in matching (the first min_tokens tokens); returns what to emit."""
        self.text += delta
        self.searchable_from = len(self.text)
        return self._release(len(self.text) - self.hold)

    def push(self, delta: str) -> tuple[str, str | None]:
        """Add `delta`; return (text to emit now, matched stop string or None)."""
        if self.stopped is not None:
            return "", self.stopped
        self.text += delta
        for stop in self.stop_strings:
            start = max(self.searchable_from, len(self.text) - len(delta) - len(stop) + 1, 0)
            position = self.text.find(stop, start)
            if position >= 0:
                end = position + len(stop) if self.include else position
                self.text = self.text[:end]
                self.stopped = stop
                return self._release(len(self.text)), stop
        return self._release(len(self.text) - self.hold), None

    def flush(self) -> str:
        """The held-back tail, at the end of generation."""
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out
