"""Shared transformer layers as equations: pure functions over `xp` arrays (numpy, cupy, the fake device).

The only state is the KV cache, written in place by `write_kv` (and only there). Where the same
arithmetic runs faster in another arrangement, that lives in fast_path.py with its measurements; a model
runs `REFERENCE` (here) or `fast_path.FAST` as the attention twin says (`ForwardOps`, at the end).

Dimension legend (used in every shape comment of the model package):
    N   packed tokens of this step, across all sequences
    B   sequences in the step        T  query tokens of one sequence in this step
    S   keys (cached + new) of one sequence
    D   hidden size    H  query heads    Hkv  key/value heads    G = H // Hkv    Dh  head dim
    F   MLP intermediate size          V  vocabulary size
    P   KV blocks in the cache         Bs block size (tokens per block)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from pyengine.backend import array_module


# -- Per-step attention metadata -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AttentionInputs:
    """Where each packed token sits, built by the model runner and passed down (no module-level context)."""

    positions: Any  # device int64 [N]: each token's position in its sequence
    slot_mapping: Any  # device int64 [N]: its flat cache slot (block_id * Bs + offset)
    block_tables: tuple[Any, ...]  # B device int64 arrays: the cache blocks of each sequence
    query_start_loc: tuple[int, ...]  # host ints [B + 1]: sequence b's tokens are rows [b]:[b + 1] of N
    context_lens: tuple[int, ...]  # host ints [B]: the keys each sequence attends to (cached + new)
    decode_groups: tuple[Any, ...] | None = None  # the fast path's grouping of a pure decode batch

    @property
    def num_seqs(self) -> int:
        return len(self.context_lens)


# -- Norms and activations -----------------------------------------------------------------------------------
def rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """[..., D] -> [..., D]: x / sqrt(mean(x^2) + eps) * weight, computed in float32."""
    xp = array_module(x)
    x32 = x.astype(xp.float32, copy=False)
    # einsum sums each row's squares in one pass, without an [..., D] temporary of squares
    variance = xp.einsum("...i,...i->...", x32, x32)[..., None] * (1.0 / x.shape[-1])  # [..., 1]
    normed = x32 * (1.0 / xp.sqrt(variance + eps))  # [..., D]: one pass over x, scaled per row
    return normed.astype(x.dtype, copy=False) * weight  # [..., D]


def silu(x: Any) -> Any:
    """x * sigmoid(x), elementwise."""
    xp = array_module(x)
    return x / (1.0 + xp.exp(-x))


def act_and_mul(gate_up: Any, act: Callable[[Any], Any]) -> Any:
    """[N, 2F] -> [N, F]: act(gate) * up, the gated MLP's activation."""
    f = gate_up.shape[-1] // 2
    return act(gate_up[:, :f]) * gate_up[:, f:]  # [N, F]


def gelu_new(x: Any) -> Any:
    """GPT-2's tanh approximation of GELU, elementwise."""
    xp = array_module(x)
    return 0.5 * x * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


