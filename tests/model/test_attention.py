"""Paged attention: the fast path's batched decode equals the per-sequence equations and a dense reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pyengine.model.fast_path import GROUP_COST_BLOCKS, attention, batched_decode_attention, decode_groups
from pyengine.model.layers import AttentionInputs, paged_attention, softmax

BLOCK = 4


def _setup(lengths, seed=0, num_heads=4, num_kv_heads=2, head_dim=8, num_blocks=32):
    rng = np.random.default_rng(seed)
    key_cache = rng.standard_normal((num_blocks, BLOCK, num_kv_heads, head_dim)).astype(np.float32)
    value_cache = rng.standard_normal((num_blocks, BLOCK, num_kv_heads, head_dim)).astype(np.float32)
    free = list(rng.permutation(num_blocks))
    tables = [[int(free.pop()) for _ in range(-(-n // BLOCK))] for n in lengths]
    q = rng.standard_normal((len(lengths), num_heads, head_dim)).astype(np.float32)
    attn = AttentionInputs(
        positions=np.array([n - 1 for n in lengths]), slot_mapping=np.zeros(len(lengths), np.int64),
        block_tables=tuple(np.array(t) for t in tables), query_start_loc=tuple(range(len(lengths) + 1)),
        context_lens=tuple(lengths), decode_groups=decode_groups(tables, lengths, np.asarray))
    return q, key_cache, value_cache, tables, attn


def _dense(q, key_cache, value_cache, tables, lengths, window=None, softcap=None):
    out = []
    group = q.shape[1] // key_cache.shape[2]
    for b, (table, n) in enumerate(zip(tables, lengths)):
        keys = key_cache[table].reshape(-1, *key_cache.shape[2:])[:n]  # [S, Hkv, Dh]
        values = value_cache[table].reshape(-1, *value_cache.shape[2:])[:n]
        keys, values = np.repeat(keys, group, axis=1), np.repeat(values, group, axis=1)  # [S, H, Dh]
        scores = np.einsum("hd,shd->hs", q[b], keys) / np.sqrt(q.shape[-1])
        if softcap is not None:
            scores = softcap * np.tanh(scores / softcap)
        if window is not None:
            scores[:, : max(0, n - window)] = -np.inf
        out.append(np.einsum("hs,shd->hd", softmax(scores), values))
    return np.stack(out)


@pytest.mark.parametrize("lengths", [[5, 1, 13, 8], [13, 9, 16, 11]], ids=["three groups", "one group"])
@pytest.mark.parametrize("window", [None, 3, 6])
@pytest.mark.parametrize("softcap", [None, 0.5])
def test_batched_decode_equals_per_sequence_and_dense(window, lengths, softcap):
    q, kc, vc, tables, attn = _setup(lengths)
    scale = q.shape[-1] ** -0.5
    batched = batched_decode_attention(q, kc, vc, attn, scale, window, softcap)
    looped = paged_attention(q, kc, vc, dataclasses.replace(attn, decode_groups=None), scale, window, softcap)
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    np.testing.assert_allclose(batched, _dense(q, kc, vc, tables, lengths, window, softcap), atol=1e-5)
    if softcap is not None:  # the cap really bends these scores
        assert np.abs(batched - _dense(q, kc, vc, tables, lengths, window)).max() > 1e-2


@pytest.mark.parametrize("window", [None, 3, 12])
@pytest.mark.parametrize("softcap", [None, 0.5])
def test_a_mixed_batch_s_decode_rows_take_the_lone_query_path_with_the_same_result(window, softcap):
    """Prefills of 3 and 5 queries beside decode rows (one query each): the fast path's per-sequence
    dispatch equals the equations' loop (a window shorter than a row's keys keeps it on the masked path)."""
    rng = np.random.default_rng(1)
    queries, keys = [3, 1, 5, 1, 1], [3, 9, 14, 20, 2]  # per sequence: this step's queries, keys seen
    kc = rng.standard_normal((32, BLOCK, 2, 8)).astype(np.float32)
    vc = rng.standard_normal((32, BLOCK, 2, 8)).astype(np.float32)
    free = list(rng.permutation(32))
    tables = tuple(np.array([int(free.pop()) for _ in range(-(-n // BLOCK))]) for n in keys)
    positions = np.concatenate([np.arange(n - t, n) for t, n in zip(queries, keys)])
    attn = AttentionInputs(positions=positions, slot_mapping=np.zeros(len(positions), np.int64), block_tables=tables,
                           query_start_loc=tuple(np.cumsum([0, *queries]).tolist()), context_lens=tuple(keys))
    q = rng.standard_normal((len(positions), 4, 8)).astype(np.float32)
    scale = 8 ** -0.5
    np.testing.assert_allclose(attention(q, kc, vc, attn, scale, window, softcap),
                               paged_attention(q, kc, vc, attn, scale, window, softcap), atol=1e-5)


@pytest.mark.parametrize("blocks, one_product_over", [
    ([250] + [2, 3, 5, 8] * 8, 10),  # one long conversation among short ones: 1/10 of one product
    ([int(n) for n in np.random.default_rng(3).integers(1, 300, size=40)], 1.3),
])
def test_decode_groups_bound_padding_and_cover_every_row_once(blocks, one_product_over):
    tables = [list(range(100 * i, 100 * i + n)) for i, n in enumerate(blocks)]
    groups = decode_groups(tables, [4 * n for n in blocks], np.asarray)
    rows = np.concatenate([g.rows for g in groups])
    assert sorted(rows.tolist()) == list(range(len(blocks)))  # every sequence exactly once
    padded = sum(g.tables.size for g in groups)
    buckets = int(np.log2(max(blocks) / min(blocks))) + 1
    assert padded <= 2 * sum(blocks) + GROUP_COST_BLOCKS * buckets  # one product pays max x B
    assert padded * one_product_over <= max(blocks) * len(blocks)
    for g in groups:
        assert g.tables.shape[1] == max(blocks[r] for r in g.rows)
        assert g.lens.tolist() == [4 * blocks[r] for r in g.rows]
        for row, table in zip(g.rows, g.tables):
            assert table[:blocks[row]].tolist() == tables[row]


def test_decode_groups_keep_one_group_in_batch_order():
    [group] = decode_groups([[7, 8], [9], [1, 2, 3]], [6, 2, 9], np.asarray)  # too few blocks to split
    assert group.rows is None
    assert group.tables.tolist() == [[7, 8, 0], [9, 0, 0], [1, 2, 3]] and group.lens.tolist() == [6, 2, 9]
