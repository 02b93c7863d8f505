"""Gemma 2 and Gemma 3 (text): the Llama decoder with sandwich norms, soft-caps and local layers.

    x = embed(ids) * sqrt(D)                                 # [N, D], the scale in the model's dtype
    for each layer (sliding-window "local" or full "global", as layer_types say):
        h = attend(norm(x))                                  # q/k norms (Gemma 3); scores soft-capped (Gemma 2)
        x = x + post_attention_norm(h)                       # [N, D]: norms on both sides of the block
        x = x + post_feedforward_norm(mlp(pre_feedforward_norm(x)))   # gelu_pytorch_tanh(gate) * up
    logits = cap * tanh((norm(x) @ lm_head) / cap)           # [N, V], final_logit_softcapping (Gemma 2)

What differs from Llama, each read from `FamilyConfig`:
- RMSNorm scales by (1 + weight), not weight; the loader adds the 1 once, so `rms_norm` serves;
- attention scores are scaled by query_pre_attn_scalar ** -0.5 (not head_dim ** -0.5);
- local layers attend to the last `sliding_window` keys only (token i sees j when i - W < j <= i),
  in prefill and decode alike (layers.paged_attention, fast_path.padded_decode_attention);
- Gemma 3 rotates local layers with their own rope (`rope_local_base_freq`, no scaling) and
  global ones with `rope_theta` and its scaling; Gemma 2 has one rope.
Every layer keeps a full-length cache here, local ones included (vLLM gives them only a window).
Reference: transformers' `modeling_gemma2.py` and `modeling_gemma3.py` (Gemma3ForCausalLM), which
the parity tests match to 1e-4.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from pyengine.backend import Backend
from pyengine.model.family_configs import FamilyConfig
from pyengine.model.layers import AttentionInputs, rms_norm, soft_cap
from pyengine.model.llama import LlamaLayer, LlamaModel, WeightReader, take_attention, take_mlp
from pyengine.model.rope import rotary_embedding

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class GemmaLayer(LlamaLayer):
    """A Gemma layer: Llama's weights plus the two norms around the MLP (all norms hold 1 + weight)."""

    pre_feedforward_layernorm: Any = None  # [D]
    post_feedforward_layernorm: Any = None  # [D]


class GemmaModel(LlamaModel):
    """Gemma 2 / Gemma 3 text decoder, with LlamaModel's interface."""

    def __init__(self, config: FamilyConfig, backend: Backend, embed_tokens: Any, layers: list[Any], norm: Any,
                 lm_head: Any):
        super().__init__(config, backend, embed_tokens, layers, norm, lm_head)
        self.scale = (config.query_pre_attn_scalar or config.head_dim) ** -0.5
        self.softcap = config.attn_logit_softcapping
        self.sliding_rotary = rotary_embedding(config, backend.xp, config.sliding_rope or config.rope)

    def forward(self, input_ids: Any, attn: AttentionInputs, kv_cache: Any) -> Any:
        """[N] token ids -> [N, D] final hidden states."""
        c, eps = self.config, self.config.rms_norm_eps
        where = (attn.positions, attn.query_start_loc, attn.context_lens)
        ropes = {False: self.rotary.cos_sin(*where), True: self.sliding_rotary.cos_sin(*where)}  # by is-local
        xp = self.backend.xp
        x = self.embed(input_ids)  # [N, D]
        x = x * xp.asarray(c.hidden_size ** 0.5, dtype=x.dtype)  # sqrt(D), rounded to the model's dtype
        for index, layer in enumerate(self.layers):
            rope = ropes[c.layer_uses_sliding_window[index]]
            h = self._attention(rms_norm(x, layer.input_layernorm, eps), layer, index, rope, attn, kv_cache)
            x = x + rms_norm(h, layer.post_attention_layernorm, eps)  # [N, D]
            h = self._mlp(rms_norm(x, layer.pre_feedforward_layernorm, eps), layer)  # [N, D]
            x = x + rms_norm(h, layer.post_feedforward_layernorm, eps)  # [N, D]
        return rms_norm(x, self.norm, eps)  # [N, D]

    def compute_logits(self, hidden: Any) -> Any:
        """[M, D] -> [M, V] float32 logits, soft-capped by final_logit_softcapping (Gemma 2)."""
        return soft_cap(super().compute_logits(hidden), self.config.final_logit_softcapping)

    @classmethod
    def from_tensors(cls, config: FamilyConfig, tensors: dict[str, Any], backend: Backend) -> "GemmaModel":
        if backend.is_gpu and config.dtype != "float32":
            logger.warning("%s computes in float16 here (no bfloat16 on this backend); Gemma's activations are "
                           "known to overflow float16's range, which shows as inf/NaN logits", config.architecture)
        model = super().from_tensors(config, tensors, backend)
        model.norm = model.norm + 1.0  # (1 + weight), once
        return model  # type: ignore[return-value]

    @classmethod
    def _take_layer(cls, w: WeightReader, c: FamilyConfig, prefix: str, index: int) -> GemmaLayer:
        def norm(name: str) -> Any:
            return w.take(prefix + name + ".weight", (c.hidden_size,)) + 1.0  # Gemma's RMSNorm: (1 + weight)

        attention = take_attention(w, c, prefix)
        if attention["qk_norm"] is not None:
            attention["qk_norm"] = attention["qk_norm"] + 1.0  # Gemma 3's q/k norms: (1 + weight) too
        return GemmaLayer(input_layernorm=norm("input_layernorm"),
                          post_attention_layernorm=norm("post_attention_layernorm"),
                          pre_feedforward_layernorm=norm("pre_feedforward_layernorm"),
                          post_feedforward_layernorm=norm("post_feedforward_layernorm"),
                          **attention, **take_mlp(w, c, prefix + "mlp.", c.intermediate_size))
