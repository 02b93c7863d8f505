"""The KV cache: preallocated key/value blocks per layer, and the bookkeeping of who uses which."""

from pyengine.cache.block_manager import BlockManager, hash_block
from pyengine.cache.kv_cache import KVCache

__all__ = ["BlockManager", "KVCache", "hash_block"]
