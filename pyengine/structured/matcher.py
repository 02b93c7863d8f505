"""Token masks from a grammar: an Earley parser over bytes, walked along the vocabulary trie.

This is the readable Python twin of `rust/grammar/` (same classes, methods and results):

    trie = TokenTrie(token_bytes)                       # once per tokenizer
    m = GrammarMatcher(grammar, trie, eos_token_ids)    # once per request
    m.fill_bitmask(out)    # out: int32 [ceil(V/32)]; bit i of word i//32 set = token i allowed
    m.accept_token(id)     # advance by the sampled token (False, and no change, if not allowed)
    m.rollback(n)          # undo the last n accepted tokens (speculative decoding)

The parser keeps one Earley set per byte consumed, on a stack: advancing by a byte pushes a set,
`pop` undoes it for free. The mask is a depth-first walk over the trie (`trie.py`): each trie node
pushes the set for its byte, a rejected byte skips the node's whole subtree, and every token that
ends at an accepted node is allowed. Because parsing is over bytes, a token that spans a lexical
boundary is just a longer walk.

Earley details: items are (alternative, dot, origin, count); prediction of a nullable rule also
moves the dot past it (Aycock & Horspool), so completion never needs to revisit the current set.

Counted repetition: before a `Repeat(rule, min, max)` symbol an item's `count` says how many
`rule`s it has read. While count < max it waits for (and predicts) one more; once count >= min
(or the rule is nullable, so empty ones can make up the rest) it may also move past, count back to
0. Completing `rule` moves a waiting item's dot past a plain reference, but only adds one to the
count of a counted one. One item per count, so a set holds no more items for {0,100000} than for
{0,10}.

The Rust side adds optimizations with identical results: hash-consed Earley sets with cached
transitions and masks (closures memoized by their seeds), and a "slicer" (tokens made only of
characters a state loops on are allowed wholesale; the rest are walked from where they leave that
class), the same inside the walk below any trie node ("jumps": a key's first character, then the
rest of an additional key, read as one range of tokens), and wide trie nodes that jump to the
children a state can scan; see rust/grammar/mod.rs.
Its sets are a cache with a bound: past it the Rust matcher rebuilds them from the bytes accepted
so far (the twin keeps no cache, so it has nothing to rebuild).

Limits: MAX_EARLEY_ITEMS per set (GrammarLimitError: a 400 for the request when the prompt's
first set passes it; half way, the engine ends that row alone, as a dead end).
"""

from __future__ import annotations

import os

import numpy as np

from pyengine.structured.grammar import Grammar, GrammarError, GrammarLimitError, SymbolKind
from pyengine.structured.trie import TokenTrie

MAX_EARLEY_ITEMS = 100_000

Item = tuple[int, int, int, int]  # (alternative index, dot, origin set index, count before a Repeat)


class CompiledGrammar:
    """The grammar as ints: alternatives, each rule's alternatives, nullable rules, byte tables."""

    def __init__(self, grammar: Grammar) -> None:
        start, alternatives, byte_sets, repeats, names = grammar.to_flat()
        self.start = start
        self.repeats = repeats  # (rule, min, max) per counted repetition
        self.names = names
        self.lhs = [lhs for lhs, _ in alternatives]
        self.rhs = [symbols for _, symbols in alternatives]  # (SymbolKind value, index) pairs
        self.rule_alts: list[list[int]] = [[] for _ in names]
        for a, lhs in enumerate(self.lhs):
            self.rule_alts[lhs].append(a)
        self.accepts: list[bytes] = []  # byte set -> 256 flags (1 = byte in the set)
        for ranges in byte_sets:
            flags = bytearray(256)
            for lo, hi in ranges:
                flags[lo:hi + 1] = b"\x01" * (hi - lo + 1)
            self.accepts.append(bytes(flags))
        self.nullable = [False] * len(names)
        changed = True
        while changed:  # fixed point: a rule is nullable if some alternative is all nullable symbols
            changed = False
            for a, rhs in enumerate(self.rhs):
                if not self.nullable[self.lhs[a]] and all(self.is_nullable(kind, s) for kind, s in rhs):
                    self.nullable[self.lhs[a]] = changed = True

    def is_nullable(self, kind: int, index: int) -> bool:
        """Whether the symbol can match the empty string (as far as `nullable` knows yet)."""
        if kind == SymbolKind.RULE:
            return self.nullable[index]
        if kind == SymbolKind.REPEAT:
            rule, low, _ = self.repeats[index]
            return low == 0 or self.nullable[rule]
        return False


class EarleySet:
    """The items at one position, indexed for the next steps."""

    __slots__ = ("items", "seen", "waiting", "scans", "accepting")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.seen: set[Item] = set()
        self.waiting: dict[int, list[Item]] = {}  # rule -> items whose dot is before it
        self.scans: list[Item] = []  # items whose dot is before a byte set
        self.accepting = False


