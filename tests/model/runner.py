"""A single-sequence driver for model tests: prefill a prompt, then decode token by token.

It builds the AttentionInputs by hand over a small paged cache, the way the engine does for
one sequence, so model tests do not depend on the scheduler or the sampler.
"""

from __future__ import annotations

import numpy as np

from pyengine.cache import KVCache
from pyengine.model import AttentionInputs


class SingleSequence:
    def __init__(self, model, backend, num_blocks: int = 64, block_size: int = 4):
        c = model.config
        self.model, self.backend = model, backend
        self.kv = KVCache(backend, c.num_hidden_layers, num_blocks, block_size, c.num_key_value_heads, c.head_dim)
        self.table: list[int] = []
        self.length = 0

    def run(self, token_ids: list[int]):
        """Feed `token_ids` after what is cached; returns the logits of every fed token [T, V]."""
        start, n = self.length, len(token_ids)
        need = self.kv.blocks_needed(start + n) - len(self.table)
        if need > 0:
            self.table += self.kv.allocator.allocate(need)
        positions = list(range(start, start + n))
        dev = self.backend.to_device
        attn = AttentionInputs(
            positions=dev(np.array(positions, dtype=np.int64)),
            slot_mapping=dev(np.array([self.kv.slot(self.table, p) for p in positions], dtype=np.int64)),
            block_tables=(dev(np.array(self.table, dtype=np.int64)),),
            query_start_loc=(0, n),
            context_lens=(start + n,),
        )
        hidden = self.model.forward(dev(np.array(token_ids, dtype=np.int64)), attn, self.kv)
        self.length += n
        return self.model.compute_logits(hidden)
