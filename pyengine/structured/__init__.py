"""Structured outputs: grammars over bytes, and the token masks that keep generation inside them.

    grammar.py      Grammar (rules over bytes) and GrammarBuilder (combinators)
    regex.py        regex -> Grammar          ebnf.py         GBNF -> Grammar     lark.py   Lark -> Grammar
    automaton.py    regular languages intersected and complemented (derivatives) -> Grammar
    json_schema/    JSON Schema -> Grammar    constraints.py  every front end, cached; tool calls; structural tags
    trie.py         TokenTrie: the vocabulary's bytes, built once per tokenizer
    matcher.py      GrammarMatcher: the allowed-token bitmask at each step, advanced per token;
                    matches(grammar, data), the slow reference recognizer

A component like sampling and text: it imports neither; the engine composes them (it builds the
trie from the tokenizer's token bytes and hands the sampler a mask). docs/06-structured-outputs.md
walks through it.
"""

from pyengine.structured.constraints import KINDS, compile_grammar, structural_tag_grammar, tool_calls_grammar
from pyengine.structured.grammar import Grammar, GrammarBuilder, GrammarError, GrammarInternalError, GrammarLimitError
from pyengine.structured.json_schema import JsonOptions, json_schema_grammar
from pyengine.structured.matcher import GrammarMatcher, matches
from pyengine.structured.trie import TokenTrie

__all__ = ["KINDS", "Grammar", "GrammarBuilder", "GrammarError", "GrammarInternalError", "GrammarLimitError",
           "GrammarMatcher", "JsonOptions", "TokenTrie", "compile_grammar", "json_schema_grammar", "matches", "structural_tag_grammar", "tool_calls_grammar"]
