"""The forward pass's fast path: what `layers.py` computes, arranged for a CPU's BLAS.

`layers.py` states the model as equations; this module holds the three places where the same
arithmetic runs in another arrangement because it is measurably faster, each with its
measurement. The attention twin (`PYENGINE_KERNELS` / `EngineConfig.attention`) picks between
`REFERENCE` (layers.py alone) and `FAST` (these) for every model; the parity tests in
tests/model/test_attention.py and tests/model/test_linear.py hold them to the same values.

1. Decode groups (`decode_groups`). A decode batch with one query per sequence runs attention as
   a few padded products instead of one small product per sequence: a layer of 32 short
   sequences costs one gather and two batched products instead of 32 of each. Lengths that differ
   widely go to separate groups: one padded product costs every sequence the longest one's work
   (one 2,000-token conversation among 31 short ones: 15.1 ms a layer as one product, 1.13 ms as
   groups, 13.3x; docs/02-kv-cache-and-batching.md).
2. Padded batched decode attention (`batched_decode_attention`, `padded_decode_attention`): the
   group's blocks gathered into one [b, S_max, Hkv, Dh] array, keys past a sequence's length
   masked with -inf, scores scaled, masked and softmaxed in place. A decode row outside a group
   (a lone sequence, or one among prefills) skips the reshapes and the mask a block of queries
   needs (`lone_decode_attention`).
3. The gated activation (`act_and_mul`): silu(gate) * up computed in one [N, F] buffer, because at
   prefill sizes the plain expression's four N x F temporaries cost more than its arithmetic.
4. The operand order of projections (`linear`): `weight @ x.T` for short batches (~1.35x at 32
   rows on weights from memory), `x @ weight.T` past SMALL_BATCH rows.

Dimension legend: as in layers.py; b the sequences of one decode group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np  # host: the padded block tables of decode groups

from pyengine.backend import array_module
from pyengine.model import layers
from pyengine.model.layers import AttentionInputs, ForwardOps, paged_attention, silu, soft_cap, softmax

# ------------------------------------------------------------------------------------------------
# 1. Decode groups
# ------------------------------------------------------------------------------------------------


GROUP_COST_BLOCKS = 128  # a decode group's fixed cost, in padded blocks (measured: ~0.2 ms a layer)


@dataclasses.dataclass(frozen=True)
class DecodeGroup:
    """Decoding sequences that share one padded attention product.

    rows:   device int64 [b]: their rows in the step's batch, or None for all rows in order
    tables: device int64 [b, width]: their block tables, padded with block 0 (masked out)
    lens:   device int64 [b]: their context lengths, for that mask
    """

    rows: Any
    tables: Any
    lens: Any


def decode_groups(block_tables: list[list[int]], context_lens: list[int],
                  to_device: Any) -> tuple[DecodeGroup, ...]:
    """Split a decode batch into groups that each run one padded attention product.

    One product for the whole batch costs B x (the longest table): with one 4,000-token
    conversation among 31 short ones, 32 times the work of the long one alone. With tables sorted
    longest first, a bucket ends where a table is at most half the bucket's longest, which bounds
    padding to 2x in at most log2(longest / shortest) + 1 buckets. But a group has a fixed cost
    too (its own dozen array calls and a gather of its queries: ~0.2 ms a layer, about what
    GROUP_COST_BLOCKS padded blocks cost), so a bucket joins the group before it when the padding
    that adds is cheaper. A batch of similar lengths stays one group, in batch order (rows None).
    """
    def blocks(row: int) -> int:
        return len(block_tables[row])

    buckets: list[list[int]] = []
    for row in sorted(range(len(block_tables)), key=lambda r: -blocks(r)):
        if buckets and 2 * blocks(row) > blocks(buckets[-1][0]):
            buckets[-1].append(row)
        else:
            buckets.append([row])
    grouped = [buckets[0]]
    for bucket in buckets[1:]:
        padding = (blocks(grouped[-1][0]) - blocks(bucket[0])) * len(bucket)  # blocks added by joining
        if padding < GROUP_COST_BLOCKS:
            grouped[-1].extend(bucket)
        else:
            grouped.append(bucket)
    if len(grouped) == 1:
        grouped = [list(range(len(block_tables)))]  # batch order: no gather of queries needed
    groups = []
    for rows in grouped:
        tables = np.zeros((len(rows), max(blocks(r) for r in rows)), dtype=np.int64)  # [b, width]
        for i, row in enumerate(rows):
            tables[i, :blocks(row)] = block_tables[row]
        groups.append(DecodeGroup(
            rows=None if len(grouped) == 1 else to_device(np.array(rows, dtype=np.int64)),
            tables=to_device(tables), lens=to_device(np.array([context_lens[r] for r in rows], dtype=np.int64))))
    return tuple(groups)


# ------------------------------------------------------------------------------------------------
# 2. Padded batched decode attention
# ------------------------------------------------------------------------------------------------


def attention(q: Any, key_cache: Any, value_cache: Any, attn: AttentionInputs, scale: float,
              sliding_window: int | None = None, softcap: float | None = None) -> Any:
    """[N, H, Dh] -> [N, H, Dh]: `layers.paged_attention`, with decode groups when the batch has them, and
    each decode row of a mixed batch (one query that sees every key) through `lone_decode_attention`."""
    if attn.decode_groups is not None:
        return batched_decode_attention(q, key_cache, value_cache, attn, scale, sliding_window, softcap)
    starts, lens = attn.query_start_loc, attn.context_lens
    lone = [starts[b + 1] - starts[b] == 1 and (sliding_window is None or lens[b] <= sliding_window)
            for b in range(attn.num_seqs)]
    if not any(lone):
        return paged_attention(q, key_cache, value_cache, attn, scale, sliding_window, softcap)
    out = array_module(q).empty_like(q)  # [N, H, Dh]
    for b, alone in enumerate(lone):  # each sequence on its own: its rows, blocks and key count
        start, end = starts[b], starts[b + 1]
        one = AttentionInputs(attn.positions[start:end], attn.slot_mapping[start:end], (attn.block_tables[b],),
                              (0, end - start), (lens[b],))
        out[start:end] = lone_decode_attention(q[start:end], key_cache, value_cache, one, scale, softcap) if alone \
            else paged_attention(q[start:end], key_cache, value_cache, one, scale, sliding_window, softcap)
    return out


def lone_decode_attention(q: Any, key_cache: Any, value_cache: Any, attn: AttentionInputs, scale: float,
                          softcap: float | None = None) -> Any:
    """[1, H, Dh] -> [1, H, Dh]: one sequence's one query, which sees every key: no mask, and [1, H, Dh]
    is already [Hkv, G, Dh], so none of `paged_attention`'s reshapes (~10% of it at 500 keys)."""
    xp = array_module(q)
    _, num_heads, head_dim = q.shape
    num_kv_heads = key_cache.shape[2]
    keys = key_cache[attn.block_tables[0]].reshape(-1, num_kv_heads, head_dim)[:attn.context_lens[0]]  # [S, Hkv, Dh]
    values = value_cache[attn.block_tables[0]].reshape(-1, num_kv_heads, head_dim)[:attn.context_lens[0]]
    q_g = q.reshape(num_kv_heads, num_heads // num_kv_heads, head_dim)  # [Hkv, G, Dh]
    scores = soft_cap((q_g @ keys.transpose(1, 2, 0)) * scale, softcap)  # [Hkv, G, S]
    probs = softmax(scores.astype(xp.float32, copy=False)).astype(q.dtype, copy=False)
    return (probs @ values.transpose(1, 0, 2)).reshape(1, num_heads, head_dim)  # [1, H, Dh]


def batched_decode_attention(q: Any, key_cache: Any, value_cache: Any, attn: AttentionInputs, scale: float,
                             sliding_window: int | None = None, softcap: float | None = None) -> Any:
    """[B, H, Dh] -> [B, H, Dh]: one query per sequence, each decode group in one batched product."""
    groups = attn.decode_groups
    if len(groups) == 1 and groups[0].rows is None:
        return padded_decode_attention(q, key_cache, value_cache, groups[0], scale, sliding_window, softcap)
    out = array_module(q).empty_like(q)  # [B, H, Dh]
    for group in groups:
        out[group.rows] = padded_decode_attention(q[group.rows], key_cache, value_cache, group, scale,
                                                  sliding_window, softcap)
    return out


def padded_decode_attention(q: Any, key_cache: Any, value_cache: Any, group: DecodeGroup, scale: float,
                            sliding_window: int | None = None, softcap: float | None = None) -> Any:
    """[b, H, Dh] -> [b, H, Dh]: the same math as `paged_attention` with T = 1, for one group.

    Every sequence's blocks are gathered into one padded [b, S_max, Hkv, Dh] array; keys past a
    sequence's length get a -inf bias. Scores are scaled, biased and softmaxed in place: at 32
    sequences these [b, Hkv, G, S] passes cost more in fresh arrays than in arithmetic.
    """
    xp = array_module(q)
    batch, num_heads, head_dim = q.shape
    _, block_size, num_kv_heads, _ = key_cache.shape
    group_size = num_heads // num_kv_heads
    max_keys = group.tables.shape[1] * block_size
    # take(axis=0) copies whole blocks; numpy's fancy indexing of the same is about 1.5x slower
    keys = xp.take(key_cache, group.tables, axis=0).reshape(batch, max_keys, num_kv_heads, head_dim)
    values = xp.take(value_cache, group.tables, axis=0).reshape(batch, max_keys, num_kv_heads, head_dim)
    q_g = q.reshape(batch, num_kv_heads, group_size, head_dim)  # [b, Hkv, G, Dh]
    scores = (q_g @ keys.transpose(0, 2, 3, 1)).astype(xp.float32, copy=False)  # [b, Hkv, G, S]
    scores *= scale
    if softcap is not None:  # Gemma 2: cap * tanh(scores / cap), in place
        scores /= softcap
        xp.tanh(scores, out=scores)
        scores *= softcap
    key_pos = xp.arange(max_keys)[None, :]  # [1, S]
    visible = key_pos < group.lens[:, None]  # [b, S]
    if sliding_window is not None:
        visible = visible & (key_pos >= group.lens[:, None] - sliding_window)
    scores += xp.where(visible, 0.0, -xp.inf).astype(xp.float32)[:, None, None, :]  # mask: [b, 1, 1, S]
    probs = softmax(scores, out=scores)  # over keys, in place
    context = probs.astype(q.dtype, copy=False) @ values.transpose(0, 2, 1, 3)  # [b, Hkv, G, Dh]
    return context.reshape(batch, num_heads, head_dim)


# ------------------------------------------------------------------------------------------------
# 3. The gated activation
# ------------------------------------------------------------------------------------------------


def act_and_mul(gate_up: Any, act: Any) -> Any:
    """[N, 2F] -> [N, F]: `layers.act_and_mul`, for silu in one [N, F] buffer with the same arithmetic."""
    if act is not silu:
        return layers.act_and_mul(gate_up, act)
    xp = array_module(gate_up)
    f = gate_up.shape[-1] // 2
    gate, up = gate_up[:, :f], gate_up[:, f:]
    out = xp.negative(gate)  # [N, F]
    xp.exp(out, out=out)
    out += 1.0
    xp.divide(gate, out, out=out)  # silu(gate) = gate / (1 + exp(-gate))
    out *= up
    return out


# ------------------------------------------------------------------------------------------------
# 4. The operand order of projections
# ------------------------------------------------------------------------------------------------


SMALL_BATCH = 128  # rows up to which `linear` puts the weight on the left (see there)


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """[N, in] @ [out, in].T (+ [out]) -> [N, out]: a projection, weights as checkpoints store them.

    Which operand BLAS sees as "left" matters on a CPU. OpenBLAS repacks both operands into
    cache-sized panels and walks them in a fixed order, which suits a tall left matrix. A decode
    batch is short: 32 rows. Computed as `weight @ x.T` ([out, N], the weight on the left) and
    read back through a transposed view, the same product runs ~1.35x faster at 32 rows than as
    `x @ weight.T` on weights that come from memory (~1.5x on weights already in cache), beats
    weights stored [in, out] too, and is no slower for one row (SmolLM2-135M's shapes, two
    threads of an AMD EPYC, OpenBLAS's SkylakeX kernels; `benchmarks/test_forward.py` rechecks
    it on any machine). The result is then column-major, which the small arrays of a decode step
    do not mind; past SMALL_BATCH rows the two orders run alike, and a prefill takes the
    row-major form, so its long elementwise passes stay contiguous.
    """
    if x.shape[0] <= SMALL_BATCH:
        y = (weight @ x.T).T  # [N, out]: a view of the [out, N] product
    else:
        y = x @ weight.T  # [N, out]
    return y if bias is None else y + bias


FAST = ForwardOps(linear=linear, act_and_mul=act_and_mul, attention=attention, decode_groups=decode_groups)
