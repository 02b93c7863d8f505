"""The Llama family: Llama, Mistral, Qwen2, Qwen3 and Phi-3 in one decoder (docs/01-forward-pass.md).

The five differ only in flags read from `ModelConfig` (q/k/v biases, q/k norms, sliding window, rope
type). Weights keep the checkpoint's names and [out, in] layout, with q/k/v stacked into `qkv_proj` and
gate/up into `gate_up_proj` (one product each, as vLLM does; Phi-3 stores them so). Gemma (gemma.py)
and the mixtures of experts (moe.py) build on this class. Reference: transformers' `modeling_llama.py`
and its Qwen2, Qwen3, Mistral and Phi-3 siblings, which the parity tests match to 1e-4.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np  # host: weight preparation before the copy to the device

from pyengine.backend import Backend, array_module
from pyengine.model.config import ModelConfig
from pyengine.model.layers import ACTIVATIONS, REFERENCE, AttentionInputs, ForwardOps, apply_rope, rms_norm, write_kv
from pyengine.model.loader import CheckpointError, take_tensor
from pyengine.model.rope import rotary_embedding


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
        self.config, self.backend = config, backend
        self.embed_tokens = embed_tokens  # [V, D], or None when tied: then lm_head holds the table
        self.layers = layers
        self.norm = norm  # [D]
        self.lm_head = lm_head  # [D, V]: the output head, stored [in, out] (unlike the projections)
        self.rotary = rotary_embedding(config, backend.xp)
        self.act = ACTIVATIONS[config.hidden_act]
        self.scale = config.head_dim ** -0.5
        self.softcap: float | None = None  # of the attention scores (Gemma 2 sets one)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, input_ids: Any, attn: AttentionInputs, kv_cache: Any) -> Any:
        """[N] token ids -> [N, D] final hidden states; this step's keys and values are written into
        `kv_cache` (per layer [P, Bs, Hkv, Dh]) at `attn.slot_mapping`."""
        c = self.config
        rope = self.rotary.cos_sin(attn.positions, attn.query_start_loc, attn.context_lens)  # cos, sin: [N, Dh/2]
        x = self.embed(input_ids)  # [N, D]
        for index, layer in enumerate(self.layers):
            h = rms_norm(x, layer.input_layernorm, c.rms_norm_eps)  # [N, D]
            x = x + self._attention(h, layer, index, rope, attn, kv_cache)  # [N, D]
            h = rms_norm(x, layer.post_attention_layernorm, c.rms_norm_eps)  # [N, D]
            x = x + self._mlp(h, layer)  # [N, D]
        return rms_norm(x, self.norm, c.rms_norm_eps)  # [N, D]

    def embed(self, input_ids: Any) -> Any:
        """[N] token ids -> [N, D] embeddings.

        A tied model keeps the table once, as the [D, V] output head: its logits run ~25% faster on BLAS
        against [D, V] than against [V, D].T at 32 rows, and a lookup by column costs far less than that
        saves (~50 us for 32 tokens, ~13 ms for a 2,300-token prefill).
        """
        if self.embed_tokens is not None:
            return self.embed_tokens[input_ids]  # [N, D]
        xp = self.backend.xp
        return xp.ascontiguousarray(xp.take(self.lm_head, input_ids, axis=1).T)  # [D, N] columns -> [N, D] rows

    @property
    def dtype(self) -> Any:
        """The weights' dtype (float32 on numpy; float16 for half checkpoints on cupy)."""
        return self.lm_head.dtype

    def compute_logits(self, hidden: Any) -> Any:
        """[M, D] -> [M, V] float32 logits, [M, D] @ [D, V]: row-major, as the sampler reads them."""
        return (hidden @ self.lm_head).astype(self.backend.xp.float32, copy=False)  # [M, V]

    def _attention(self, h: Any, layer: LlamaLayer, index: int, rope: tuple[Any, Any],
                   attn: AttentionInputs, kv_cache: Any) -> Any:
        c = self.config
        cos, sin = rope  # [N, Dh/2] each
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
        out = self.ops.attention(q, key_cache, value_cache, attn, self.scale, window, self.softcap)  # [N, H, Dh]
        return self.ops.linear(out.reshape(n, q_size), layer.o_proj, layer.o_bias)  # [N, D]

    def _mlp(self, h: Any, layer: LlamaLayer) -> Any:
        gate_up = self.ops.linear(h, layer.gate_up_proj, layer.gate_up_bias)  # [N, 2F]
        return self.ops.linear(self._gated(gate_up), layer.down_proj, layer.down_bias)  # [N, D]

    def _gated(self, gate_up: Any) -> Any:
        """[N, 2F] -> [N, F]: act(gate) * up."""
        return self.ops.act_and_mul(gate_up, self.act)  # [N, F]

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_tensors(cls, config: ModelConfig, tensors: dict[str, Any], backend: Backend) -> "LlamaModel":
        """Build the model from host tensors named as in the checkpoint, checking every shape."""
        c, w = config, WeightReader(tensors, backend)
        layers = [cls._take_layer(w, c, f"model.layers.{i}.", i) for i in range(c.num_hidden_layers)]
        norm = w.take("model.norm.weight", (c.hidden_size,))
        embed, lm_head = _take_embedding_and_head(w, c)
        _reject_leftovers(tensors)
        return cls(config, backend, embed, layers, norm, lm_head)

    @classmethod
    def _take_layer(cls, w: "WeightReader", c: ModelConfig, prefix: str, index: int) -> Any:
        """Layer `index`'s weights, named `prefix` + the checkpoint's names."""
        return LlamaLayer(input_layernorm=w.take(prefix + "input_layernorm.weight", (c.hidden_size,)),
                          post_attention_layernorm=w.take(prefix + "post_attention_layernorm.weight", (c.hidden_size,)),
                          **take_attention(w, c, prefix), **take_mlp(w, c, prefix + "mlp.", c.intermediate_size))


