"""GPT-2: learned positions, LayerNorm, gelu_new, and Conv1D weights.

    x = wte[ids] + wpe[positions]                            # [N, D]
    for each block:
        q, k, v = split(ln_1(x) @ c_attn + b)                # [N, H, Dh] x3
        x = x + attend(q, k, v) @ c_proj + b                 # [N, D]
        x = x + gelu_new(ln_2(x) @ c_fc + b) @ c_proj + b    # [N, D]
    logits = ln_f(x) @ wte.T                                 # [N, V]   (tied)

GPT-2's "Conv1D" layers store weights as [in, out], the transpose of nn.Linear; the loader
transposes them once to the [out, in] layout `linear` takes. Reference: transformers'
`modeling_gpt2.py` and picoGPT.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np  # host: weight preparation before the copy to the device

from pyengine.backend import Backend, array_module
from pyengine.model.config import ModelConfig
from pyengine.model.layers import ACTIVATIONS, REFERENCE, AttentionInputs, ForwardOps, write_kv
from pyengine.model.loader import take_tensor


@dataclasses.dataclass
class GPT2Block:
    """One block's weights (device arrays), with the checkpoint's names."""

    ln_1_weight: Any  # [D]
    ln_1_bias: Any  # [D]
    c_attn_weight: Any  # [3D, D]   ([out, in], as linear() takes: Conv1D's transposed)
    c_attn_bias: Any  # [3D]
    attn_c_proj_weight: Any  # [D, D]
    attn_c_proj_bias: Any  # [D]
    ln_2_weight: Any  # [D]
    ln_2_bias: Any  # [D]
    c_fc_weight: Any  # [F, D]
    c_fc_bias: Any  # [F]
    mlp_c_proj_weight: Any  # [D, F]
    mlp_c_proj_bias: Any  # [D]


class GPT2Model:
    """GPT-2 decoder with the same `forward` / `compute_logits` interface as `LlamaModel`."""

    ops: ForwardOps = REFERENCE  # projection and attention: layers.REFERENCE or fast_path.FAST (load_model sets it)

    def __init__(self, config: ModelConfig, backend: Backend, wte: Any, wpe: Any,
                 blocks: list[GPT2Block], ln_f_weight: Any, ln_f_bias: Any, lm_head: Any):
        self.config = config
        self.backend = backend
        self.wte = wte  # [V, D]
        self.wpe = wpe  # [max_position_embeddings, D]
        self.blocks = blocks
        self.ln_f_weight, self.ln_f_bias = ln_f_weight, ln_f_bias  # [D], [D]
        self.lm_head = lm_head  # [V, D]
        self.act = ACTIVATIONS[config.hidden_act]
        self.scale = config.head_dim ** -0.5

    def forward(self, input_ids: Any, attn: AttentionInputs, kv_cache: Any) -> Any:
        """[N] token ids -> [N, D] hidden states after the final LayerNorm."""
        c = self.config
        n, eps = input_ids.shape[0], c.rms_norm_eps
        x = self.wte[input_ids] + self.wpe[attn.positions]  # [N, D]
        for index, layer in enumerate(self.blocks):
            h = layer_norm(x, layer.ln_1_weight, layer.ln_1_bias, eps)  # [N, D]
            qkv = self.ops.linear(h, layer.c_attn_weight, layer.c_attn_bias)  # [N, 3D]
            q, k, v = (qkv[:, i * c.hidden_size:(i + 1) * c.hidden_size]
                       .reshape(n, c.num_attention_heads, c.head_dim) for i in range(3))  # [N, H, Dh]
            key_cache, value_cache = kv_cache.key_caches[index], kv_cache.value_caches[index]
            write_kv(key_cache, value_cache, k, v, attn.slot_mapping)
            out = self.ops.attention(q, key_cache, value_cache, attn, self.scale)  # [N, H, Dh]
            x = x + self.ops.linear(out.reshape(n, c.hidden_size), layer.attn_c_proj_weight, layer.attn_c_proj_bias)
            h = layer_norm(x, layer.ln_2_weight, layer.ln_2_bias, eps)  # [N, D]
            h = self.act(self.ops.linear(h, layer.c_fc_weight, layer.c_fc_bias))  # [N, F]
            x = x + self.ops.linear(h, layer.mlp_c_proj_weight, layer.mlp_c_proj_bias)  # [N, D]
        return layer_norm(x, self.ln_f_weight, self.ln_f_bias, eps)  # [N, D]

    @property
    def dtype(self) -> Any:
        """The weights' dtype (float32 on numpy; float16 for half checkpoints on cupy)."""
        return self.wte.dtype

    def compute_logits(self, hidden: Any) -> Any:
        """[M, D] -> [M, V] float32 logits."""
        return logits_projection(hidden, self.lm_head).astype(self.backend.xp.float32, copy=False)  # [M, V]

    @classmethod
    def from_tensors(cls, config: ModelConfig, tensors: dict[str, Any], backend: Backend) -> "GPT2Model":
        """Build from host tensors; names may or may not carry the `transformer.` prefix."""
        c = config
        d, f = c.hidden_size, c.intermediate_size
        tensors = {name.removeprefix("transformer."): t for name, t in tensors.items()
                   if not name.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers

        def take(name: str, shape: tuple[int, ...]) -> Any:
            return backend.to_device(take_tensor(tensors, name, shape))

        def take_conv1d(name: str, shape: tuple[int, int]) -> Any:  # Conv1D's [in, out] -> [out, in]
            return backend.to_device(np.ascontiguousarray(take_tensor(tensors, name, shape).T))

        blocks = []
        for i in range(c.num_hidden_layers):
            p = f"h.{i}."
            blocks.append(GPT2Block(
                ln_1_weight=take(p + "ln_1.weight", (d,)), ln_1_bias=take(p + "ln_1.bias", (d,)),
                c_attn_weight=take_conv1d(p + "attn.c_attn.weight", (d, 3 * d)),
                c_attn_bias=take(p + "attn.c_attn.bias", (3 * d,)),
                attn_c_proj_weight=take_conv1d(p + "attn.c_proj.weight", (d, d)),
                attn_c_proj_bias=take(p + "attn.c_proj.bias", (d,)),
                ln_2_weight=take(p + "ln_2.weight", (d,)), ln_2_bias=take(p + "ln_2.bias", (d,)),
                c_fc_weight=take_conv1d(p + "mlp.c_fc.weight", (d, f)), c_fc_bias=take(p + "mlp.c_fc.bias", (f,)),
                mlp_c_proj_weight=take_conv1d(p + "mlp.c_proj.weight", (f, d)),
                mlp_c_proj_bias=take(p + "mlp.c_proj.bias", (d,)),
            ))
        wte = take("wte.weight", (c.vocab_size, d))
        wpe = take("wpe.weight", (c.max_position_embeddings, d))
        ln_f_weight, ln_f_bias = take("ln_f.weight", (d,)), take("ln_f.bias", (d,))
        lm_head = wte
        if "lm_head.weight" in tensors:
            head = take("lm_head.weight", (c.vocab_size, d))
            lm_head = wte if c.tie_word_embeddings else head
        return cls(config, backend, wte, wpe, blocks, ln_f_weight, ln_f_bias, lm_head)


def layer_norm(x: Any, weight: Any, bias: Any, eps: float) -> Any:
    """[..., D] -> [..., D]: (x - mean) / sqrt(var + eps) * weight + bias, in float32."""
    xp = array_module(x)
    x32 = x.astype(xp.float32, copy=False)
    mean = x32.mean(axis=-1, keepdims=True)  # [..., 1]
    centered = x32 - mean  # [..., D]
    variance = (centered * centered).mean(axis=-1, keepdims=True)  # [..., 1]
    normed = centered / xp.sqrt(variance + eps)  # [..., D]
    return normed.astype(x.dtype, copy=False) * weight + bias


def logits_projection(x: Any, embedding: Any) -> Any:
    """[N, D] @ [V, D].T -> [N, V]: the output head reads the [V, D] embedding table as it is."""
    return x @ embedding.T