class EarleyParser:
    """Earley recognition over bytes with a stack of sets: `push_byte` advances, `pop` undoes."""

    def __init__(self, grammar: Grammar | CompiledGrammar) -> None:
        self.g = grammar if isinstance(grammar, CompiledGrammar) else CompiledGrammar(grammar)
        self.sets: list[EarleySet] = []
        self.sets.append(self._close([(a, 0, 0, 0) for a in self.g.rule_alts[self.g.start]]))

    def push_byte(self, byte: int) -> bool:
        """Consume one byte; False (and no change) if the grammar cannot continue with it."""
        g = self.g
        seeds = [(a, dot + 1, origin, 0) for a, dot, origin, _ in self.sets[-1].scans
                 if g.accepts[g.rhs[a][dot][1]][byte]]
        if not seeds:
            return False
        self.sets.append(self._close(seeds))
        return True

    def pop(self) -> None:
        """Undo the last `push_byte`."""
        self.sets.pop()

    def is_accepting(self) -> bool:
        return self.sets[-1].accepting

    def _close(self, seeds: list[Item]) -> EarleySet:
        """The Earley set at position len(self.sets): seeds plus everything predicted and completed."""
        g, k, s = self.g, len(self.sets), EarleySet()
        todo: list[Item] = []

        def add(item: Item) -> None:
            if item not in s.seen:
                s.seen.add(item)
                s.items.append(item)
                todo.append(item)

        for item in seeds:
            add(item)
        while todo:
            if len(s.items) > MAX_EARLEY_ITEMS:
                raise GrammarLimitError(f"more than {MAX_EARLEY_ITEMS} Earley items at one position")
            alt, dot, origin, count = item = todo.pop()
            rhs = g.rhs[alt]
            if dot < len(rhs):
                kind, sym = rhs[dot]
                if kind == SymbolKind.BYTES:
                    s.scans.append(item)
                    continue
                if kind == SymbolKind.RULE:
                    rule, wants_more, may_skip = sym, True, g.nullable[sym]
                else:  # a counted repetition: room for one more rule? read enough to move on?
                    rule, low, high = g.repeats[sym]
                    wants_more, may_skip = count < high, count >= low or g.nullable[rule]
                if wants_more:
                    s.waiting.setdefault(rule, []).append(item)
                    for a in g.rule_alts[rule]:  # predict
                        add((a, 0, k, 0))
                if may_skip:
                    add((alt, dot + 1, origin, 0))
            elif origin < k:  # complete (an empty completion, origin == k, was handled by `nullable`)
                lhs = g.lhs[alt]
                for p_alt, p_dot, p_origin, p_count in self.sets[origin].waiting.get(lhs, ()):
                    if g.rhs[p_alt][p_dot][0] == SymbolKind.REPEAT:
                        add((p_alt, p_dot, p_origin, p_count + 1))  # one more read; the dot stays
                    else:
                        add((p_alt, p_dot + 1, p_origin, 0))
            if dot == len(rhs) and origin == 0 and g.lhs[alt] == g.start:
                s.accepting = True
        return s


def matches(grammar: Grammar, data: bytes) -> bool:
    """Whether the whole of `data` is in `grammar`'s language (the slow Earley reference, for tests and docs)."""
    parser = EarleyParser(grammar)
    return all(parser.push_byte(byte) for byte in data) and parser.is_accepting()


