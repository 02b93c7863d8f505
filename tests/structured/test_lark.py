"""Lark grammars: the subset generation needs, read as one grammar over bytes; the rest is named."""

from __future__ import annotations

import pytest

from pyengine.structured import GrammarError, GrammarMatcher, TokenTrie, compile_grammar, matches
from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.lark import lark_grammar

ARITHMETIC = r"""
// vLLM's documentation example, in Lark
?start: expr
expr: term (("+" | "-") term)*
term: factor (("*" | "/") factor)*
factor: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
"""

ARITHMETIC_GBNF = r"""
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")"
"""

SQL = """
start: select_statement
select_statement: "SELECT " column " from " table " where " condition
column: "col_1" | "col_2"
table: "table_1" | "table_2"
condition: column " = " number
number: "1" | "2"
"""


@pytest.mark.parametrize("text, good, bad", [
    (ARITHMETIC, [b"1+2*3", b"(4-5)/67", b"8"], [b"", b"1+", b"(1", b"1 + 2", b"a"]),
    (SQL, [b"SELECT col_1 from table_2 where col_2 = 1"], [b"SELECT col_3 from table_1 where col_1 = 1",
                                                           b"SELECT col_1 from table_1 where col_1 = 3"]),
    ('start: "yes"i | "no"', [b"yes", b"YeS", b"no"], [b"NO", b"ye"]),  # i: any letter case
    ('start: ("a".."c")+ DIGITS?\nDIGITS: /[0-9]{2}/', [b"abc", b"cc12"], [b"d", b"a1", b"a123"]),
    ('start: item ~ 2..3\nitem: "x" -> leaf', [b"xx", b"xxx"], [b"x", b"xxxx"]),  # ranges; aliases name nodes only
    ("start: 'single' [\"!\"]", [b"single", b"single!"], [b"single!!"]),  # single quotes, [ ] optional
    ('greeting: "hi" NAME\nNAME: " " /[A-Z][a-z]*/', [b"hi Bob", b"hi B"], [b"hiBob", b"hi bob"]),  # first rule
    ('A: "a"\nb: A "b"', [b"ab"], [b"a"]),  # terminals first: the first *rule* starts
    ('start: x\n    | y   # alternatives on lines of their own\nx: "1"\ny: "2" // comment', [b"1", b"2"], [b"12"]),
    ('start: "C#" "\\n" "\\u00e9"', ["C#\né".encode()], [b"C"]),  # '#' in a string is no comment
    (r'start: "\d" "\x41"', [b"\\dA"], [b"1A"]),  # an unknown escape keeps its backslash, as in Python
])
def test_lark_grammars_accept_exactly_their_language(text, good, bad):
    grammar = lark_grammar(text)
    for data in good:
        assert matches(grammar, data), data
    for data in bad:
        assert not matches(grammar, data), data


def test_the_same_language_as_the_gbnf_it_translates_to():
    lark, gbnf = lark_grammar(ARITHMETIC), ebnf_grammar(ARITHMETIC_GBNF)
    samples = [b"", b"1", b"12+3", b"(1)", b"((2*3)-4)/5", b"1++2", b"()", b"(1", b"1)", b"9*(8+7)", b"x"]
    for data in samples:
        assert matches(lark, data) == matches(gbnf, data), data


def test_the_grammar_kind_reads_lark_when_there_is_no_definition_with_colons_equals():
    assert matches(compile_grammar("grammar", 'start: "on" | "off"'), b"off")
    assert matches(compile_grammar("grammar", 'root ::= "on" | "off"'), b"on")  # GBNF as before


def test_masks_follow_the_lark_rules():
    vocab = [None, b"SELECT ", b"col_", b"1", b"2", b" from ", b"table_", b" where ", b" = ", b"x", b"SEL"]
    m = GrammarMatcher(lark_grammar(SQL), TokenTrie(vocab), [0])
    assert m.allowed_token_ids() == [1, 10]  # "SELECT " or a prefix of it; nothing else, no EOS
    for token in (1, 2):
        assert m.accept_token(token)
    assert m.allowed_token_ids() == [3, 4]  # col_1 or col_2
    for token in (3, 5, 6, 4, 7, 2, 4, 8):
        assert m.accept_token(token)
    assert m.allowed_token_ids() == [3, 4]  # number: "1" | "2"
    assert m.accept_token(4)
    assert m.allowed_token_ids() == [0]  # complete: only EOS


@pytest.mark.parametrize("text, named", [
    ("%import common.WS\nstart: WS", "%import"),
    ('start: "a"\n%ignore " "', "%ignore"),
    ('start: "a"\n%declare X', "%declare"),
    ('start: A\nA.2: "a"', "priority"),
    ("start: /a+/i", "regex flags"),
    ('_sep{x, s}: x (s x)*\nstart: _sep{"a", ","}', "template"),
])
def test_unsupported_features_are_named(text, named):
    with pytest.raises(GrammarError, match="unsupported Lark feature") as info:
        lark_grammar(text)
    assert named in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("start: missing", "undefined name 'missing'"),
    ('start: "a"\nstart: "b"', "defined twice"),
    ('start: ("a"', "expected ')'"),
    ('start: "a" )', "unbalanced"),
    ("start: @", "unexpected '@'"),
    ('start: "b".."a"', "two single characters, in order"),
    ("start: /(?=a)a/", "regex"),
    ("just words", "expected a definition"),
    (r'start: "\x4"', "bad escape"),
])
def test_mistakes_are_grammar_errors_with_a_position(text, message):
    with pytest.raises(GrammarError, match=r"^Lark grammar line \d+, column \d+: ") as info:
        lark_grammar(text)
    assert message in str(info.value)
