"""Stop strings on both implementations (`impl`).

Each test streams deltas as the detokenizer would produce them and checks what is emitted at
each step, the matched stop string and the final text.
"""

from __future__ import annotations

import pytest


def run(impl, stops, deltas, include=False, skip=0):
    """Push `deltas` (the first `skip` via `skip`, as for min_tokens); flush at the end."""
    checker = impl.StopChecker(stops, include)
    emitted = []
    for i, delta in enumerate(deltas):
        if i < skip:
            emitted.append(checker.skip(delta))
            continue
        emit, stopped = checker.push(delta)
        emitted.append(emit)
        if stopped is not None:
            break
    emitted.append(checker.flush())
    return emitted, checker.stopped


def test_a_stop_string_split_across_tokens_is_never_streamed(impl):
    emitted, stopped = run(impl, ["</answer>"], ["42", "</", "ans", "wer", ">", "more"])
    assert stopped == "</answer>"
    assert "".join(emitted) == "42"
    # while "</ans" could still be the start of the stop string, it was held back
    assert emitted == ["", "", "", "42", "", ""]


def test_include_stop_str_in_output(impl):
    emitted, stopped = run(impl, ["</answer>"], ["42", "</", "ans", "wer", ">", "more"], include=True)
    assert stopped == "</answer>"
    assert emitted == ["42", "</", "ans", "wer", ">", ""]  # nothing held back, cut after the string


def test_text_after_the_stop_string_in_the_same_delta_is_dropped(impl):
    emitted, stopped = run(impl, ["STOP"], ["abcSTOPdef"])
    assert (emitted, stopped) == (["abc", ""], "STOP")
    emitted, _ = run(impl, ["STOP"], ["abcSTOPdef"], include=True)
    assert emitted == ["abcSTOP", ""]


def test_first_in_list_wins_not_first_in_text(impl):
    """vLLM's quirk: stop strings are tried in list order within the new text."""
    emitted, stopped = run(impl, ["world", "hello"], ["say hello world!"])
    assert stopped == "world"
    assert "".join(emitted) == "say hello "


def test_no_match_releases_everything_at_the_end(impl):
    emitted, stopped = run(impl, ["xyz"], ["abc", "xy"])
    assert stopped is None
    assert emitted == ["a", "bc", "xy"]  # the last 2 characters (max len - 1) wait for flush


def test_skipped_text_is_not_searched_but_is_context(impl):
    """min_tokens: text of the first tokens never matches on its own, but a stop string that
    starts there and ends in later text does (vLLM searches len(stop) - 1 characters back)."""
    assert run(impl, ["ab"], ["xab", "c"], skip=1) == (["xa", "b", "c"], None)
    assert run(impl, ["ab"], ["xa", "b"], skip=1) == (["x", "", ""], "ab")


def test_lengths_are_characters(impl):
    emitted, stopped = run(impl, ["終わり"], ["これで", "終わ", "り。"])
    assert (stopped, "".join(emitted)) == ("終わり", "これで")
    emitted, _ = run(impl, ["🙂🙂"], ["a🙂", "b"])
    assert emitted == ["a", "🙂", "b"]


def test_after_a_match_nothing_more_is_emitted(impl):
    checker = impl.StopChecker(["x"], False)
    assert checker.push("axb") == ("a", "x")
    assert checker.push("more") == ("", "x")
    assert checker.flush() == ""


def test_empty_delta_and_no_stop_strings(impl):
    checker = impl.StopChecker([], False)
    assert checker.push("") == ("", None)
    assert checker.push("abc") == ("abc", None)
    assert checker.stopped is None


def test_invalid_stop_strings(impl):
    with pytest.raises(ValueError, match="^stop strings must not be empty$"):
        impl.StopChecker(["ok", ""], False)
    with pytest.raises(TypeError, match="^stop_strings must be a list of strings, not a str$"):
        impl.StopChecker("STOP", False)
