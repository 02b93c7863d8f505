"""The Llama family: Llama, Mistral, Qwen2 and Qwen3 in one decoder.

    x = embed(ids)                                          # [N, D]
    for each layer:
        h = rms_norm(x)                                      # [N, D]
        q, k, v = h @ W_qkv (+ bias: Qwen2)                  # [N, H, Dh], [N, Hkv, Dh] x2
        q, k = rms_norm per head (Qwen3)                     # [N, H, Dh], [N, Hkv, Dh]
        q, k = rope(q), rope(k)
        write k, v to the paged cache; attend (causal, sliding window: Mistral)
        x = x + attn @ W_o                                   # [N, D]
        x = x + down(silu(h2 @ W_gate) * (h2 @ W_up))        # [N, D], with h2 = rms_norm(x)
    logits = rms_norm(x) @ lm_head                           # [N, V], lm_head stored [D, V]

The four architectures differ only in flags read from `ModelConfig` (q/k/v biases, q/k norms,
sliding window), so one implementation with parameters serves them all. Weights keep the
checkpoint's names; two pairs are fused for speed, as vLLM does: q/k/v into `qkv_proj` and
gate/up into `gate_up_proj`, stacked along the output axis so each is one matrix product.
Projections keep the checkpoint's [out, in] layout (see fast_path.linear for why that suits batches).
The output head does not: `lm_head` is stored [D, V], which `hidden @ lm_head` reads fastest;
with tied embeddings (SmolLM2, Qwen2.5-0.5B) it is the only copy of the table, and `embed` reads
token columns of it (see `embed`).
Reference: transformers' `modeling_llama.py`, `modeling_qwen2.py`, `modeling_qwen3.py`,
`modeling_mistral.py`, which the parity tests match to 1e-4.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np  # host: weight preparation before the copy to the device

from pyengine.backend import Backend, array_module
from pyengine.model.config import ModelConfig
from pyengine.model.layers import (
    ACTIVATIONS,
    REFERENCE,
    AttentionInputs,
    ForwardOps,
    apply_rope,
    rms_norm,
    silu,
    silu_and_mul,
    write_kv,
)
from pyengine.model.loader import CheckpointError, take_tensor
from pyengine.model.rope import RotaryEmbedding


@dataclasses.dataclass
class LlamaLayer:
    """One decoder layer's weights (device arrays), named after the checkpoint's tensors."""

    input_layernorm: Any  # [D]
    qkv_proj: Any  # [(H + 2 Hkv) Dh, D]   q_proj | k_proj | v_proj, stacked (weights are [out, in])
    qkv_bias: Any  # [(H + 2 Hkv) Dh] or None
    qk_norm: Any  # [H + Hkv, Dh] or None (Qwen3): q_norm repeated per q head, then k_norm per kv head
    o_proj: Any  # [D, H Dh]
    o_bias: Any  # [D] or None
    post_attention_layernorm: Any  # [D]
    gate_up_proj: Any  # [2F, D]              gate_proj | up_proj, stacked
    gate_up_bias: Any  # [2F] or None
    down_proj: Any  # [D, F]
    down_bias: Any  # [D] or None


class LlamaModel:
    """A Llama-family decoder: `forward` (ids -> hidden) and `compute_logits` (hidden -> logits)."""

    ops: ForwardOps = REFERENCE  # projection and attention: layers.REFERENCE or fast_path.FAST (load_model sets it)

    def __init__(self, config: ModelConfig, backend: Backend, embed_tokens: Any,
                 layers: list[LlamaLayer], norm: Any, lm_head: Any):
        self.config = config
        self.backend = backend
        self.embed_tokens = embed_tokens  # [V, D], or None when tied: then lm_head holds the table
        self.layers = layers
        self.norm = norm  # [D]
        self.lm_head = lm_head  # [D, V]: the output head, stored [in, out] (unlike the projections)
        self.rotary = RotaryEmbedding(config, backend.xp)
        self.act = ACTIVATIONS[config.hidden_act]
        self.scale = config.head_dim ** -0.5

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, input_ids: Any, attn: AttentionInputs, kv_cache: Any) -> Any:
        """[N] token ids -> [N, D] final hidden states (before the last norm's projection).

        `kv_cache.key_caches[l]` / `value_caches[l]` are the [P, Bs, Hkv, Dh] arrays of layer l;
        this step's keys and values are written into them at `attn.slot_mapping`.
        """
        c = self.config
        cos, sin = self.rotary.cos_sin(attn.positions, attn.query_start_loc, attn.context_lens)
        x = self.embed(input_ids)  # [N, D]
        for index, layer in enumerate(self.layers):
            h = rms_norm(x, layer.input_layernorm, c.rms_norm_eps)  # [N, D]
            x = x + self._attention(h, layer, index, cos, sin, attn, kv_cache)  # [N, D]
            h = rms_norm(x, layer.post_attention_layernorm, c.rms_norm_eps)  # [N, D]
            x = x + self._mlp(h, layer)  # [N, D]
        return rms_norm(x, self.norm, c.rms_norm_eps)  # [N, D]

    def embed(self, input_ids: Any) -> Any:
        """[N] token ids -> [N, D] embeddings.

        Tied models keep the table once, as the [D, V] output head, because a batch's logits
        (`hidden @ lm_head`) run about 25% faster on BLAS against [D, V] than against [V, D].T at
        32 rows; looking tokens up then reads columns, which costs ~50 us for 32 tokens and ~13 ms
        for a 2,300-token prefill, far less than the product saves.
        """
        if self.embed_tokens is not None:
            return self.embed_tokens[input_ids]  # [N, D]
        # Tied: the table exists only as the [D, V] output head, so token t's embedding is its
        # column t: take the columns, [D, N], and lay them out as rows.
        xp = self.backend.xp
        return xp.ascontiguousarray(xp.take(self.lm_head, input_ids, axis=1).T)  # [N, D]

    @property
    def dtype(self) -> Any:
        """The weights' dtype (float32 on numpy; float16 for half checkpoints on cupy)."""
        return self.lm_head.dtype

    def compute_logits(self, hidden: Any) -> Any:
        """[M, D] -> [M, V] float32 logits."""
        # [M, D] @ [D, V]: row-major logits, which the sampler reads row by row
        return (hidden @ self.lm_head).astype(self.backend.xp.float32, copy=False)  # [M, V]

    def _attention(self, h: Any, layer: LlamaLayer, index: int, cos: Any, sin: Any,
                   attn: AttentionInputs, kv_cache: Any) -> Any:
        c = self.config
        n = h.shape[0]
        q_size = c.num_attention_heads * c.head_dim
        kv_size = c.num_key_value_heads * c.head_dim
        qkv = self.ops.linear(h, layer.qkv_proj, layer.qkv_bias)  # [N, (H + 2 Hkv) Dh]
        # q and k are adjacent in the stacked projection: norm (Qwen3) and rotate them together
        qk = qkv[:, :q_size + kv_size].reshape(n, c.num_attention_heads + c.num_key_value_heads, c.head_dim)
        if c.qk_norm:
            qk = rms_norm(qk, layer.qk_norm, c.rms_norm_eps)  # [N, H + Hkv, Dh]
        qk = apply_rope(qk, cos, sin)  # [N, H + Hkv, Dh]
        q, k = qk[:, :c.num_attention_heads], qk[:, c.num_attention_heads:]  # [N, H, Dh], [N, Hkv, Dh]
        v = qkv[:, q_size + kv_size:].reshape(n, c.num_key_value_heads, c.head_dim)  # [N, Hkv, Dh]
        key_cache, value_cache = kv_cache.key_caches[index], kv_cache.value_caches[index]
        write_kv(key_cache, value_cache, k, v, attn.slot_mapping)
        window = c.sliding_window if c.layer_uses_sliding_window[index] else None
        out = self.ops.attention(q, key_cache, value_cache, attn, self.scale, window)  # [N, H, Dh]
        return self.ops.linear(out.reshape(n, q_size), layer.o_proj, layer.o_bias)  # [N, D]

    def _mlp(self, h: Any, layer: LlamaLayer) -> Any:
        gate_up = self.ops.linear(h, layer.gate_up_proj, layer.gate_up_bias)  # [N, 2F]
        if self.act is silu:
            hidden = silu_and_mul(gate_up)  # [N, F]
        else:
            f = self.config.intermediate_size
            hidden = self.act(gate_up[:, :f]) * gate_up[:, f:]  # [N, F]
        return self.ops.linear(hidden, layer.down_proj, layer.down_bias)  # [N, D]

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def from_tensors(cls, config: ModelConfig, tensors: dict[str, Any], backend: Backend) -> "LlamaModel":
        """Build the model from host tensors named as in the checkpoint, checking every shape."""
        c, xp = config, backend.xp
        d, f, dh = c.hidden_size, c.intermediate_size, c.head_dim
        q_out, kv_out = c.num_attention_heads * dh, c.num_key_value_heads * dh

        def take(name: str, shape: tuple[int, ...]) -> Any:
            return backend.to_device(take_tensor(tensors, name, shape))

        def take_stacked(names: list[str], shapes: list[tuple[int, int]]) -> Any:  # [out, in] each -> [sum out, in]
            host = [take_tensor(tensors, n, s) for n, s in zip(names, shapes)]
            return backend.to_device(np.concatenate(host))

        def take_t(name: str, shape: tuple[int, int]) -> Any:  # [out, in] -> [in, out]: the output head
            return backend.to_device(np.ascontiguousarray(take_tensor(tensors, name, shape).T))

        def bias(name: str, size: int, present: bool) -> Any:
            return take(name, (size,)) if present else None

        layers = []
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            qkv = take_stacked([p + f"self_attn.{n}_proj.weight" for n in "qkv"],
                               [(q_out, d), (kv_out, d), (kv_out, d)])
            qkv_bias = None
            if c.qkv_bias:
                qkv_bias = xp.concatenate([take(p + f"self_attn.{n}_proj.bias", (o,))
                                           for n, o in (("q", q_out), ("k", kv_out), ("v", kv_out))])
            gate_up = take_stacked([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"], [(f, d), (f, d)])
            gate_up_bias = None
            if c.mlp_bias:
                gate_up_bias = xp.concatenate([take(p + f"mlp.{n}_proj.bias", (f,)) for n in ("gate", "up")])
            layers.append(LlamaLayer(
                input_layernorm=take(p + "input_layernorm.weight", (d,)),
                qkv_proj=qkv,
                qkv_bias=qkv_bias,
                qk_norm=_stacked_qk_norm(take, p, c) if c.qk_norm else None,
                o_proj=take(p + "self_attn.o_proj.weight", (d, q_out)),
                o_bias=bias(p + "self_attn.o_proj.bias", d, c.o_bias),
                post_attention_layernorm=take(p + "post_attention_layernorm.weight", (d,)),
                gate_up_proj=gate_up,
                gate_up_bias=gate_up_bias,
                down_proj=take(p + "mlp.down_proj.weight", (d, f)),
                down_bias=bias(p + "mlp.down_proj.bias", d, c.mlp_bias),
            ))
        norm = take("model.norm.weight", (d,))
        if "lm_head.weight" in tensors and not c.tie_word_embeddings:
            embed = take("model.embed_tokens.weight", (c.vocab_size, d))
            lm_head = take_t("lm_head.weight", (c.vocab_size, d))  # [D, V]
        elif c.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)  # some tied checkpoints store a copy
            embed = None  # one table: the [D, V] head, read by columns for lookups (see `embed`)
            lm_head = take_t("model.embed_tokens.weight", (c.vocab_size, d))
        else:
            raise CheckpointError("checkpoint has no 'lm_head.weight' and tie_word_embeddings is false")
        _reject_leftovers(tensors)
        return cls(config, backend, embed, layers, norm, lm_head)


def _stacked_qk_norm(take: Any, prefix: str, c: ModelConfig) -> Any:
    """Qwen3's per-head q_norm and k_norm weights [Dh] as one [H + Hkv, Dh] array."""
    q_norm = take(prefix + "self_attn.q_norm.weight", (c.head_dim,))
    k_norm = take(prefix + "self_attn.k_norm.weight", (c.head_dim,))
    xp = array_module(q_norm)
    return xp.concatenate([xp.broadcast_to(q_norm, (c.num_attention_heads, c.head_dim)),
                           xp.broadcast_to(k_norm, (c.num_key_value_heads, c.head_dim))])


def _reject_leftovers(tensors: dict[str, Any]) -> None:
    leftovers = [n for n in tensors if not n.endswith("rotary_emb.inv_freq")]
    if leftovers:
        shown = ", ".join(sorted(leftovers)[:5])
        raise CheckpointError(f"checkpoint has {len(leftovers)} tensors this architecture does not use: {shown}")
