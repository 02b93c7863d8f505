"""The KV cache: preallocated key/value blocks per layer and the allocator that hands them out."""

from pyengine.cache.kv_cache import BlockAllocator, KVCache, NoFreeBlocksError

__all__ = ["BlockAllocator", "KVCache", "NoFreeBlocksError"]
