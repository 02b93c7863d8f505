"""Paged KV cache: fixed-size blocks of keys/values, and a free-list allocator over them.

A sequence's keys are not stored contiguously: they live in blocks of `block_size` tokens
scattered through one big preallocated array per layer, and the sequence's *block table*
(a list of block ids) says which blocks, in order. Token at position p of a sequence is in
block `table[p // Bs]` at offset `p % Bs`, i.e. flat slot `table[p // Bs] * Bs + p % Bs`.

    key_caches[l]: [P, Bs, Hkv, Dh]        block table of seq A: [3, 0, 5]
                                            positions 0..15 -> block 3, 16..31 -> block 0, ...

Blocks are allocated when a sequence grows past its last block and all go back to the free
list when it finishes; nothing is ever copied or compacted. Reference: the vLLM paper
("Efficient Memory Management for Large Language Model Serving with PagedAttention").
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import Backend


class NoFreeBlocksError(RuntimeError):
    """The allocator has fewer free blocks than were asked for."""


class BlockAllocator:
    """A free list of block ids 0..num_blocks-1."""

    def __init__(self, num_blocks: int):
        if num_blocks <= 0:
            raise ValueError(f"num_blocks must be positive, got {num_blocks}")
        self.num_blocks = num_blocks
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))  # pop() hands out 0 first

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= len(self._free)

    def allocate(self, num_blocks: int) -> list[int]:
        if not self.can_allocate(num_blocks):
            raise NoFreeBlocksError(f"asked for {num_blocks} KV blocks, {len(self._free)} free")
        return [self._free.pop() for _ in range(num_blocks)]

    def free(self, block_ids: list[int]) -> None:
        self._free.extend(reversed(block_ids))


class KVCache:
    """The key and value arrays of every layer: `key_caches[l]`, `value_caches[l]`: [P, Bs, Hkv, Dh]."""

    def __init__(self, backend: Backend, num_layers: int, num_blocks: int, block_size: int,
                 num_kv_heads: int, head_dim: int, dtype: Any = None):
        xp = backend.xp
        dtype = dtype or xp.float32
        shape = (num_blocks, block_size, num_kv_heads, head_dim)
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.key_caches = [xp.zeros(shape, dtype=dtype) for _ in range(num_layers)]
        self.value_caches = [xp.zeros(shape, dtype=dtype) for _ in range(num_layers)]
        self.allocator = BlockAllocator(num_blocks)

    @staticmethod
    def bytes_per_block(num_layers: int, block_size: int, num_kv_heads: int, head_dim: int,
                        itemsize: int = 4) -> int:
        """Memory one block takes across all layers, keys and values."""
        return 2 * num_layers * block_size * num_kv_heads * head_dim * itemsize

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)  # ceil division

    def slot(self, block_table: list[int], position: int) -> int:
        """Flat slot index of `position` in a sequence with `block_table`."""
        return block_table[position // self.block_size] * self.block_size + position % self.block_size
