"""The vocabulary as a byte trie, flattened in depth-first order; built once per tokenizer.

Node `i` (in preorder) is the byte string of its path from the root; `depth[i]` is its length,
`byte[i]` its last byte, `tokens[i]` the ids whose bytes end exactly there, and `end[i]` the first
node after its subtree. Walking the array in order visits every prefix once; a rejected prefix
skips its whole subtree with `i = end[i]`. For the 26-token vocabulary a..z plus "ab":

    i     0   1    2    3 ...
    path  a   ab   b    c ...
    depth 1   2    1    1
    end   2   2    3    4

Token ids with no bytes (None: special tokens, ids past the tokenizer) or empty bytes are never
in the trie: no grammar text can produce them. EOS is handled by the matcher, not the trie.
"""

from __future__ import annotations


class TokenTrie:
    """The byte trie of a vocabulary: `token_bytes[i]` is token i's bytes, or None (never matches)."""

    def __init__(self, token_bytes: list[bytes | None]) -> None:
        self.vocab_size = len(token_bytes)
        self.token_bytes = [bytes(b) if b else None for b in token_bytes]
        self.byte: list[int] = []
        self.depth: list[int] = []
        self.end: list[int] = []
        self.tokens: list[list[int]] = []
        entries = sorted((b, i) for i, b in enumerate(self.token_bytes) if b)
        open_nodes: list[int] = []  # the path to the last node, one node per depth
        previous = b""
        for data, token_id in entries:
            common = _common_prefix(previous, data)
            if common == len(data) == len(previous) and self.tokens:  # same bytes as the previous token
                self.tokens[-1].append(token_id)
                continue
            while len(open_nodes) > common:
                self.end[open_nodes.pop()] = len(self.byte)
            for depth in range(common + 1, len(data) + 1):
                open_nodes.append(len(self.byte))
                self.byte.append(data[depth - 1])
                self.depth.append(depth)
                self.end.append(-1)
                self.tokens.append([])
            self.tokens[-1].append(token_id)
            previous = data
        for node in open_nodes:
            self.end[node] = len(self.byte)

    def __len__(self) -> int:
        """Number of nodes (distinct non-empty prefixes of the vocabulary)."""
        return len(self.byte)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
