"""The smallest driver of a model: one sequence, no scheduler, no sampler, tokens in, logits out.

It runs its chunks through the engine's ModelRunner, for the forward-pass walkthrough
(docs/01-forward-pass.md), the parity tests and the forward benchmark.
"""

from __future__ import annotations

from typing import Any

from pyengine.cache import BlockManager, KVCache
from pyengine.model_runner import ModelRunner


class SingleSequence:
    """One growing sequence over its own small paged KV cache: tokens in, logits out.

        seq = SingleSequence(model)
        logits = seq.run(prompt_ids)      # prefill: [T, V], one row per prompt token
        logits = seq.run([next_id])       # decode: [1, V], reading the cached keys/values
    """

    def __init__(self, model: Any, num_blocks: int = 64, block_size: int = 16):
        c = model.config
        kv_cache = KVCache(model.backend, c.num_hidden_layers, num_blocks, block_size,
                           c.num_key_value_heads, c.head_dim, model.dtype)
        self.runner = ModelRunner(model, kv_cache)
        self.blocks = BlockManager(num_blocks, block_size, enable_prefix_caching=False)
        self.block_table: list[int] = []
        self.num_tokens = 0

    @property
    def kv_cache(self) -> KVCache:
        return self.runner.kv_cache

    def run(self, token_ids: list[int]) -> Any:
        """Feed `token_ids` after the cached ones; returns their logits, [T, V] float32."""
        missing = self.blocks.blocks_needed(self.num_tokens + len(token_ids)) - len(self.block_table)
        if missing > 0:
            self.block_table += self.blocks.allocate(missing)
        hidden = self.runner.forward(self.runner.prepare([(token_ids, self.num_tokens, self.block_table)]))
        self.num_tokens += len(token_ids)
        return self.runner.model.compute_logits(hidden)  # [T, V]

