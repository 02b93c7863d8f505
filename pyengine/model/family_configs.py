"""The config.json keys of the families beside Llama's (GPT-2, Gemma 2/3, Qwen3-MoE, Mixtral) and
of sliding-window attention (Mistral, Qwen when switched on).

`ModelConfig.from_dict` loads this module for such a checkpoint; each function returns the
ModelConfig fields those keys give (config.py's `llama_fields` reads the rest).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyengine.model.config import ConfigError, ModelConfig, Rope, llama_fields, parse_rope, required


@dataclasses.dataclass(frozen=True)
class FamilyConfig(ModelConfig):
    """A ModelConfig with the hyperparameters only Gemma 2/3 and the mixtures of experts have."""

    # Gemma 2 / 3
    query_pre_attn_scalar: float | None = None  # attention scale query_pre_attn_scalar ** -0.5, not head_dim ** -0.5
    attn_logit_softcapping: float | None = None  # attention scores -> cap * tanh(scores / cap)
    final_logit_softcapping: float | None = None  # logits -> cap * tanh(logits / cap)
    sliding_rope: Rope | None = None  # Gemma 3: the rope of sliding-window layers (None: `rope` everywhere)
    # mixture of experts (Qwen3-MoE, Mixtral)
    num_experts: int = 0
    num_experts_per_tok: int = 0  # k: experts each token is sent to
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False  # renormalise the k chosen probabilities to sum to 1
    layer_uses_experts: tuple[bool, ...] = ()

    def _validate(self) -> None:
        super()._validate()
        if self.sliding_rope is not None and self.sliding_rope.rope_type != "default":
            from pyengine.model.rope_scaling import check_rope  # noqa: PLC0415

            check_rope(self.sliding_rope, self.head_dim)


def family_fields(raw: dict[str, Any], architecture: str, family: str) -> dict[str, Any]:
    """ModelConfig's fields for a "gpt2", "gemma" or "moe" checkpoint."""
    if family == "gpt2":
        return gpt2_fields(raw)
    if family == "gemma":
        return gemma_fields(raw, architecture)
    fields = llama_fields(raw, architecture)
    fields.update(moe_fields(raw, architecture, fields["num_hidden_layers"]))
    return fields


def sliding_window(raw: dict[str, Any], architecture: str, num_layers: int) -> tuple[Any, tuple[bool, ...]]:
    """The window size (None: off) and which layers use it, for a Llama-family config that has one."""
    qwen = ("Qwen2ForCausalLM", "Qwen3ForCausalLM")
    if architecture in (*qwen, "Qwen3MoeForCausalLM") and not raw.get("use_sliding_window"):
        return None, (False,) * num_layers  # Qwen configs carry a window size but switch it off
    if raw.get("layer_types"):
        return raw["sliding_window"], tuple(t == "sliding_attention" for t in raw["layer_types"])
    if architecture in qwen:
        first_sliding = raw.get("max_window_layers", num_layers)
        return raw["sliding_window"], tuple(i >= first_sliding for i in range(num_layers))
    return raw["sliding_window"], (True,) * num_layers


def gpt2_fields(raw: dict[str, Any]) -> dict[str, Any]:
    hidden_size = required(raw, "n_embd")
    num_heads = required(raw, "n_head")
    if raw.get("scale_attn_by_inverse_layer_idx") or raw.get("reorder_and_upcast_attn"):
        raise ConfigError("config.json: GPT-2 options scale_attn_by_inverse_layer_idx and "
                          "reorder_and_upcast_attn are not supported")
    return dict(
        vocab_size=required(raw, "vocab_size"),
        hidden_size=hidden_size,
        intermediate_size=raw.get("n_inner") or 4 * hidden_size,
        num_hidden_layers=required(raw, "n_layer"),
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=required(raw, "n_positions"),
        rms_norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)),
        hidden_act=raw.get("activation_function", "gelu_new"),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        rope=None,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        qk_norm=False,
        sliding_window=None,
        layer_uses_sliding_window=(False,) * required(raw, "n_layer"),
    )


