"""Constrained decoding in the engine: one grammar matcher per sequence, one mask per step.

The engine's glue between `pyengine.structured` (grammars, matchers) and the sampler, which only
sees a `[B, V]` boolean mask (step 7a of its pipeline). Per request:

    add_request   compile the constraint (cached by kind, spec and switches; a GrammarError is a
                  ValueError, so a bad schema fails that request only), unless `compile` ran on it
                  before (`Engine.compile_structured_outputs`: a server checks a request with it
                  and the compiled grammar travels on the constraint), and give every sequence
                  of the request its own fresh matcher (n > 1: all start at the same state)
    each step     the rows with a matcher get their allowed-token bitmask; the others are all True
    each token    the matcher accepts the sampled token; EOS is allowed only where the grammar
                  accepts; a matcher that cannot go on ends its sequence with finish_reason "stop"

A constraint holds for the whole output, with or without reasoning. With `reasoning_tags` (the
server sets them when it parses `<think>` blocks; each tag must be one token) the output is an
optional think block, then the constraint: `ThinkingMatcher` wraps the grammar's matcher.

    prompt ...                            the model may write
    does not open a think block           the constraint, or <think> free text </think> constraint
    ends inside an open block             free text </think> constraint
      (the template opened it, as DeepSeek-R1's does)
    ends with a closed block              the constraint (the template turned thinking off,
                                            as Qwen3's enable_thinking=false does)

Inside the block every text token is allowed except one that would spell `</think>` in pieces:
the block ends only with the closing tag's own token, exactly where the server's reasoning
parser ends it. The model cannot end inside the block: there EOS stands for the closing tag
(`output_token`), so where the model would stop (its EOS wins the draw) it is done thinking,
and its answer follows under the constraint. So a constrained sequence ends "stop" only with an
answer the constraint accepts, or "length" when max_tokens runs out first.

One exception: a matcher that hits one of its limits while it walks (`GrammarLimitError`, e.g. an
ambiguous grammar of a request's own whose parse keeps more than MAX_EARLEY_ITEMS items at one
position) is a dead end for its own row, never an error of the step: the row may only end (EOS)
and ends "stop", with a warning in the log, while every other row of the batch goes on. A bug in
a matcher (`GrammarInternalError`, a panic the Rust twin caught included) ends its row the same
way, logged as an error with its traceback.

`pyengine.structured` (the grammar compilers and matchers) is imported by the first request
with a constraint, so an engine that never sees one never loads it. The `TokenTrie` (the
vocabulary's bytes as the detokenizer sees them: special tokens and ids past the tokenizer never
match grammar text) is built on first use, once per engine.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Sequence

import numpy as np  # host: the per-step token masks

from pyengine.sampling import SamplingParams
from pyengine.sampling.nested_params import StructuredOutputsParams
from pyengine.text.token_bytes import token_pieces

logger = logging.getLogger(__name__)
WHITESPACE = frozenset(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")  # what str.strip removes, in ASCII


class ConstrainedDecoding:
    """Matchers for the sequences of structured-output requests, and the per-step mask."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_token_ids: Iterable[int], kernels: str | None = None):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_token_ids = sorted(set(eos_token_ids))
        self.kernels = kernels  # "native" | "python" | None (PYENGINE_KERNELS, else native when built)
        self._trie: Any = None
        self._token_bytes: list[bytes | None] | None = None
        self._think_blocks: dict[tuple[str, str], ThinkBlock] = {}

    @property
    def token_bytes(self) -> list[bytes | None]:
        """Each token id's bytes in decoded text (None: no text), computed on first use."""
        if self._token_bytes is None:
            self._token_bytes = vocabulary_bytes(self.tokenizer, self.vocab_size)
        return self._token_bytes

    @property
    def trie(self) -> Any:
        """The TokenTrie of the chosen kernels (Rust or the Python twin), built on first use."""
        if self._trie is None:
            from pyengine.structured.matcher import select  # noqa: PLC0415  (loaded with the first constraint)

            trie_class, _ = select(self.kernels)
            self._trie = trie_class(self.token_bytes)
        return self._trie

    def grammar_for(self, params: SamplingParams) -> Any:
        """The compiled grammar of a request (None without structured_outputs). Raises ValueError."""
        so = params.structured_outputs
        if so is None:
            return None
        return so.compiled if so.compiled is not None else self.compile(so)

    def compile(self, so: StructuredOutputsParams) -> Any:
        """Check a constraint against this engine and compile it (cached by kind, spec and switches).

        Raises:
            ValueError: an invalid schema, regex or grammar, one past the compile limits or nested
                too deeply, reasoning tags that are not single tokens, or no tokenizer.
        """
        if self.tokenizer is None:
            raise ValueError("structured outputs need a tokenizer (the engine runs with skip_tokenizer_init)")
        from pyengine.structured import JsonOptions, compile_grammar  # noqa: PLC0415  (the first constraint loads it)

        options = JsonOptions.from_switches(so.disable_any_whitespace, so.whitespace_pattern,
                                            so.disable_additional_properties, so.unsound_one_of)
        spec = so.spec
        if so.kind == "tool_calls":
            tools, min_calls, max_calls = spec
            spec = (tuple((name, schema) for name, schema in tools), min_calls, max_calls)
        if so.reasoning_tags is not None:
            self.think_block(so.reasoning_tags)  # checks the tags: a bad pair fails the request here
        try:
            return compile_grammar(so.kind, spec, options)
        except RecursionError:
            raise ValueError("nested too deeply to compile") from None

    def new_matcher(self, grammar: Any, params: SamplingParams | None = None, prompt_ids: Sequence[int] = ()) -> Any:
        """A fresh matcher for one sequence: the grammar's, behind a think block when the params ask so."""
        from pyengine.structured.matcher import select  # noqa: PLC0415

        _, matcher_class = select(self.kernels)
        matcher = matcher_class(grammar, self.trie, self.eos_token_ids)
        tags = None if params is None or params.structured_outputs is None else params.structured_outputs.reasoning_tags
        if tags is None:
            return matcher
        mode = reasoning_mode(self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False), tags)
        if mode == "off":
            return matcher
        return ThinkingMatcher(matcher, self.think_block(tags), inside=mode == "inside")

    def think_block(self, tags: tuple[str, str]) -> "ThinkBlock":
        """The token tables of a think block with these tags (built once per pair). Raises ValueError."""
        tags = (tags[0], tags[1])  # a list from JSON works too
        block = self._think_blocks.get(tags)
        if block is None:
            open_id, close_id = (self._single_token(tag) for tag in tags)
            block = ThinkBlock(open_id, close_id, tags[1].encode(), self.token_bytes, self.eos_token_ids)
            self._think_blocks[tags] = block
        return block

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"structured outputs with reasoning need {text!r} to be one token of the "
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
            if not _contained(m.fill_bitmask, words):  # this row's dead end, not the batch's
                words[:] = 0
            allowed = np.unpackbits(words.view(np.uint8), bitorder="little")[:self.vocab_size].astype(bool)
            if not allowed.any():  # a dead end: nothing fits; let EOS end the sequence cleanly
                allowed[self.eos_token_ids] = True
            mask[row] = allowed
        return mask

    @staticmethod
    def output_token(matcher: Any, token_id: int, row_logprobs: Any) -> tuple[int, Any]:
        """The token the output gets for a sampled one (EOS inside a think block closes the block), and
        its logprobs row (`RowLogprobs` or None), which then names the closing tag as the chosen token."""
        chosen = matcher.output_token(token_id) if isinstance(matcher, ThinkingMatcher) else token_id
        if chosen != token_id and row_logprobs is not None:
            row_logprobs = dataclasses.replace(row_logprobs, token_ids=[chosen, *row_logprobs.token_ids[1:]])
        return chosen, row_logprobs

    @staticmethod
    def advance(matcher: Any, token_id: int) -> bool:
        """Feed the sampled token; False when the grammar cannot take it (the sequence ends)."""
        return _contained(matcher.accept_token, token_id)


