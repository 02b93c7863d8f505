"""Mixture-of-experts decoders: Qwen3-MoE and Mixtral, the Llama decoder with experts for MLPs.

    for each layer:
        x = x + attend(rms_norm(x))                          # as Qwen3 (per-head q/k norms) or Mistral
        h = rms_norm(x)                                       # [N, D]
        weights, experts = route(h)                           # [N, k] each: the k most probable experts
        x = x + sum_j weights[:, j] * expert_{experts[:, j]}(h)   # each expert a small gated MLP

A router (one [E, D] matrix, `mlp.gate`) scores the E experts for each token; the softmax of the
scores is a probability per expert; the token goes to its k most probable ones (`num_experts_per_tok`),
whose outputs are summed with those probabilities as weights, renormalised to sum to 1 when
`norm_topk_prob` (always, in Mixtral). Only k of E experts run per token: the layer holds E MLPs'
parameters but costs about k of them. Qwen3-MoE layers listed in `mlp_only_layers` (or off
`decoder_sparse_step`) keep a dense MLP. docs/09-mixture-of-experts.md walks through `route`
and `dispatch`. The two differ in names only: Qwen3-MoE's `mlp.gate` and `mlp.experts.{e}.gate_proj
/ up_proj / down_proj` are Mixtral's `block_sparse_moe.gate` and `block_sparse_moe.experts.{e}.w1 /
w3 / w2`. Reference: transformers' `modeling_qwen3_moe.py` and `modeling_mixtral.py`, which the
parity tests match to 1e-4.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from pyengine.backend import array_module
from pyengine.model.family_configs import FamilyConfig
from pyengine.model.layers import softmax
from pyengine.model.llama import LlamaLayer, LlamaModel, WeightReader, take_attention, take_mlp


@dataclasses.dataclass
class MoeLayer(LlamaLayer):
    """A layer whose MLP is a mixture of experts (the dense MLP's fields are None)."""

    router: Any = None  # [E, D]        mlp.gate.weight: one score per expert
    experts_gate_up: Any = None  # [E, 2F, D]  each expert's gate_proj | up_proj, stacked
    experts_down: Any = None  # [E, D, F]


def route(h: Any, router: Any, top_k: int, norm_topk_prob: bool) -> tuple[Any, Any]:
    """[N, D] -> ([N, k] weights, [N, k] expert ids): each token's k most probable experts.

    The probabilities are a softmax over all E experts, computed in float32; with `norm_topk_prob`
    the k kept are divided by their sum, so they add up to 1.
    """
    xp = array_module(h)
    probs = softmax((h @ router.T).astype(xp.float32))  # [N, E]
    experts = xp.argsort(-probs, axis=-1, kind="stable")[:, :top_k]  # [N, k], most probable first
    weights = xp.take_along_axis(probs, experts, axis=-1)  # [N, k]
    if norm_topk_prob:
        weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights.astype(h.dtype), experts


def dispatch(h: Any, weights: Any, experts: Any, gate_up: Any, down: Any,
             gated: Callable[[Any], Any], linear: Callable[..., Any]) -> Any:
    """[N, D] tokens -> [N, D]: each token's k expert outputs, weighted and summed.

    Expert by expert: gather the tokens that chose it, run its gated MLP on just those rows, and
    add the results, times each token's weight for it, back into their rows. A token picks an
    expert at most once, so the rows gathered for one expert are distinct. (An expert no token
    chose costs nothing. On a GPU, `nonzero` waits for the router, once per expert and layer;
    vLLM's fused MoE kernels sort the tokens by expert on the device instead.)
    """
    xp = array_module(h)
    out = xp.zeros_like(h)  # [N, D]
    for e in range(gate_up.shape[0]):
        rows, slots = xp.nonzero(experts == e)  # [n_e] each: the tokens, and which of their k choices
        if rows.shape[0] == 0:
            continue
        hidden = gated(linear(h[rows], gate_up[e]))  # [n_e, F]
        out[rows] += linear(hidden, down[e]) * weights[rows, slots][:, None]  # [n_e, D]
    return out


class MoeModel(LlamaModel):
    """Qwen3-MoE or Mixtral decoder, with LlamaModel's interface; only the MLP of expert layers differs."""

    def _mlp(self, h: Any, layer: Any) -> Any:
        if layer.router is None:
            return super()._mlp(h, layer)  # a dense layer
        c = self.config
        weights, experts = route(h, layer.router, c.num_experts_per_tok, c.norm_topk_prob)  # [N, k] each
        return dispatch(h, weights, experts, layer.experts_gate_up, layer.experts_down, self._gated, self.ops.linear)

    @classmethod
    def _take_layer(cls, w: WeightReader, c: FamilyConfig, prefix: str, index: int) -> MoeLayer:
        d, f = c.hidden_size, c.moe_intermediate_size
        norms = dict(input_layernorm=w.take(prefix + "input_layernorm.weight", (d,)),
                     post_attention_layernorm=w.take(prefix + "post_attention_layernorm.weight", (d,)))
        if not c.layer_uses_experts[index]:
            return MoeLayer(**norms, **take_attention(w, c, prefix), **take_mlp(w, c, prefix + "mlp.", c.intermediate_size))
        if c.architecture == "MixtralForCausalLM":
            m, (gate, up, down) = prefix + "block_sparse_moe.", ("w1", "w3", "w2")
        else:
            m, (gate, up, down) = prefix + "mlp.", ("gate_proj", "up_proj", "down_proj")
        gate_ups = [w.take_stacked([f"{m}experts.{e}.{gate}.weight", f"{m}experts.{e}.{up}.weight"], [(f, d), (f, d)])
                    for e in range(c.num_experts)]
        downs = [w.take(f"{m}experts.{e}.{down}.weight", (d, f)) for e in range(c.num_experts)]
        xp = w.backend.xp
        return MoeLayer(**norms, **take_attention(w, c, prefix), gate_up_proj=None, gate_up_bias=None,
                        down_proj=None, down_bias=None, router=w.take(m + "gate.weight", (c.num_experts, d)),
                        experts_gate_up=xp.stack(gate_ups), experts_down=xp.stack(downs))  # [E, 2F, D], [E, D, F]
