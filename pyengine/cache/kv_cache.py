"""Paged KV cache: the preallocated key and value arrays of every layer.

A sequence's keys live in blocks of `Bs` tokens listed by its block table: position p is in block
`table[p // Bs]` at offset `p % Bs` (docs/02-kv-cache-and-batching.md). Which blocks are free, shared or
cached is block_manager.py's business. Reference: the vLLM paper (PagedAttention).
"""

from __future__ import annotations

from typing import Any

from pyengine.backend import Backend


class KVCache:
    """The key and value arrays of every layer: `key_caches[l]`, `value_caches[l]`: [P, Bs, Hkv, Dh]."""

    def __init__(self, backend: Backend, num_layers: int, num_blocks: int, block_size: int,
                 num_kv_heads: int, head_dim: int, dtype: Any = None):
        xp = backend.xp
        dtype = dtype or xp.float32
        shape = (num_blocks, block_size, num_kv_heads, head_dim)
        self.block_size, self.num_blocks = block_size, num_blocks
        self.key_caches = [xp.zeros(shape, dtype=dtype) for _ in range(num_layers)]
        self.value_caches = [xp.zeros(shape, dtype=dtype) for _ in range(num_layers)]

    @staticmethod
    def bytes_per_block(num_layers: int, block_size: int, num_kv_heads: int, head_dim: int, itemsize: int = 4) -> int:
        """Memory one block takes across all layers, keys and values."""
        return 2 * num_layers * block_size * num_kv_heads * head_dim * itemsize

    def copy_blocks(self, source_ids: list[int], target_ids: list[int]) -> None:
        """Copy the keys/values of blocks `source_ids` into `target_ids`, on the device."""
        for cache in self.key_caches + self.value_caches:
            cache[target_ids] = cache[source_ids]  # [k, Bs, Hkv, Dh]

    def slot(self, block_table: list[int], position: int) -> int:
        """Flat slot index of `position` in a sequence with `block_table`."""
        return block_table[position // self.block_size] * self.block_size + position % self.block_size
