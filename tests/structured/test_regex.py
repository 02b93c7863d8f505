"""regex_grammar agrees with Python's `re.fullmatch` (re.ASCII) and names what it rejects."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyengine.structured.grammar import GrammarError, GrammarLimitError
from pyengine.structured.matcher import matches
from pyengine.structured.regex import regex_grammar

PATTERNS = [r"a|b", r"[a-c]+x?", r"(ab|c){2,3}", r"\d{1,3}(\.\d+)?", r"^[^ab]*$", r"(?:a|)b*?", r"x{,2}y", r"a{x}",
            r"[\w-]+@\w+\.com", r".\s\S", r"[]a]", r"[^]a]b", r"(a*)*b", r"\x41\u00e9", r"a{0}", r"[a\-z]",
            r"(?P<n>ab)+|c{2,}?", r"[\D]{2}", r"\W\.", r"[.-]+", r"é+|[à-ÿ]"]
ALPHABET = "abcxy01.-@ \n]é{},Aà\t"


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=120, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=7))
def test_agrees_with_re_fullmatch(pattern, text):
    expected = re.fullmatch(pattern, text, re.ASCII) is not None
    assert matches(regex_grammar(pattern), text.encode()) == expected


@pytest.mark.parametrize("pattern,message", [
    (r"(?=a)", "lookahead"), (r"(?<!a)b", "lookbehind"), (r"(a)\1", "backreferences"), (r"\bx", "word boundaries"),
    (r"(?i)a", "inline flags"), (r"a**", "multiple repeat"), (r"*a", "nothing to repeat"), (r"(a", "missing \\)"),
    (r"a)", "unbalanced"), (r"[a", "unterminated character set"), (r"a{3,2}", "min repeat greater"),
    (r"a++", "possessive"), (r"x^", "anchor"), (r"a$b", "anchor"), (r"\p{L}", "Unicode properties"), (r"\q", "bad escape"),
])
def test_rejected_constructs_are_named(pattern, message):
    with pytest.raises(GrammarError, match=message):
        regex_grammar(pattern)


def test_limits():
    with pytest.raises(GrammarLimitError, match="deeper"):
        regex_grammar("(" * 200 + "a" + ")" * 200)
    with pytest.raises(GrammarLimitError, match="exceeds the limit"):
        regex_grammar("a{2000000}")