ACTIVATIONS = {"silu": silu, "gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new}


def soft_cap(x: Any, cap: float | None) -> Any:
    """cap * tanh(x / cap), elementwise: x squashed smoothly into (-cap, cap) (Gemma 2's scores and logits)."""
    return x if cap is None else array_module(x).tanh(x / cap) * cap


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """[N, in] @ [out, in].T (+ [out]) -> [N, out]: a projection, weights as checkpoints store them."""
    y = x @ weight.T  # [N, out]
    return y if bias is None else y + bias


# -- Rotary position embedding -------------------------------------------------------------------------------
def apply_rope(x: Any, cos: Any, sin: Any) -> Any:
    """[N, heads, Dh] -> [N, heads, Dh]: rotate pairs (i, i + Dh/2) by each token's angles, cos and sin
    [N, Dh/2] (Hugging Face's "rotate half" layout). With R < Dh/2 angles (Phi-3's partial rotation)
    the first 2R features rotate as pairs (i, i + R) and the rest pass through."""
    xp = array_module(x)
    half = cos.shape[-1]  # R = Dh/2 unless partial
    x1, x2 = x[..., :half], x[..., half:2 * half]  # [N, heads, R] each
    c, s = cos[:, None, :], sin[:, None, :]  # [N, 1, R]
    out = xp.empty_like(x)  # [N, heads, Dh]: both halves written in place (no concatenate pass)
    first, second = out[..., :half], out[..., half:2 * half]
    out[..., 2 * half:] = x[..., 2 * half:]  # nothing when R = Dh/2
    xp.multiply(x1, c, out=first)
    first -= x2 * s  # x1 cos - x2 sin
    xp.multiply(x2, c, out=second)
    second += x1 * s  # x2 cos + x1 sin
    return out


# -- Attention over the paged KV cache -----------------------------------------------------------------------
def write_kv(key_cache: Any, value_cache: Any, k: Any, v: Any, slot_mapping: Any) -> None:
    """Store this step's keys/values [N, Hkv, Dh] at their slots of the [P, Bs, Hkv, Dh] cache, in place
    (the cache is preallocated: a copy per step would cost its whole size)."""
    num_blocks, block_size, num_kv_heads, head_dim = key_cache.shape
    flat_shape = (num_blocks * block_size, num_kv_heads, head_dim)
    key_cache.reshape(flat_shape)[slot_mapping] = k  # views of the cache: writes land in it
    value_cache.reshape(flat_shape)[slot_mapping] = v


def paged_attention(q: Any, key_cache: Any, value_cache: Any, attn: AttentionInputs, scale: float,
                    sliding_window: int | None = None, softcap: float | None = None) -> Any:
    """[N, H, Dh] queries -> [N, H, Dh] outputs, each sequence reading its keys through its blocks.

    For sequence b with T query tokens and S keys: gather its blocks, score q·k * scale (soft-capped
    when `softcap` is given: Gemma 2), mask keys in the future (and, with a sliding window W, keys at
    distance >= W: token i sees j when i - W < j <= i), softmax over keys, weight the values.
    Query head h reads KV head h // G.
    """
    xp = array_module(q)
    num_tokens, num_heads, head_dim = q.shape
    num_kv_heads = key_cache.shape[2]
    group = num_heads // num_kv_heads
    out = xp.empty_like(q)  # [N, H, Dh]
    for b in range(attn.num_seqs):
        start, end = attn.query_start_loc[b], attn.query_start_loc[b + 1]
        num_keys = attn.context_lens[b]
        num_queries = end - start
        blocks = attn.block_tables[b]
        keys = key_cache[blocks].reshape(-1, num_kv_heads, head_dim)[:num_keys]  # [S, Hkv, Dh]
        values = value_cache[blocks].reshape(-1, num_kv_heads, head_dim)[:num_keys]  # [S, Hkv, Dh]
        q_b = q[start:end].reshape(num_queries, num_kv_heads, group, head_dim)  # [T, Hkv, G, Dh]
        q_b = q_b.transpose(1, 0, 2, 3).reshape(num_kv_heads, num_queries * group, head_dim)
        scores = soft_cap((q_b @ keys.transpose(1, 2, 0)) * scale, softcap)  # [Hkv, T*G, S]
        scores = scores.reshape(num_kv_heads, num_queries, group, num_keys)  # [Hkv, T, G, S]
        if num_queries > 1 or (sliding_window is not None and num_keys > sliding_window):  # some keys hidden
            query_pos = attn.positions[start:end][:, None]  # [T, 1]
            key_pos = xp.arange(num_keys)[None, :]  # [1, S]
            visible = key_pos <= query_pos  # [T, S]
            if sliding_window is not None:
                visible = visible & (key_pos > query_pos - sliding_window)
            scores = xp.where(visible[None, :, None, :], scores, -xp.inf)  # [Hkv, T, G, S]
        probs = softmax(scores.astype(xp.float32, copy=False)).astype(q.dtype, copy=False)
        probs = probs.reshape(num_kv_heads, num_queries * group, num_keys)  # [Hkv, T*G, S]
        context = probs @ values.transpose(1, 0, 2)  # [Hkv, T*G, Dh]
        context = context.reshape(num_kv_heads, num_queries, group, head_dim)
        out[start:end] = context.transpose(1, 0, 2, 3).reshape(num_queries, num_heads, head_dim)
    return out


def softmax(x: Any, out: Any = None) -> Any:
    """[..., S] -> [..., S]: exp(x - max) / sum, along the last axis (in `out` when given, e.g. x)."""
    xp = array_module(x)
    shifted = xp.subtract(x, x.max(axis=-1, keepdims=True), out=out)  # [..., S]
    xp.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


# -- The functions a model may take from the fast path instead -----------------------------------------------
@dataclasses.dataclass(frozen=True)
class ForwardOps:
    """The projection, the gated activation and the attention a model runs (REFERENCE, or fast_path.FAST);
    `decode_groups`, when set, groups a pure decode batch for `attention` (the model runner calls it)."""

    linear: Callable[..., Any]
    act_and_mul: Callable[..., Any]
    attention: Callable[..., Any]
    decode_groups: Callable[..., Any] | None = None


REFERENCE = ForwardOps(linear=linear, act_and_mul=act_and_mul, attention=paged_attention)