def gemma_fields(raw: dict[str, Any], architecture: str) -> dict[str, Any]:
    """Gemma 2 and 3 on top of Llama's keys: their defaults, layer pattern, soft-caps and two ropes.

    Without `layer_types`, layer i is global when (i + 1) is a multiple of `sliding_window_pattern`
    (Gemma 2: every second layer; Gemma 3: every sixth). Gemma 3 rotates sliding layers with
    `rope_local_base_freq` and global ones with `rope_theta` (+ `rope_scaling`), and takes no
    attention soft-cap (transformers' Gemma 3 never applies one).
    """
    is_gemma3 = architecture == "Gemma3ForCausalLM"
    nested = raw.get("rope_parameters") or {}
    is_nested = "full_attention" in nested  # Gemma 3's newer style: a rope per layer type
    fields = llama_fields({**raw, "rope_parameters": None} if is_nested else raw, architecture)
    num_layers = fields["num_hidden_layers"]
    if raw.get("use_bidirectional_attention"):
        raise ConfigError("config.json: use_bidirectional_attention (an encoder) is not supported")
    window = raw.get("sliding_window", 4096)
    pattern = raw.get("sliding_window_pattern", 6 if is_gemma3 else 2)
    layer_types = raw.get("layer_types") or [
        "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(num_layers)]
    fields.update(
        hidden_act=raw.get("hidden_activation") or raw.get("hidden_act") or "gelu_pytorch_tanh",
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        qk_norm=is_gemma3,
        sliding_window=window,
        layer_uses_sliding_window=tuple(window is not None and t == "sliding_attention" for t in layer_types),
        query_pre_attn_scalar=float(raw.get("query_pre_attn_scalar", 256)),
        attn_logit_softcapping=None if is_gemma3 else raw.get("attn_logit_softcapping", 50.0),
        final_logit_softcapping=raw.get("final_logit_softcapping", None if is_gemma3 else 30.0),
    )
    if is_gemma3:
        if is_nested:
            full, local = nested["full_attention"], nested.get("sliding_attention") or {}
        else:
            full = dict(raw.get("rope_scaling") or {}, rope_theta=raw.get("rope_theta", 1_000_000.0))
            local = {"rope_theta": raw.get("rope_local_base_freq", 10_000.0)}
        size = {"max_position_embeddings": raw.get("max_position_embeddings")}
        fields["rope"] = parse_rope({"rope_parameters": {"rope_theta": 1_000_000.0, **full}, **size})
        fields["sliding_rope"] = parse_rope({"rope_parameters": {"rope_theta": 10_000.0, **local}, **size})
    return fields


def moe_fields(raw: dict[str, Any], architecture: str, num_layers: int) -> dict[str, Any]:
    """Qwen3-MoE: layer i routes to experts unless it is in `mlp_only_layers` or off `decoder_sparse_step`.
    Mixtral: every layer does, each expert is `intermediate_size` wide, and the top k always renormalise."""
    num_experts = raw.get("num_experts") or raw.get("num_local_experts") or 0  # save_pretrained writes the latter
    k = required(raw, "num_experts_per_tok")
    if architecture == "MixtralForCausalLM":
        fields = dict(num_experts=num_experts, num_experts_per_tok=k,
                      moe_intermediate_size=required(raw, "intermediate_size"), norm_topk_prob=True,
                      layer_uses_experts=(num_experts > 0,) * num_layers)
    else:
        step = raw.get("decoder_sparse_step", 1)
        dense = set(raw.get("mlp_only_layers") or [])
        fields = dict(
            num_experts=num_experts,
            num_experts_per_tok=k,
            moe_intermediate_size=required(raw, "moe_intermediate_size"),
            norm_topk_prob=bool(raw.get("norm_topk_prob", False)),
            layer_uses_experts=tuple(i not in dense and num_experts > 0 and (i + 1) % step == 0
                                     for i in range(num_layers)),
        )
    if any(fields["layer_uses_experts"]) and not 0 < k <= num_experts:
        raise ConfigError(f"config.json: num_experts_per_tok ({k}) must be between 1 and num_experts ({num_experts})")
    return fields