def _contained(call: Any, argument: Any) -> bool:
    """Call a matcher; False when it returns False or fails: at a limit (a warning) or by a bug (an error)."""
    from pyengine.structured.grammar import GrammarInternalError, GrammarLimitError  # noqa: PLC0415  (loaded with the matchers)

    try:
        return call(argument) is not False
    except GrammarLimitError as exc:
        logger.warning("structured output stopped: %s", exc)
    except GrammarInternalError:
        logger.exception("structured output failed by a bug in its matcher; its request ends")
    return False


def reasoning_mode(prompt_text: str, tags: tuple[str, str]) -> str:
    """Where the prompt leaves the model: "inside" an open think block, thinking turned "off" (the
    prompt ends with a closed block), or "optional" (the model may open one)."""
    open_tag, close_tag = tags
    last_open, last_close = prompt_text.rfind(open_tag), prompt_text.rfind(close_tag)
    if last_open > last_close:
        return "inside"
    if last_close >= 0 and prompt_text.rstrip().endswith(close_tag):
        return "off"
    return "optional"


class ThinkBlock:
    """The tokens allowed inside a think block, per state of a KMP automaton over the closing tag.

    The state is the length of the longest suffix of the block's text so far that is a proper
    prefix of the closing tag. From each state, `allowed[q]` ([ceil(V/32)] int32 bitmask words)
    holds every token with text except those whose bytes would complete the tag (plus the
    closing tag's own token, which ends the block); EOS and other special tokens are not text.
    Only tokens whose first byte is in the tag, or that contain its first byte, can leave state
    0 or complete the tag; the tables are computed for those alone.
    """

    def __init__(self, open_id: int, close_id: int, close: bytes, token_bytes: list[bytes | None],
                 eos_token_ids: Iterable[int]) -> None:
        self.open_id, self.close_id, self.eos_token_ids = open_id, close_id, sorted(set(eos_token_ids))
        self.token_bytes = token_bytes
        vocab_size = len(token_bytes)
        self.fallback = _kmp_fallback(close)
        self.close = close
        is_text = np.array([b is not None for b in token_bytes], dtype=bool)  # [V]
        tag_bytes = set(close)
        candidates = [(t, b) for t, b in enumerate(token_bytes)
                      if b is not None and (b[0] in tag_bytes or close[0] in b)]
        self.next_state: list[dict[int, int]] = []  # per state: token -> next state (absent: 0)
        self.allowed: list[Any] = []
        for q in range(len(close)):
            allowed = is_text.copy()
            moves = {}
            for t, data in candidates:
                after = self._run(q, data)
                if after is None:
                    allowed[t] = False
                elif after:
                    moves[t] = after
            allowed[close_id] = True
            padded = np.zeros(-(-vocab_size // 32) * 32, dtype=bool)
            padded[:vocab_size] = allowed
            self.allowed.append(np.packbits(padded, bitorder="little").view(np.int32))  # [ceil(V/32)]
            self.next_state.append(moves)

    def _run(self, q: int, data: bytes) -> int | None:
        """The state after `data` from state q; None when the closing tag completes inside it."""
        close, fallback = self.close, self.fallback
        for byte in data:
            while q and close[q] != byte:
                q = fallback[q]
            if close[q] == byte:
                q += 1
            if q == len(close):
                return None
        return q

    def step(self, q: int, token_id: int) -> int:
        return self.next_state[q].get(token_id, 0)


def _kmp_fallback(tag: bytes) -> list[int]:
    """fallback[q]: the longest proper border of tag[:q] (KMP's failure function)."""
    fallback = [0] * (len(tag) + 1)
    k = 0
    for i in range(1, len(tag)):
        while k and tag[i] != tag[k]:
            k = fallback[k]
        if tag[i] == tag[k]:
            k += 1
        fallback[i + 1] = k
    return fallback


class ThinkingMatcher:
    """A grammar matcher behind an optional think block; the same interface as the matcher it wraps.

    States: "start" (the grammar's tokens, and the opening tag while the output is only
    whitespace), "thinking" (text tokens, per `ThinkBlock`, until the closing tag's token),
    "answer" (the grammar's tokens). Opening the block restarts the grammar, so whitespace before
    the tag is not part of the answer.
    """

    def __init__(self, inner: Any, block: ThinkBlock, inside: bool = False) -> None:
        self.inner, self.block = inner, block
        self.state = "thinking" if inside else "start"
        self.kmp = 0  # ThinkBlock's state while thinking

    def fill_bitmask(self, words: Any) -> None:
        """The allowed tokens, as GrammarMatcher.fill_bitmask writes them; inside the block EOS is
        allowed too, and `output_token` turns it into the closing tag."""
        if self.state == "thinking":
            words[:] = self.block.allowed[self.kmp]
            for eos in self.block.eos_token_ids:
                words.view(np.uint32)[eos // 32] |= np.uint32(1 << (eos % 32))
            return
        self.inner.fill_bitmask(words)
        if self.state == "start":
            open_id = self.block.open_id
            words.view(np.uint32)[open_id // 32] |= np.uint32(1 << (open_id % 32))

    def output_token(self, token_id: int) -> int:
        """EOS inside the block stands for the closing tag; any other token is itself."""
        if self.state == "thinking" and token_id in self.block.eos_token_ids:
            return self.block.close_id
        return token_id

    def accept_token(self, token_id: int) -> bool:
        """Advance by one token (after `output_token`); False if it is not allowed here."""
        block = self.block
        if self.state == "thinking":
            if token_id == block.close_id:
                self.state = "answer"
                return True
            allowed = self.block.allowed[self.kmp].view(np.uint32)[token_id // 32] >> np.uint32(token_id % 32) & 1
            if not allowed:
                return False
            self.kmp = block.step(self.kmp, token_id)
            return True
        if self.state == "start":
            if token_id == block.open_id:
                self.inner.reset()
                self.state = "thinking"
                return True
            if not self.inner.accept_token(token_id):
                return False
            data = block.token_bytes[token_id]
            if data is None or not all(byte in WHITESPACE for byte in data):
                self.state = "answer"
            return True
        return self.inner.accept_token(token_id)

    def is_accepting(self) -> bool:
        return self.state != "thinking" and self.inner.is_accepting()

    def is_terminated(self) -> bool:
        return self.inner.is_terminated()


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


__all__ = ["ConstrainedDecoding", "ThinkBlock", "ThinkingMatcher", "vocabulary_bytes"]
