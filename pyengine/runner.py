"""The smallest driver of a model: one sequence, a paged cache, tokens in, logits out.

    seq = SingleSequence(model)
    logits = seq.run(prompt_ids)      # prefill: [T, V], one row per prompt token
    logits = seq.run([next_id])       # decode: [1, V], reading the cached keys/values

It builds `AttentionInputs` by hand the way the engine does for a batch of one, so the
forward-pass walkthrough, the model parity tests and the forward benchmark need neither the
scheduler nor the sampler.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host: index arrays before their copy to the device

from pyengine.cache import BlockManager, KVCache
from pyengine.model import AttentionInputs


class SingleSequence:
    """One growing sequence over its own small paged KV cache."""

    def __init__(self, model: Any, num_blocks: int = 64, block_size: int = 16):
        c = model.config
        self.model, self.backend = model, model.backend
        self.kv_cache = KVCache(self.backend, c.num_hidden_layers, num_blocks, block_size,
                                c.num_key_value_heads, c.head_dim, model.dtype)
        self.blocks = BlockManager(num_blocks, block_size, enable_prefix_caching=False)
        self.block_table: list[int] = []
        self.num_tokens = 0

    def run(self, token_ids: list[int]) -> Any:
        """Feed `token_ids` after the cached ones; returns their logits, [T, V] float32."""
        start, count = self.num_tokens, len(token_ids)
        missing = self.blocks.blocks_needed(start + count) - len(self.block_table)
        if missing > 0:
            self.block_table += self.blocks.allocate(missing)
        positions = list(range(start, start + count))
        to_device = self.backend.to_device
        attn = AttentionInputs(
            positions=to_device(np.array(positions, dtype=np.int64)),
            slot_mapping=to_device(np.array([self.kv_cache.slot(self.block_table, p) for p in positions],
                                            dtype=np.int64)),
            block_tables=(to_device(np.array(self.block_table, dtype=np.int64)),),
            query_start_loc=(0, count),
            context_lens=(start + count,),
        )
        hidden = self.model.forward(to_device(np.array(token_ids, dtype=np.int64)), attn, self.kv_cache)
        self.num_tokens += count
        return self.model.compute_logits(hidden)  # [T, V]