class GrammarMatcher:
    """Which tokens may come next under a grammar, and the state advanced by the chosen ones.

    EOS ids are allowed only where the grammar accepts; accepting one terminates the matcher (then
    only EOS stays allowed). `accept_bytes` counts as one step for `rollback`, like a token.
    """

    def __init__(self, grammar: Grammar, trie: TokenTrie, eos_token_ids: list[int] | tuple[int, ...] = ()) -> None:
        self.trie = trie
        self.vocab_size = trie.vocab_size
        self.eos_token_ids = sorted(set(int(t) for t in eos_token_ids))
        for t in self.eos_token_ids:
            if not 0 <= t < self.vocab_size:
                raise GrammarError(f"EOS token id {t} is outside the vocabulary of {self.vocab_size} tokens")
        self._eos = set(self.eos_token_ids)
        self.parser = EarleyParser(grammar)
        self._steps: list[tuple[int, bool]] = []  # per accepted token: (parser depth before, terminated before)
        self._terminated = False

    # -- queries ----------------------------------------------------------------------------------
    def is_accepting(self) -> bool:
        return self.parser.is_accepting()

    def is_terminated(self) -> bool:
        return self._terminated

    def allowed_token_ids(self) -> list[int]:
        """The ids allowed next, ascending."""
        if self._terminated:
            return list(self.eos_token_ids)
        allowed = [t for t in self._walk() if t not in self._eos]
        if self.parser.is_accepting():
            allowed += self.eos_token_ids
        return sorted(allowed)

    def fill_bitmask(self, out: np.ndarray) -> None:
        """Write the allowed ids into `out` ([ceil(V/32)] int32): bit i % 32 of word i // 32."""
        words = (self.vocab_size + 31) // 32
        if not isinstance(out, np.ndarray) or out.dtype != np.int32 or out.shape != (words,):
            raise ValueError(f"bitmask must be an int32 array of shape ({words},), got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        ids = np.asarray(self.allowed_token_ids(), dtype=np.int64)  # [n_allowed]
        flat = np.zeros(words * 32, dtype=bool)  # [ceil(V/32) * 32]
        flat[ids] = True
        out[:] = np.packbits(flat, bitorder="little").view(np.int32)  # [ceil(V/32)]

    def _walk(self) -> list[int]:
        """Depth-first over the trie, one Earley set pushed per byte, pruned at the first rejected byte."""
        trie, parser = self.trie, self.parser
        base = len(parser.sets)
        found: list[int] = []
        i, n = 0, len(trie.byte)
        while i < n:
            while len(parser.sets) - base >= trie.depth[i]:  # back up to this node's parent
                parser.pop()
            if parser.push_byte(trie.byte[i]):
                found.extend(trie.tokens[i])
                i += 1
            else:
                i = trie.end[i]
        del parser.sets[base:]
        return found

    # -- updates ----------------------------------------------------------------------------------
    def accept_token(self, token_id: int) -> bool:
        """Advance by one token; False (state unchanged) if it is not allowed here."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is out of range for a vocabulary of {self.vocab_size} tokens")
        if self._terminated:
            return False
        if token_id in self._eos:
            if not self.parser.is_accepting():
                return False
            self._steps.append((len(self.parser.sets), False))
            self._terminated = True
            return True
        data = self.trie.token_bytes[token_id]
        return data is not None and self.accept_bytes(data)

    def accept_bytes(self, data: bytes) -> bool:
        """Advance by raw bytes (one rollback step); False (state unchanged) if they do not fit."""
        if self._terminated:
            return False
        depth = len(self.parser.sets)
        for byte in data:
            if not self.parser.push_byte(byte):
                del self.parser.sets[depth:]
                return False
        self._steps.append((depth, False))
        return True

    def rollback(self, n_tokens: int) -> None:
        """Undo the last `n_tokens` accepted tokens (EOS included)."""
        if not 0 <= n_tokens <= len(self._steps):
            raise ValueError(f"cannot roll back {n_tokens} tokens: {len(self._steps)} accepted")
        if n_tokens == 0:
            return
        depth, terminated = self._steps[-n_tokens]
        del self._steps[-n_tokens:]
        del self.parser.sets[depth:]
        self._terminated = terminated

    def reset(self) -> None:
        """Back to the start of the grammar."""
        self.rollback(len(self._steps))

    @property
    def num_accepted(self) -> int:
        """Tokens accepted so far (what `rollback` can undo)."""
        return len(self._steps)


# -- twin selection ---------------------------------------------------------------------------------
# PYENGINE_KERNELS=python picks the twin above, "native" the Rust kernels (rust/grammar/), unset:
# native when the extension has them. `select(name)` returns (TokenTrie, GrammarMatcher) classes.

try:
    from pyengine import _native
except ImportError:  # no compiled extension: the twin still works
    _native = None  # type: ignore[assignment]

PYTHON_KERNELS = (TokenTrie, GrammarMatcher)
NATIVE_KERNELS = None
if _native is not None and hasattr(_native, "GrammarMatcher"):

    class NativeGrammarMatcher(_native.GrammarMatcher):
        """The Rust matcher, built from a `Grammar` (read into the numbers `to_flat` gives) and a native TokenTrie."""

        __slots__ = ()

        def __new__(cls, grammar: Grammar, trie, eos_token_ids=()):
            # The grammar's Rust tables are built with its first matcher and kept with it, so a
            # grammar served again (compile_grammar's cache) costs a matcher no copying.
            compiled = grammar.__dict__.get("_native")
            if compiled is None:
                compiled = grammar.__dict__["_native"] = _native.CompiledGrammar(grammar)
            return super().__new__(cls, compiled, trie, [int(t) for t in eos_token_ids])

    NATIVE_KERNELS = (_native.TokenTrie, NativeGrammarMatcher)

KERNELS = os.environ.get("PYENGINE_KERNELS", "native" if NATIVE_KERNELS is not None else "python")


def select(name: str | None = None) -> tuple[type, type]:
    """(TokenTrie, GrammarMatcher) of the kernels named "native" or "python"; None: PYENGINE_KERNELS."""
    name = name or KERNELS
    if name == "python":
        return PYTHON_KERNELS
    if name == "native" and NATIVE_KERNELS is not None:
        return NATIVE_KERNELS
    raise ValueError(f"kernels must be 'native' or 'python' (native needs the compiled extension), got {name!r}")
