"""The model runner: a step's token chunks in, the model's inputs built, logits out.

`prepare` packs every chunk's tokens into one [N] array and writes the `AttentionInputs` (positions,
cache slots, block tables, per-chunk offsets; a pure decode batch's groups when the fast attention
twin runs). The engine runs its batches through it; single_sequence.py, one sequence's chunks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np  # host: index arrays before their copy to the device

from pyengine.cache import KVCache
from pyengine.model import AttentionInputs

Chunk = tuple[Sequence[int], int, list[int]]  # (new token ids, position of the first, block table)


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """One forward pass's inputs: the packed token ids (device int64 [N]) and where each sits."""

    input_ids: Any
    attn: AttentionInputs


class ModelRunner:
    """Builds a step's model inputs over a paged KV cache and runs the model on them."""

    def __init__(self, model: Any, kv_cache: KVCache):
        self.model, self.kv_cache, self.backend = model, kv_cache, model.backend

    def prepare(self, chunks: Sequence[Chunk]) -> ModelInputs:
        """Pack each chunk's tokens and write their positions, cache slots and block tables."""
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        starts = [0]
        for new_ids, first, block_table in chunks:
            new_positions = range(first, first + len(new_ids))
            ids.extend(new_ids)
            positions.extend(new_positions)
            slots.extend(self.kv_cache.slot(block_table, p) for p in new_positions)
            starts.append(len(ids))
        to_device = self.backend.to_device
        attn = AttentionInputs(
            positions=to_device(np.array(positions, dtype=np.int64)),  # [N]
            slot_mapping=to_device(np.array(slots, dtype=np.int64)),  # [N]
            block_tables=tuple(to_device(np.array(table, dtype=np.int64)) for _, _, table in chunks),
            query_start_loc=tuple(starts),
            context_lens=tuple(first + len(new_ids) for new_ids, first, _ in chunks),
        )
        decode_groups = self.model.ops.decode_groups  # the fast attention twin's; None for the reference
        if decode_groups is not None and len(chunks) > 1 and len(ids) == len(chunks):  # a pure decode batch
            groups = decode_groups([table for _, _, table in chunks], attn.context_lens, to_device)
            attn = dataclasses.replace(attn, decode_groups=groups)
        return ModelInputs(to_device(np.array(ids, dtype=np.int64)), attn)  # ids: [N]

    def forward(self, inputs: ModelInputs) -> Any:
        """Run every layer on the packed batch, writing its keys and values to the cache. -> [N, D]"""
        return self.model.forward(inputs.input_ids, inputs.attn, self.kv_cache)

    def last_token_logits(self, hidden: Any, inputs: ModelInputs, chunk_indices: Sequence[int]) -> Any:
        """[N, D] -> [B, V]: the logits of the last token of each chunk in `chunk_indices`."""
        last_rows = [inputs.attn.query_start_loc[i + 1] - 1 for i in chunk_indices]
        return self.model.compute_logits(hidden[self.backend.to_device(np.array(last_rows, dtype=np.int64))])

    def chunk_logits(self, hidden: Any, inputs: ModelInputs, chunk_index: int, num_tokens: int) -> Any:
        """[N, D] -> [n, V]: the logits of the first `num_tokens` tokens of chunk `chunk_index`."""
        start = inputs.attn.query_start_loc[chunk_index]
        return self.model.compute_logits(hidden[start:start + num_tokens])
