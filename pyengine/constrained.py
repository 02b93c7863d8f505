"""Constrained decoding in the engine: one grammar matcher per sequence, one mask per step.

The engine's glue between `pyengine.structured` (grammars, matchers) and the sampler, which only
sees a `[B, V]` boolean mask (step 0 of its pipeline). Per request:

    add_request   compile the constraint (cached by kind, spec and switches; a GrammarError is a
                  ValueError, so a bad schema fails that request only) and give every sequence
                  of the request its own fresh matcher (n > 1: all start at the same state)
    each step     the rows with a matcher get their allowed-token bitmask; the others are all True
    each token    the matcher accepts the sampled token; EOS is allowed only where the grammar
                  accepts; a matcher that cannot go on ends its sequence with finish_reason "stop"

With `reasoning_tags` (the server sets them when it parses `<think>` blocks) the grammar waits for
the reasoning section to end, as vLLM's does: `AfterReasoning` lets the first token open a think
block, lets anything through until the block closes, and only then starts the grammar; a prompt
that already opened the block (Qwen3-style templates) starts inside it.

The `TokenTrie` (the vocabulary's bytes as the detokenizer sees them: special tokens and ids
past the tokenizer never match grammar text) is built on first use, once per engine.
"""

from __future__ import annotations

from typing import Any, Iterable

from pyengine.backend import host_numpy
from pyengine.sampling import SamplingParams
from pyengine.structured import GrammarError, JsonOptions, compile_grammar
from pyengine.structured.matcher import select
from pyengine.text.token_bytes import token_pieces

np = host_numpy()


class ConstrainedDecoding:
    """Matchers for the sequences of structured-output requests, and the per-step mask."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_token_ids: Iterable[int], kernels: str | None = None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_token_ids = sorted(set(eos_token_ids))
        self.kernels = kernels  # "native" | "python" | None (PYENGINE_KERNELS, else native when built)
        self._trie: Any = None

    @property
    def trie(self) -> Any:
        """The TokenTrie of the chosen kernels (Rust or the Python twin), built on first use."""
        if self._trie is None:
            trie_class, _ = select(self.kernels)
            self._trie = trie_class(vocabulary_bytes(self.tokenizer, self.vocab_size))
        return self._trie

    def grammar_for(self, params: SamplingParams) -> Any:
        """The compiled grammar of a request (None without structured_outputs). Raises ValueError."""
        so = params.structured_outputs
        if so is None:
            return None
        if self.tokenizer is None:
            raise ValueError("structured outputs need a tokenizer (the engine runs with skip_tokenizer_init)")
        options = JsonOptions.from_switches(so.disable_any_whitespace, so.whitespace_pattern,
                                            so.disable_additional_properties, so.unsound_one_of)
        spec = so.spec
        if so.kind == "tool_calls":
            tools, min_calls, max_calls = spec
            spec = (tuple((name, schema) for name, schema in tools), min_calls, max_calls)
        return compile_grammar(so.kind, spec, options)

    def new_matcher(self, grammar: Any, params: SamplingParams | None = None, prompt_ids: list[int] = ()) -> Any:
        """A fresh matcher for one sequence; after the reasoning section when the params ask so."""
        _, matcher_class = select(self.kernels)
        matcher = matcher_class(grammar, self.trie, self.eos_token_ids)
        tags = None if params is None or params.structured_outputs is None else params.structured_outputs.reasoning_tags
        if tags is None:
            return matcher
        open_id, close_id = (self._single_token(tag) for tag in tags)
        opened = open_id in prompt_ids and (close_id not in prompt_ids or
                                            _last_index(prompt_ids, open_id) > _last_index(prompt_ids, close_id))
        return AfterReasoning(matcher, open_id, close_id, thinking=opened)

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"structured outputs after reasoning need {text!r} to be one token of the "
                             f"vocabulary; it encodes to {len(ids)} tokens")
        return ids[0]

    def mask(self, matchers: list[Any]) -> Any:
        """[B, V] bool host array (True = allowed) for these rows, or None when no row has a matcher."""
        if all(m is None for m in matchers):
            return None
        mask = np.ones((len(matchers), self.vocab_size), dtype=bool)
        words = np.zeros((self.vocab_size + 31) // 32, dtype=np.int32)
        for row, m in enumerate(matchers):
            if m is None:
                continue
            m.fill_bitmask(words)
            allowed = np.unpackbits(words.view(np.uint8), bitorder="little")[:self.vocab_size].astype(bool)
            if not allowed.any():  # a dead end: nothing fits; let EOS end the sequence cleanly
                allowed[self.eos_token_ids] = True
            mask[row] = allowed
        return mask

    @staticmethod
    def advance(matcher: Any, token_id: int) -> bool:
        """Feed the sampled token; False when the grammar cannot take it (the sequence ends)."""
        return matcher.accept_token(token_id)


class AfterReasoning:
    """A grammar matcher that starts after the model's reasoning section.

    States: "start" (the grammar's tokens, plus the opening tag), "thinking" (every token, until
    the closing tag), "answer" (the grammar's tokens). Same interface as the matcher it wraps.
    """

    def __init__(self, inner: Any, open_id: int, close_id: int, thinking: bool = False):
        self.inner, self.open_id, self.close_id = inner, open_id, close_id
        self.state = "thinking" if thinking else "start"

    def fill_bitmask(self, words: Any) -> None:
        if self.state == "thinking":
            words[:] = -1  # every bit set: reasoning is free text
            return
        self.inner.fill_bitmask(words)
        if self.state == "start":
            words.view(np.uint32)[self.open_id // 32] |= np.uint32(1 << (self.open_id % 32))

    def accept_token(self, token_id: int) -> bool:
        if self.state == "thinking":
            if token_id == self.close_id:
                self.state = "answer"
            return True
        if self.state == "start" and token_id == self.open_id:
            self.state = "thinking"
            return True
        self.state = "answer"
        return self.inner.accept_token(token_id)


def _last_index(ids: Any, token_id: int) -> int:
    ids = list(ids)
    return len(ids) - 1 - ids[::-1].index(token_id)


def vocabulary_bytes(tokenizer: Any, vocab_size: int) -> list[bytes | None]:
    """Each token id's bytes in decoded text; None for special tokens and ids with no token."""
    pieces = token_pieces(tokenizer.backend_tokenizer, tokenizer.all_special_ids, vocab_size)
    out: list[bytes | None] = []
    for token_id, piece in enumerate(pieces.pieces):
        if token_id in pieces.special_ids or token_id in pieces.missing_ids:
            out.append(None)
        elif token_id in pieces.byte_values:
            out.append(bytes([pieces.byte_values[token_id]]))
        else:
            out.append(piece or None)
    return out


__all__ = ["AfterReasoning", "ConstrainedDecoding", "GrammarError", "vocabulary_bytes"]
