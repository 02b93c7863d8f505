"""Paged attention: the batched decode path equals the per-sequence path and a dense reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pyengine.model.layers import AttentionInputs, batched_decode_attention, paged_attention, softmax

BLOCK = 4


def _setup(lengths, seed=0, num_heads=4, num_kv_heads=2, head_dim=8, num_blocks=32):
    rng = np.random.default_rng(seed)
    key_cache = rng.standard_normal((num_blocks, BLOCK, num_kv_heads, head_dim)).astype(np.float32)
    value_cache = rng.standard_normal((num_blocks, BLOCK, num_kv_heads, head_dim)).astype(np.float32)
    free = list(rng.permutation(num_blocks))
    tables = [[int(free.pop()) for _ in range(-(-n // BLOCK))] for n in lengths]
    q = rng.standard_normal((len(lengths), num_heads, head_dim)).astype(np.float32)
    width = max(len(t) for t in tables)
    padded = np.zeros((len(lengths), width), dtype=np.int64)
    for row, t in enumerate(tables):
        padded[row, :len(t)] = t
    attn = AttentionInputs(
        positions=np.array([n - 1 for n in lengths]), slot_mapping=np.zeros(len(lengths), np.int64),
        block_tables=tuple(np.array(t) for t in tables), query_start_loc=tuple(range(len(lengths) + 1)),
        context_lens=tuple(lengths), decode_tables=padded, decode_lens=np.array(lengths))
    return q, key_cache, value_cache, tables, attn


def _dense(q, key_cache, value_cache, tables, lengths, window=None):
    out = []
    group = q.shape[1] // key_cache.shape[2]
    for b, (table, n) in enumerate(zip(tables, lengths)):
        keys = key_cache[table].reshape(-1, *key_cache.shape[2:])[:n]  # [S, Hkv, Dh]
        values = value_cache[table].reshape(-1, *value_cache.shape[2:])[:n]
        keys, values = np.repeat(keys, group, axis=1), np.repeat(values, group, axis=1)  # [S, H, Dh]
        scores = np.einsum("hd,shd->hs", q[b], keys) / np.sqrt(q.shape[-1])
        if window is not None:
            scores[:, : max(0, n - window)] = -np.inf
        out.append(np.einsum("hs,shd->hd", softmax(scores), values))
    return np.stack(out)


@pytest.mark.parametrize("window", [None, 3, 6])
def test_batched_decode_equals_per_sequence_and_dense(window):
    lengths = [5, 1, 13, 8]
    q, kc, vc, tables, attn = _setup(lengths)
    scale = q.shape[-1] ** -0.5
    batched = batched_decode_attention(q, kc, vc, attn, scale, window)
    looped = paged_attention(q, kc, vc, dataclasses.replace(attn, decode_tables=None), scale, window)
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    np.testing.assert_allclose(batched, _dense(q, kc, vc, tables, lengths, window), atol=1e-5)
