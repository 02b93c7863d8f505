"""Stop strings, matched on the generated text across token boundaries.

vLLM's rules, step by step (`check_stop_strings` and `get_next_output_text` in
`vllm/v1/engine/detokenizer.py`), for each text delta of one step:

1. Append the delta. Only a match that uses at least one new character can be new, so each stop
   string `s` is searched from `len(text) - len(delta) - len(s) + 1`.
2. Stop strings are tried in list order; the first one found wins (even if another one starts
   earlier in the text: a vLLM quirk we keep). The text is cut before it, or after it with
   `include_stop_str_in_output`; anything generated after it is dropped.
3. While running, the last `max(len(s)) - 1` characters are held back (none with
   `include_stop_str_in_output`), so a stop string that is still arriving is never sent. On a
   match the text up to the cut is released; `flush()` releases the rest at the end.

    stop = ["</a>"], deltas "x<", "/a", ">y":   emit "" | "x" | "" and stop "</a>"   (text "x")

Only the last `max(len(s)) - 1` characters are kept, so each push costs O(len(delta) + max
len(s)) whatever the length of the output. This is the Python twin of `rust/stop.rs`.
"""

from __future__ import annotations

from typing import Sequence


class StopChecker:
    """Push text deltas; get back the text safe to emit and, once one matches, the stop string.

    Args:
        stop_strings: the request's stop strings (non-empty strings), tried in this order.
        include_stop_str_in_output: keep the matched stop string in the text (no hold-back).

    Raises:
        TypeError: `stop_strings` is a single str rather than a list.
        ValueError: a stop string is empty.
    """

    def __init__(self, stop_strings: Sequence[str], include_stop_str_in_output: bool = False):
        if isinstance(stop_strings, str):
            raise TypeError("stop_strings must be a list of strings, not a str")
        if any(not s for s in stop_strings):
            raise ValueError("stop strings must not be empty")
        self.stop_strings = list(stop_strings)
        self.include_stop_str_in_output = include_stop_str_in_output
        self.stopped: str | None = None  # the stop string that matched
        longest = max((len(s) for s in self.stop_strings), default=1)
        self._keep = longest - 1  # characters of context a match may reach back into
        self._hold = 0 if include_stop_str_in_output else self._keep  # characters withheld from output
        self._recent = ""  # the last `_keep` characters of the text
        self._unemitted = 0  # how many characters at the end of `_recent` were not returned yet

    def push(self, delta: str) -> tuple[str, str | None]:
        """Add one step's text; return (text to emit now, the matched stop string or None)."""
        if self.stopped is not None:
            return "", self.stopped
        buffer = self._recent + delta  # every character a new match can touch
        start_of_unemitted = len(self._recent) - self._unemitted
        if delta:
            for stop in self.stop_strings:
                position = buffer.find(stop, max(len(self._recent) - len(stop) + 1, 0))
                if position >= 0:
                    end = position + len(stop) if self.include_stop_str_in_output else position
                    self.stopped = stop
                    self._recent, self._unemitted = "", 0
                    return buffer[start_of_unemitted:end], stop
        return self._advance(buffer, start_of_unemitted, len(delta)), None

    def skip(self, delta: str) -> str:
        """Add text that must not be searched (the first `min_tokens` tokens); return what to emit.

        The text still counts as context, so a stop string that starts inside it and ends in a
        later delta matches, as in vLLM.
        """
        if self.stopped is not None:
            return ""
        buffer = self._recent + delta
        return self._advance(buffer, len(self._recent) - self._unemitted, len(delta))

    def flush(self) -> str:
        """At the end of generation: the held-back tail (nothing after a match)."""
        tail = self._recent[len(self._recent) - self._unemitted:]
        self._unemitted = 0
        return tail

    def _advance(self, buffer: str, start_of_unemitted: int, num_new: int) -> str:
        """No match: emit all but the last `_hold` characters; keep the last `_keep` as context."""
        self._unemitted = min(self._hold, self._unemitted + num_new)
        emit = buffer[start_of_unemitted:len(buffer) - self._unemitted]
        self._recent = buffer[max(len(buffer) - self._keep, 0):] if self._keep else ""
        return emit
