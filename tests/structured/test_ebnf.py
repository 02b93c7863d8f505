"""GBNF (llama.cpp's dialect) to Grammar: a JSON grammar, escapes, repetition, errors with positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyengine.structured.ebnf import ebnf_grammar
from pyengine.structured.grammar import GrammarError, GrammarLimitError
from pyengine.structured.matcher import matches

JSON_GBNF = r'''
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
'''


@pytest.mark.parametrize("text,ok", [
    ('{"a": 1, "b": [true, null, "x\\n"]}', True), ("{}", True), ('{"k": {"z": -1.5e3}}', True),
    ('{"é": "😀\\u00e9"}', True), ('{"a":}', False), ("[1]", False), ('{"a": 01}', False), ('{"a": "\x01"}', False),
])
def test_json_gbnf(text, ok):
    g = ebnf_grammar(JSON_GBNF)
    assert matches(g, text.encode()) == ok
    if ok:
        json.loads(text)


def test_features():
    g = ebnf_grammar('root ::= "a" b{2} c{1,} d{0,2} [^x-z\\]] .\nb ::= "\\x41" | "\\u00e9"\nc ::= "-"  # c\nd::="\\""')
    assert matches(g, 'aAé--"" q😀'.encode()) is False  # the space is not a class member: [^x-z\]] then .
    assert matches(g, 'aAé--""q😀'.encode())
    assert not matches(g, 'aAé--""y😀'.encode())


@pytest.mark.parametrize("text,message", [
    ("root ::= foo", "line 1, column 10: undefined rule 'foo'"), ('x ::= "a"', "no 'root' rule"),
    ('root ::= "a" (', "expected '\\)'"), ('root ::= "a\\q"', "unknown escape"), ("root ::= [a", "unterminated"),
    ('root ::= "a"\nroot ::= "b"', "line 2, column 1: rule 'root' is defined twice"),
    ('root ::= "a"{3,1}', "invalid repetition"), ('root ::= "a" )', "unbalanced"), ("root = x", "expected a rule"),
])
def test_errors(text, message):
    with pytest.raises(GrammarError, match=message):
        ebnf_grammar(text)


def test_limits():
    with pytest.raises(GrammarLimitError):
        ebnf_grammar("root ::= " + "(" * 150 + '"a"' + ")" * 150)
    with pytest.raises(GrammarLimitError):
        ebnf_grammar('root ::= "a"{0,2000000}')
