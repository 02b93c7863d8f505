"""Incremental detokenization: text deltas from token ids, one token at a time (Python twin).

Decoding each token on its own and concatenating is wrong in three ways:

1. a byte-level token can be half a UTF-8 character ("你" is `e4 bd a0`; Qwen may emit `e4` and
   `bd a0` as two tokens), so each half alone decodes to U+FFFD;
2. a SentencePiece byte-fallback run `<0xE4><0xBD><0xA0>` is text only as a whole, and a run
   that turns out invalid becomes one U+FFFD per byte token;
3. decoders treat the first token specially (SentencePiece's leading "▁" is dropped, a
   `Strip` removes the first space), so a token's text depends on what came before it.

The contract: fed ids one at a time, `push` returns text deltas whose concatenation, followed by
`flush()`, equals `tokenizer.decode(prompt + output)` minus the prompt's text; with no prompt,
exactly `tokenizer.decode(output)`. Like vLLM (tokenizers' `DecodeStream`, primed with the
prompt), a delta is held back while the text ends in an unfinished character or in U+FFFD, so
no emitted text is ever taken back.

    pieces (from token_bytes.py)    state machine                       emitted
    [e4] [bd a0] [20 68 69]    ->   bytes e4 | e4 bd a0 -> "你" | " hi"   "" | "你" | " hi"

`TokenTable` is built once per tokenizer and shared by every request's `IncrementalDetokenizer`.
This module is the Python twin of `rust/detok.rs` (same classes, methods, results and errors).
"""

from __future__ import annotations

import codecs
import os
from typing import Iterable, Sequence

from tokenizers import Tokenizer as BackendTokenizer

from pyengine.text.token_bytes import REPLACEMENT, TokenPieces, token_pieces

LOGPROB_CONTEXT = 4  # vLLM re-decodes a broken logprob token with up to 4 preceding tokens


