"""A constraint behind a think block: `ThinkingMatcher`, `ThinkBlock` and `reasoning_mode`.

A hand-made vocabulary where the tags are tokens of their own and can also be spelled in pieces,
and the Python twin of the grammar matcher underneath; masks are checked against brute force.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from pyengine import LLM, SamplingParams
from pyengine.constrained import ConstrainedDecoding, ThinkBlock, ThinkingMatcher, reasoning_mode
from pyengine.sampling.nested_params import StructuredOutputsParams
from pyengine.structured import GrammarMatcher, TokenTrie, compile_grammar

EOS, OPEN, CLOSE, SPECIAL = 0, 1, 2, 14
VOCAB: list[bytes | None] = [None, b"<think>", b"</think>", b"</", b"think>", b"a", b"b", b" ", b"\n", b"<",
                             b"/think", b">", b"yes", b"no", None, b"k>", b"</th", b"ink>"]
TEXT = {t for t, b in enumerate(VOCAB) if b is not None}
TAGS = ("<think>", "</think>")


def make(kind: str, spec, inside: bool = False) -> ThinkingMatcher:
    inner = GrammarMatcher(compile_grammar(kind, spec), TokenTrie(VOCAB), [EOS])
    return ThinkingMatcher(inner, ThinkBlock(OPEN, CLOSE, b"</think>", VOCAB, [EOS]), inside=inside)


def allowed(matcher) -> set[int]:
    words = np.zeros((len(VOCAB) + 31) // 32, dtype=np.int32)
    matcher.fill_bitmask(words)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[:len(VOCAB)]
    return {int(t) for t in np.flatnonzero(bits)}


def feed(matcher, *tokens: int) -> None:
    for token in tokens:
        assert matcher.accept_token(matcher.output_token(token)), token


def test_at_the_start_the_answer_or_the_opening_tag_and_no_eos():
    m = make("choice", ["yes", "no"])
    assert allowed(m) == {OPEN, 12, 13}  # the constraint's first tokens, or <think>; never EOS


def test_inside_the_block_text_is_free_but_special_tokens_are_not():
    m = make("choice", ["yes", "no"])
    feed(m, OPEN)
    assert allowed(m) == TEXT | {EOS}
    assert m.output_token(EOS) == CLOSE  # EOS is allowed as the closing tag, never as the end
    assert not m.accept_token(SPECIAL)


def test_the_block_closes_only_with_the_closing_tags_own_token():
    m = make("choice", ["yes", "no"])
    feed(m, OPEN, 5, 3)  # "<think>a</"
    assert allowed(m) == TEXT - {4} | {EOS}  # "think>" would spell </think> in pieces
    assert not m.accept_token(4)
    feed(m, 5, 9, 10)  # "a</think" so far, no tag yet
    assert allowed(m) == TEXT - {11} | {EOS}  # ">" would close it: only the tag's own token may
    feed(m, 16)  # "</th" (after "</think", which a "<" breaks)
    assert allowed(m) == TEXT - {17} | {EOS}  # "ink>"
    feed(m, 6, CLOSE)  # "b", then the real closing tag
    assert allowed(m) == {12, 13}  # the answer: the constraint alone
    assert not m.accept_token(EOS) and m.output_token(EOS) == EOS


def test_eos_only_where_the_answer_is_complete():
    m = make("choice", ["yes", "no"])
    feed(m, OPEN, 5, EOS)  # the model ends its thought with EOS: the block closes
    feed(m, 12)
    assert allowed(m) == {EOS}
    feed(m, EOS)
    assert m.is_terminated()


def test_a_prompt_that_opened_the_block_starts_inside_it():
    m = make("choice", ["yes", "no"], inside=True)
    assert allowed(m) == TEXT | {EOS} and m.output_token(EOS) == CLOSE
    feed(m, 5, CLOSE, 13, EOS)


def test_whitespace_before_the_opening_tag_is_not_part_of_the_answer():
    m = make("regex", r" ?yes")  # the answer may start with a space
    feed(m, 7)  # " ": still only whitespace, so <think> may follow
    assert OPEN in allowed(m)
    feed(m, OPEN, CLOSE)  # opening restarts the grammar: the answer starts after </think>
    assert allowed(m) == {7, 12}
    m = make("regex", r" ?yes")
    feed(m, 7, 12)  # " yes": an answer, no block any more
    assert OPEN not in allowed(m) and allowed(m) == {EOS}


def test_masks_equal_brute_force_over_random_walks():
    """The allowed set inside the block is exactly: text tokens that do not put </think> in the
    text, plus the closing token and EOS; checked along random walks through the block."""
    rng = random.Random(7)
    for _ in range(200):
        m = make("choice", ["yes"], inside=True)
        text = b""
        for _ in range(rng.randrange(1, 12)):
            expected = {t for t, b in enumerate(VOCAB) if b is not None and b"</think>" not in text + b}
            assert allowed(m) == expected | {CLOSE, EOS}, text
            token = rng.choice(sorted(expected - {CLOSE}))
            feed(m, token)
            text += VOCAB[token]


@pytest.mark.parametrize("prompt, mode", [
    ("<|im_start|>assistant\n", "optional"),
    ("<|im_start|>assistant\n<think>\n", "inside"),
    ("<|im_start|>assistant\n<think>\n\n</think>\n\n", "off"),  # a template that turned thinking off
    ("<think>x</think>earlier answer<|im_end|>\n<|im_start|>assistant\n", "optional"),
])
def test_reasoning_mode_reads_where_the_prompt_leaves_the_model(prompt, mode):
    assert reasoning_mode(prompt, TAGS) == mode


# -- through the engine, on the demo model ---------------------------------------------------------------

LANGUAGES = ["Python", "Java", "JavaScript", "C++", "C#", "PHP", "TypeScript", "Ruby", "Swift", "Kotlin"]


def test_thinking_turned_off_by_the_prompt_means_no_block():
    llm = LLM(model="pyengine/demo_model")
    constrained: ConstrainedDecoding = llm.llm_engine.constrained
    params = SamplingParams(structured_outputs=StructuredOutputsParams(choice=["yes"], reasoning_tags=TAGS))
    grammar = constrained.grammar_for(params)
    encode = llm.llm_engine.tokenizer.encode
    off = constrained.new_matcher(grammar, params, encode("<|im_start|>assistant\n<think>\n\n</think>\n\n"))
    assert not isinstance(off, ThinkingMatcher)
    inside = constrained.new_matcher(grammar, params, encode("<|im_start|>assistant\n<think>\n"))
    assert isinstance(inside, ThinkingMatcher) and inside.state == "thinking"


def test_the_demo_model_always_answers_under_the_constraint_after_thinking():
    """vLLM's choice prompt: the demo model opens a think block and would often end inside it."""
    llm = LLM(model="pyengine/demo_model")
    structured = StructuredOutputsParams(choice=LANGUAGES, reasoning_tags=TAGS)
    messages = [{"role": "system", "content": "you are a helpful assistant"},
                {"role": "user", "content": "The best language for type-safe systems programming is "}]
    params = SamplingParams(n=8, temperature=1.0, seed=0, max_tokens=300, structured_outputs=structured)
    [out] = llm.chat(messages, params)
    thought = 0
    for o in out.outputs:
        assert o.finish_reason in ("stop", "length"), o
        if o.finish_reason == "stop":
            reasoning, _, answer = o.text.rpartition("</think>")
            assert answer in LANGUAGES, o.text
            thought += reasoning.startswith("<think>")
    assert thought >= 4  # the model did think, and still answered


def test_logprobs_name_the_closing_tag_where_eos_closed_the_block():
    """Where EOS was drawn inside the block, the output holds </think>, and so do its logprobs."""
    llm = LLM(model="pyengine/demo_model")
    structured = StructuredOutputsParams(choice=LANGUAGES, reasoning_tags=TAGS)
    messages = [{"role": "system", "content": "you are a helpful assistant"},
                {"role": "user", "content": "The best language for type-safe systems programming is "}]
    params = SamplingParams(n=8, temperature=1.0, seed=0, max_tokens=300, logprobs=2, structured_outputs=structured)
    [out] = llm.chat(messages, params)
    for o in out.outputs:
        for token_id, step in zip(o.token_ids, o.logprobs):
            assert next(iter(step)) == token_id  # the chosen token comes first, as vLLM lists it
