"""Incremental detokenization: text deltas from token ids, one token at a time.

Decoding each token on its own is wrong: a token can be half of a UTF-8 character (byte-level
BPE splits "é" into two tokens), and SentencePiece decoders change a token's leading space
depending on what precedes it. So, as vLLM does, we decode a short *window* that starts a few
tokens back: the text of window[prefix:] minus the text of window[prefix:read] is what the new
tokens add. While that text ends in U+FFFD (an incomplete character) we emit nothing and wait.

    ids:   ... 17  42 | 9  250 | 251        prefix_offset -> 17, read_offset -> 250
    text:  decode([17, 42, 9, 250, 251]) - decode([17, 42, 9])  = the new characters

This is the Python twin of the native kernel (same class name and methods).
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Tokenizer as BackendTokenizer

INITIAL_CONTEXT = 5  # prompt tokens the window starts with, so the first token decodes in context


class TokenTable:
    """Per-tokenizer data shared by every request's detokenizer (built once per tokenizer)."""

    def __init__(self, backend: BackendTokenizer, special_ids: frozenset[int]):
        self.backend = backend
        self.special_ids = frozenset(special_ids)
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_tokenizer(cls, backend: BackendTokenizer, special_ids: Sequence[int]) -> "TokenTable":
        return cls(backend, frozenset(special_ids))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def check(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is out of range for a vocabulary of {self.vocab_size} tokens")


class IncrementalDetokenizer:
    """Feed ids with `push`; get back the text each one completes."""

    def __init__(self, table: TokenTable, prompt_token_ids: Sequence[int] | None = None,
                 skip_special_tokens: bool = True, spaces_between_special_tokens: bool = True):
        self.table = table
        self.skip_special_tokens = skip_special_tokens
        # Fast tokenizers never put spaces between special tokens, so vLLM's flag has no effect
        # on them; it is kept for interface parity with vLLM's SamplingParams.
        self.spaces_between_special_tokens = spaces_between_special_tokens
        context = list(prompt_token_ids or [])[-INITIAL_CONTEXT:]
        self.ids: list[int] = context
        self.prefix_offset = 0
        self.read_offset = len(context)
        self.text = ""

    def push(self, token_id: int) -> str:
        """Append one token; return the newly completed text ("" while a character is incomplete)."""
        self.table.check(token_id)
        self.ids.append(token_id)
        prefix_text = self.table.decode(self.ids[self.prefix_offset:self.read_offset], self.skip_special_tokens)
        new_text = self.table.decode(self.ids[self.prefix_offset:], self.skip_special_tokens)
        if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
            return ""  # nothing new yet, or half a character: wait for the next token
        delta = new_text[len(prefix_text):]
        self.prefix_offset = self.read_offset
        self.read_offset = len(self.ids)
        self.text += delta
        return delta

    def flush(self) -> str:
        """At the end: release held bytes as decode would show them (U+FFFD for a broken tail)."""
        prefix_text = self.table.decode(self.ids[self.prefix_offset:self.read_offset], self.skip_special_tokens)
        new_text = self.table.decode(self.ids[self.prefix_offset:], self.skip_special_tokens)
        delta = new_text[len(prefix_text):] if len(new_text) > len(prefix_text) else ""
        self.prefix_offset = self.read_offset = len(self.ids)
        self.text += delta
        return delta

    def token_text(self, token_id: int) -> str:
        """One token's text for a logprob's `decoded_token` (its raw piece if it is partial UTF-8)."""
        self.table.check(token_id)
        text = self.table.decode([token_id], skip_special_tokens=False)
        if "\ufffd" in text:
            return self.table.backend.id_to_token(token_id) or ""
        return text