class TokenTable:
    """What every token id decodes to, for one tokenizer (see `token_bytes.TokenPieces`)."""

    def __init__(self, pieces: TokenPieces):
        self.pieces = pieces.pieces
        self.first_pieces = pieces.first_pieces if pieces.first_pieces is not None else pieces.pieces
        self.byte_values = dict(pieces.byte_values)
        self.special_ids = frozenset(pieces.special_ids)
        self.added_tokens = dict(pieces.added_tokens)
        self.missing_ids = frozenset(pieces.missing_ids)
        self.strip_char = pieces.strip_char
        self.strip_count = pieces.strip_count

    @classmethod
    def from_tokenizer(cls, backend: BackendTokenizer, special_ids: Iterable[int] = (),
                       vocab_size: int | None = None) -> "TokenTable":
        """Build the table from a `tokenizers.Tokenizer` (once per tokenizer, not per request)."""
        return cls(token_pieces(backend, special_ids, vocab_size))

    @property
    def vocab_size(self) -> int:
        """Number of token ids the table covers (valid ids are 0 .. vocab_size - 1)."""
        return len(self.pieces)

    def check(self, token_id: int) -> None:
        """Raise ValueError for an id outside the vocabulary."""
        if not 0 <= token_id < len(self.pieces):
            raise ValueError(f"token id {token_id} is out of range for a vocabulary of {len(self.pieces)} tokens")

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of `token_ids`, exactly as `tokenizers.Tokenizer.decode` gives it."""
        detokenizer = IncrementalDetokenizer(self, None, skip_special_tokens)
        for token_id in token_ids:
            detokenizer.push(token_id)
        detokenizer.flush()
        return detokenizer.text

    def token_text(self, token_id: int, context_token_ids: Sequence[int] = ()) -> str:
        """A logprob's `decoded_token`, as vLLM computes it.

        vLLM decodes the token alone (special tokens kept). If that ends in U+FFFD (part of a
        character), it re-decodes with 1..4 of the preceding sampled tokens until the character
        completes, and returns what this token completes minus the clean prefix; "" if nothing
        completes (vLLM's `LogprobsProcessor._correct_decoded_token`).
        """
        text = self.decode([token_id], skip_special_tokens=False)
        if not text.endswith(REPLACEMENT):
            return text
        context = list(context_token_ids)[-LOGPROB_CONTEXT:]
        for num_context in range(1, len(context) + 1):
            window = context[-num_context:]
            full = self.decode(window + [token_id], skip_special_tokens=False)
            if full.endswith(REPLACEMENT):
                continue  # still unfinished: try one more token of context
            # Context tokens that are themselves broken belong to the character this one completes.
            clean_end = len(window)
            while clean_end > 0 and self.decode([window[clean_end - 1]], False).endswith(REPLACEMENT):
                clean_end -= 1
            clean_prefix = self.decode(window[:clean_end], False) if clean_end > 0 else ""
            if full.startswith(clean_prefix):
                return full[len(clean_prefix):]
            return full[len(os.path.commonprefix([clean_prefix, full])):]
        return ""


class IncrementalDetokenizer:
    """Feed ids with `push`; get back the text each one completes (vLLM's streaming rules).

    Args:
        table: the tokenizer's `TokenTable`.
        prompt_token_ids: the prompt, decoded first (and not returned) so that the first output
            token is decoded in context, as vLLM primes tokenizers' `DecodeStream` with it.
        skip_special_tokens: drop special tokens from the text.
        spaces_between_special_tokens: vLLM's flag; when False (and special tokens are kept),
            an added token right after another added token is returned as its bare content.
    """

    def __init__(self, table: TokenTable, prompt_token_ids: Sequence[int] | None = None,
                 skip_special_tokens: bool = True, spaces_between_special_tokens: bool = True):
        self.table = table
        self.skip_special_tokens = skip_special_tokens
        self.spaces_between_special_tokens = skip_special_tokens or spaces_between_special_tokens
        self.text = ""  # everything returned so far
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")  # holds an unfinished character
        self._run = bytearray()  # the open run of byte-fallback tokens
        self._num_decoded = 0  # tokens passed to the decoder (the first is special to decoders)
        self._strip_left = table.strip_count  # leading strip_char still to drop
        self._held = ""  # decoded text not yet returned
        self._last_added = False
        self._recent_ids: list[int] = []  # the last output ids: context for token_text
        for token_id in prompt_token_ids or ():
            table.check(token_id)
            self._decode(token_id)
            self._release()  # the prompt's own text is not output

    # -- the public methods ---------------------------------------------------------------------

    def push(self, token_id: int) -> str:
        """Append one output token; return the newly completed text ("" while it is held)."""
        self.table.check(token_id)
        self._decode(token_id)
        delta = self._release()
        if not self.spaces_between_special_tokens:
            is_added = token_id in self.table.added_tokens
            if is_added and self._last_added:
                delta = self.table.added_tokens[token_id]  # vLLM: the bare content, no space before
            self._last_added = is_added
        self._recent_ids = (self._recent_ids + [token_id])[-LOGPROB_CONTEXT:]
        self.text += delta
        return delta

    def flush(self) -> str:
        """At the end of generation: release held text (an unfinished character becomes U+FFFD)."""
        self._close_run()
        self._emit(self._utf8.decode(b"", final=True))
        delta, self._held = self._held, ""
        self.text += delta
        return delta

    def token_text(self, token_id: int) -> str:
        """The `decoded_token` of a logprob for the next position (call before pushing it)."""
        return self.table.token_text(token_id, self._recent_ids)

    # -- the state machine ----------------------------------------------------------------------

    def _decode(self, token_id: int) -> None:
        """Pass one token through the decoder: skip it, extend a byte run, or add its bytes."""
        table = self.table
        if token_id in table.missing_ids or (self.skip_special_tokens and token_id in table.special_ids):
            return  # decode drops it before the decoder sees it
        first = self._num_decoded == 0
        self._num_decoded += 1
        if token_id in table.byte_values:  # <0xNN>: wait until the run of byte tokens ends
            self._run.append(table.byte_values[token_id])
            return
        self._close_run()
        self._emit(self._utf8.decode(table.first_pieces[token_id] if first else table.pieces[token_id]))

    def _close_run(self) -> None:
        """A finished byte run is its UTF-8 text if valid as a whole, else one U+FFFD per byte."""
        if not self._run:
            return
        try:
            text = self._run.decode("utf-8")
        except UnicodeDecodeError:
            text = REPLACEMENT * len(self._run)
        self._run.clear()
        self._emit(self._utf8.decode(text.encode()))

    def _emit(self, text: str) -> None:
        """Decoded characters join the held text, after the whole-text Strip (if any)."""
        while self._strip_left > 0 and text:
            if text[0] != self.table.strip_char:
                self._strip_left = 0  # the text has started: nothing more to strip
                break
            text = text[1:]
            self._strip_left -= 1
        self._held += text

    def _release(self) -> str:
        """Return the held text unless it may still change (DecodeStream's rule)."""
        unfinished = self._run or self._utf8.getstate()[0]  # an open byte run or half a character
        if unfinished or self._held.endswith(REPLACEMENT):
            return ""
        delta, self._held = self._held, ""
        return delta