class WeightReader:
    """Takes checkpoint tensors by name (popping them) onto the device, checking each shape."""

    def __init__(self, tensors: dict[str, Any], backend: Backend):
        self.tensors, self.backend = tensors, backend

    def take(self, name: str, shape: tuple[int, ...]) -> Any:
        return self.backend.to_device(take_tensor(self.tensors, name, shape))

    def take_stacked(self, names: list[str], shapes: list[tuple[int, ...]]) -> Any:
        """[out_i, in] (or [out_i]) each -> [sum out_i, in]: several projections as one."""
        return self.backend.to_device(np.concatenate([take_tensor(self.tensors, n, s) for n, s in zip(names, shapes)]))

    def take_t(self, name: str, shape: tuple[int, int]) -> Any:
        """[out, in] -> [in, out]: the output head."""
        return self.backend.to_device(np.ascontiguousarray(take_tensor(self.tensors, name, shape).T))


def take_attention(w: WeightReader, c: ModelConfig, prefix: str) -> dict[str, Any]:
    """A layer's attention weights, q/k/v stacked into one [out, in] matrix (Phi-3 stores them so)."""
    d, a = c.hidden_size, prefix + "self_attn."
    q_out, kv_out = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    if a + "qkv_proj.weight" in w.tensors:
        qkv = w.take(a + "qkv_proj.weight", (q_out + 2 * kv_out, d))
    else:
        qkv = w.take_stacked([a + f"{n}_proj.weight" for n in "qkv"], [(q_out, d), (kv_out, d), (kv_out, d)])
    qkv_bias = w.take_stacked([a + f"{n}_proj.bias" for n in "qkv"], [(q_out,), (kv_out,), (kv_out,)]) if c.qkv_bias else None
    return dict(qkv_proj=qkv, qkv_bias=qkv_bias, qk_norm=_stacked_qk_norm(w, a, c) if c.qk_norm else None,
                o_proj=w.take(a + "o_proj.weight", (d, q_out)), o_bias=w.take(a + "o_proj.bias", (d,)) if c.o_bias else None)


def take_mlp(w: WeightReader, c: ModelConfig, prefix: str, f: int) -> dict[str, Any]:
    """A gated MLP's weights (`prefix` ends in "mlp."), gate/up stacked (Phi-3 stores them so)."""
    d = c.hidden_size
    if prefix + "gate_up_proj.weight" in w.tensors:
        gate_up = w.take(prefix + "gate_up_proj.weight", (2 * f, d))
    else:
        gate_up = w.take_stacked([prefix + "gate_proj.weight", prefix + "up_proj.weight"], [(f, d), (f, d)])
    bias = c.mlp_bias
    return dict(gate_up_proj=gate_up, down_proj=w.take(prefix + "down_proj.weight", (d, f)),
                gate_up_bias=w.take_stacked([prefix + "gate_proj.bias", prefix + "up_proj.bias"], [(f,), (f,)]) if bias else None,
                down_bias=w.take(prefix + "down_proj.bias", (d,)) if bias else None)


def _take_embedding_and_head(w: WeightReader, c: ModelConfig) -> tuple[Any, Any]:
    """The [V, D] embedding table (None when tied) and the [D, V] output head."""
    shape = (c.vocab_size, c.hidden_size)
    if "lm_head.weight" in w.tensors and not c.tie_word_embeddings:
        return w.take("model.embed_tokens.weight", shape), w.take_t("lm_head.weight", shape)
    if c.tie_word_embeddings:
        w.tensors.pop("lm_head.weight", None)  # some tied checkpoints store a copy
        # one table: the [D, V] head, read by columns for lookups (see `embed`)
        return None, w.take_t("model.embed_tokens.weight", shape)
    raise CheckpointError("checkpoint has no 'lm_head.weight' and tie_word_embeddings is false")


def _stacked_qk_norm(w: WeightReader, prefix: str, c: ModelConfig) -> Any:
    """Qwen3's per-head q_norm and k_norm weights [Dh] as one [H + Hkv, Dh] array."""
    q_norm = w.take(prefix + "q_norm.weight", (c.head_dim,))
    k_norm = w.take(prefix + "k_norm.weight", (c.head_dim,))
    xp = array_module(q_norm)
    return xp.concatenate([xp.broadcast_to(q_norm, (c.num_attention_heads, c.head_dim)),
                           xp.broadcast_to(k_norm, (c.num_key_value_heads, c.head_dim))])


def _reject_leftovers(tensors: dict[str, Any]) -> None:
    leftovers = [n for n in tensors if not n.endswith("rotary_emb.inv_freq")]
    if leftovers:
        shown = ", ".join(sorted(leftovers)[:5])
        raise CheckpointError(f"checkpoint has {len(leftovers)} tensors this architecture does not use: {shown}")
