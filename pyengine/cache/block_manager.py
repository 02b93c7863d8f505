"""Block bookkeeping: reference counts, prefix-cache hashes and LRU reuse (vLLM v1's `BlockPool`).

A block is in use (reference count > 0) or free. A free full block keeps its content hash, so a later
sequence with the same prefix takes it back instead of recomputing it; free blocks are reused oldest
freed first. A full block's hash chains its parent's, `hash(parent_hash, its token ids, salt)`, so
blocks match only when everything before them did (docs/02-kv-cache-and-batching.md draws it).
"""

from __future__ import annotations

import collections
import hashlib
import pickle
from typing import Sequence

BlockHash = bytes


def hash_block(parent: BlockHash | None, token_ids: Sequence[int], salt: str | None) -> BlockHash:
    """Content hash of one full block, chained on its parent block's hash."""
    extra = salt if parent is None else None  # the salt seeds the chain at its first block
    return hashlib.sha256(pickle.dumps((parent, tuple(token_ids), extra))).digest()


class BlockManager:
    """Hands out KV blocks with reference counts and keeps freed full blocks as a prefix cache."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(f"num_blocks and block_size must be positive, got {num_blocks}, {block_size}")
        self.num_blocks, self.block_size, self.enable_prefix_caching = num_blocks, block_size, enable_prefix_caching
        self.ref_counts = [0] * num_blocks
        self.block_hash: list[BlockHash | None] = [None] * num_blocks
        self.cached: dict[BlockHash, int] = {}  # hash -> block id holding that content
        # Free blocks in reuse order (oldest freed first); an OrderedDict removes a prefix hit's block in O(1)
        self.free_queue: collections.OrderedDict[int, None] = collections.OrderedDict.fromkeys(range(num_blocks))

    # -- queries ---------------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= len(self.free_queue)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def block_hashes(self, token_ids: Sequence[int], salt: str | None) -> list[BlockHash]:
        """The hash chain of every full block of `token_ids`."""
        hashes: list[BlockHash] = []
        parent = None
        for start in range(0, len(token_ids) - self.block_size + 1, self.block_size):
            parent = hash_block(parent, token_ids[start:start + self.block_size], salt)
            hashes.append(parent)
        return hashes

    # -- prefix cache ----------------------------------------------------------------------------
    def lookup_prefix(self, hashes: Sequence[BlockHash], max_blocks: int) -> list[int]:
        """Blocks already holding the first blocks of this chain (at most `max_blocks`)."""
        if not self.enable_prefix_caching:
            return []
        found = []
        for block_hash in hashes[:max_blocks]:
            block_id = self.cached.get(block_hash)
            if block_id is None:
                break
            found.append(block_id)
        return found

    def take(self, block_ids: Sequence[int]) -> None:
        """Add a reference to each block (a prefix hit, or a fork sharing its parent's blocks)."""
        for block_id in block_ids:
            if self.ref_counts[block_id] == 0:
                del self.free_queue[block_id]
            self.ref_counts[block_id] += 1

    def register(self, block_id: int, block_hash: BlockHash) -> None:
        """A block just became full: remember its content so later prefixes can reuse it."""
        if not self.enable_prefix_caching or block_hash in self.cached:
            return
        self._forget(block_id)  # a block holds one content at a time
        self.block_hash[block_id] = block_hash
        self.cached[block_hash] = block_id

    # -- allocation ------------------------------------------------------------------------------
    def allocate(self, num_blocks: int) -> list[int]:
        """Fresh blocks (reference count 1), evicting the oldest cached content they held."""
        if not self.can_allocate(num_blocks):
            raise RuntimeError(f"asked for {num_blocks} KV blocks, {len(self.free_queue)} free")
        blocks = []
        for _ in range(num_blocks):
            block_id, _ = self.free_queue.popitem(last=False)
            self._forget(block_id)
            self.ref_counts[block_id] = 1
            blocks.append(block_id)
        return blocks

    def free(self, block_ids: Sequence[int]) -> None:
        """Drop one reference to each block; blocks nobody reads join the free queue, last block first
        (so evicted first: the start of a prompt is what other requests most likely share)."""
        for block_id in reversed(block_ids):
            if self.ref_counts[block_id] <= 0:
                raise RuntimeError(f"block {block_id} freed more often than taken")
            self.ref_counts[block_id] -= 1
            if self.ref_counts[block_id] == 0:
                self.free_queue[block_id] = None

    def _forget(self, block_id: int) -> None:
        block_hash = self.block_hash[block_id]
        if block_hash is not None and self.cached.get(block_hash) == block_id:
            del self.cached[block_hash]
        self.block_hash[block_id] = None
