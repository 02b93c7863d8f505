"""ModelConfig: the one place that reads a checkpoint's config.json.

Hugging Face checkpoints spell the same hyperparameter in several ways: older files say
`rope_theta`, `rope_scaling` and `torch_dtype`; newer ones say `rope_parameters` and `dtype`;
GPT-2 says `n_embd`, `n_layer`, `n_head`; older Gemma 3 files say `rope_local_base_freq` and
`sliding_window_pattern` where newer ones nest `rope_parameters` by layer type and list
`layer_types`. `ModelConfig.from_pretrained` normalises all of them into one frozen dataclass
with Hugging Face's (Llama) names, so the model code never parses JSON and a reader can quote
config.json directly. `generation_config.json` is read here too,
because its eos ids (possibly a list) decide when generation stops.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

# architectures value in config.json -> the family that implements it (see model/__init__.py)
SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",
    "Qwen3ForCausalLM": "llama",
    "Phi3ForCausalLM": "llama",  # q/k/v and gate/up stored fused, LongRoPE
    "GPT2LMHeadModel": "gpt2",
    "Gemma2ForCausalLM": "gemma",
    "Gemma3ForCausalLM": "gemma",  # the text-only model (Gemma 3 1B); the multimodal ones are not supported
    "Qwen3MoeForCausalLM": "moe",
    "MixtralForCausalLM": "moe",
}
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")
ACTIVATIONS = ("silu", "gelu_new", "gelu_pytorch_tanh")  # what layers.ACTIVATIONS implements
DTYPES = ("float32", "float16", "bfloat16")


class ConfigError(ValueError):
    """config.json (or generation_config.json) is missing, malformed or unsupported."""


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Rotary embedding parameters, normalised from `rope_scaling` or `rope_parameters`."""

    rope_type: str = "default"
    rope_theta: float = 10000.0
    factor: float = 1.0
    # llama3
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    # llama3 and yarn: the context length the model was pretrained with
    original_max_position_embeddings: int | None = None
    # yarn
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True
    # longrope (Phi-3): per-frequency divisors below / above original_max_position_embeddings
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None
    partial_rotary_factor: float = 1.0  # Phi-3 (Phi-4-mini): rotate only this fraction of each head


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The hyperparameters of one checkpoint, with Hugging Face's names."""

    architecture: str
    family: str  # "llama" (Llama, Mistral, Qwen2, Qwen3, Phi-3), "gpt2", "gemma" or "moe" (Qwen3-MoE, Mixtral)
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float  # GPT-2: layer_norm_epsilon
    hidden_act: str
    tie_word_embeddings: bool
    rope: RopeScaling | None  # None for GPT-2 (learned positions)
    qkv_bias: bool  # Qwen2: q/k/v have biases, o does not
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool  # Qwen3: RMSNorm over each head of q and k
    sliding_window: int | None
    layer_uses_sliding_window: tuple[bool, ...]
    dtype: str
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]  # config eos ids, then generation_config's
    generation_config: dict[str, Any]
    # Gemma 2 / 3
    query_pre_attn_scalar: float | None = None  # attention scale query_pre_attn_scalar ** -0.5, not head_dim ** -0.5
    attn_logit_softcapping: float | None = None  # attention scores -> cap * tanh(scores / cap)
    final_logit_softcapping: float | None = None  # logits -> cap * tanh(logits / cap)
    sliding_rope: RopeScaling | None = None  # Gemma 3: the rope of sliding-window layers (None: `rope` everywhere)
    # mixture of experts (Qwen3-MoE, Mixtral)
    num_experts: int = 0
    num_experts_per_tok: int = 0  # k: experts each token is sent to
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = False  # renormalise the k chosen probabilities to sum to 1
    layer_uses_experts: tuple[bool, ...] = ()

    @property
    def num_queries_per_kv(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ModelConfig":
        """Read `path/config.json` (+ `generation_config.json` if present) and normalise it.

        Raises:
            ConfigError: missing or malformed file, unsupported architecture, bad values.
        """
        path = Path(path)
        raw = _read_json(path / "config.json", required=True)
        generation = _read_json(path / "generation_config.json", required=False) or {}
        return cls.from_dict(raw, generation)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], generation: dict[str, Any] | None = None) -> "ModelConfig":
        generation = generation or {}
        architectures = raw.get("architectures") or []
        supported = [a for a in architectures if a in SUPPORTED_ARCHITECTURES]
        if not supported:
            raise ConfigError(
                f"unsupported architecture {architectures!r} in config.json; supported: "
                + ", ".join(SUPPORTED_ARCHITECTURES)
            )
        architecture = supported[0]
        family = SUPPORTED_ARCHITECTURES[architecture]
        if family == "gpt2":
            fields = _gpt2_fields(raw)
        else:
            fields = _gemma_fields(raw, architecture) if family == "gemma" else _llama_fields(raw, architecture)
        if family == "moe":
            fields.update(_moe_fields(raw, architecture, fields["num_hidden_layers"]))
        eos = _id_list(raw.get("eos_token_id")) + _id_list(generation.get("eos_token_id"))
        config = cls(
            architecture=architecture,
            family=family,
            dtype=_dtype(raw),
            bos_token_id=raw.get("bos_token_id", generation.get("bos_token_id")),
            eos_token_ids=tuple(dict.fromkeys(eos)),  # unique, order kept
            generation_config=dict(generation),
            **fields,
        )
        config._validate()
        return config

    def _validate(self) -> None:
        positive = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "head_dim",
                    "max_position_embeddings")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config.json: {name} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"config.json: num_attention_heads ({self.num_attention_heads}) must be a multiple "
                f"of num_key_value_heads ({self.num_key_value_heads})"
            )
        for rope in (self.rope, self.sliding_rope):
            if rope is not None and rope.rope_type not in ROPE_TYPES:
                raise ConfigError(f"config.json: unsupported rope type {rope.rope_type!r}; supported: "
                                  + ", ".join(ROPE_TYPES))
            pairs = int(self.head_dim * rope.partial_rotary_factor) // 2 if rope is not None else 0
            if rope is not None and rope.rope_type == "longrope" and not (
                    len(rope.short_factor or ()) == len(rope.long_factor or ()) == pairs):
                raise ConfigError(f"config.json: longrope needs short_factor and long_factor of {pairs} numbers "
                                  "each (head_dim * partial_rotary_factor / 2)")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"config.json: unsupported activation {self.hidden_act!r}; supported: "
                              + ", ".join(ACTIVATIONS))
        if any(self.layer_uses_experts) and not 0 < self.num_experts_per_tok <= self.num_experts:
            raise ConfigError(f"config.json: num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 "
                              f"and num_experts ({self.num_experts})")


# ------------------------------------------------------------------------------------------------
# Key normalisation, one function per family
# ------------------------------------------------------------------------------------------------


def _llama_fields(raw: dict[str, Any], architecture: str) -> dict[str, Any]:
    """Llama, Mistral, Qwen2 and Qwen3 share Llama's keys, with small additions."""
    hidden_size = _get(raw, "hidden_size")
    num_heads = _get(raw, "num_attention_heads")
    num_layers = _get(raw, "num_hidden_layers")
    head_dim = raw.get("head_dim") or hidden_size // num_heads
    is_qwen2 = architecture == "Qwen2ForCausalLM"
    attention_bias = bool(raw.get("attention_bias", False))
    sliding_window = raw.get("sliding_window")
    if architecture in ("Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM") and not raw.get("use_sliding_window"):
        sliding_window = None  # Qwen configs carry a window size but switch it off
    return dict(
        vocab_size=_get(raw, "vocab_size"),
        hidden_size=hidden_size,
        intermediate_size=_get(raw, "intermediate_size"),
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=raw.get("num_key_value_heads") or num_heads,
        head_dim=head_dim,
        max_position_embeddings=_get(raw, "max_position_embeddings"),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        hidden_act=raw.get("hidden_act", "silu"),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope=_phi3_rope(raw) if architecture == "Phi3ForCausalLM" else _rope(raw),
        qkv_bias=is_qwen2 or attention_bias,
        o_bias=attention_bias and not is_qwen2,
        mlp_bias=bool(raw.get("mlp_bias", False)),
        qk_norm=architecture in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM"),
        sliding_window=sliding_window,
        layer_uses_sliding_window=_sliding_layers(raw, architecture, num_layers, sliding_window),
    )


def _sliding_layers(raw: dict[str, Any], architecture: str, num_layers: int,
                    sliding_window: int | None) -> tuple[bool, ...]:
    if sliding_window is None:
        return (False,) * num_layers
    if raw.get("layer_types"):
        return tuple(t == "sliding_attention" for t in raw["layer_types"])
    if architecture in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        first_sliding = raw.get("max_window_layers", num_layers)
        return tuple(i >= first_sliding for i in range(num_layers))
    return (True,) * num_layers


def _gemma_fields(raw: dict[str, Any], architecture: str) -> dict[str, Any]:
    """Gemma 2 and 3 on top of Llama's keys: their defaults, layer pattern, soft-caps and two ropes.

    Without `layer_types`, layer i is global when (i + 1) is a multiple of `sliding_window_pattern`
    (Gemma 2: every second layer; Gemma 3: every sixth). Gemma 3 rotates sliding layers with
    `rope_local_base_freq` and global ones with `rope_theta` (+ `rope_scaling`), and takes no
    attention soft-cap (transformers' Gemma 3 never applies one).
    """
    is_gemma3 = architecture == "Gemma3ForCausalLM"
    nested = raw.get("rope_parameters") or {}
    is_nested = "full_attention" in nested  # Gemma 3's newer style: a rope per layer type
    fields = _llama_fields({**raw, "rope_parameters": None} if is_nested else raw, architecture)
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
        fields["rope"] = _rope({"rope_parameters": {"rope_theta": 1_000_000.0, **full}, **size})
        fields["sliding_rope"] = _rope({"rope_parameters": {"rope_theta": 10_000.0, **local}, **size})
    return fields


def _moe_fields(raw: dict[str, Any], architecture: str, num_layers: int) -> dict[str, Any]:
    """Qwen3-MoE: layer i routes to experts unless it is in `mlp_only_layers` or off `decoder_sparse_step`.
    Mixtral: every layer does, each expert is `intermediate_size` wide, and the top k always renormalise."""
    num_experts = raw.get("num_experts") or raw.get("num_local_experts") or 0  # save_pretrained writes the latter
    if architecture == "MixtralForCausalLM":
        return dict(num_experts=num_experts, num_experts_per_tok=_get(raw, "num_experts_per_tok"),
                    moe_intermediate_size=_get(raw, "intermediate_size"), norm_topk_prob=True,
                    layer_uses_experts=(num_experts > 0,) * num_layers)
    step = raw.get("decoder_sparse_step", 1)
    dense = set(raw.get("mlp_only_layers") or [])
    return dict(
        num_experts=num_experts,
        num_experts_per_tok=_get(raw, "num_experts_per_tok"),
        moe_intermediate_size=_get(raw, "moe_intermediate_size"),
        norm_topk_prob=bool(raw.get("norm_topk_prob", False)),
        layer_uses_experts=tuple(i not in dense and num_experts > 0 and (i + 1) % step == 0 for i in range(num_layers)),
    )


def _gpt2_fields(raw: dict[str, Any]) -> dict[str, Any]:
    hidden_size = _get(raw, "n_embd")
    num_heads = _get(raw, "n_head")
    if raw.get("scale_attn_by_inverse_layer_idx") or raw.get("reorder_and_upcast_attn"):
        raise ConfigError("config.json: GPT-2 options scale_attn_by_inverse_layer_idx and "
                          "reorder_and_upcast_attn are not supported")
    return dict(
        vocab_size=_get(raw, "vocab_size"),
        hidden_size=hidden_size,
        intermediate_size=raw.get("n_inner") or 4 * hidden_size,
        num_hidden_layers=_get(raw, "n_layer"),
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=_get(raw, "n_positions"),
        rms_norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)),
        hidden_act=raw.get("activation_function", "gelu_new"),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        rope=None,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        qk_norm=False,
        sliding_window=None,
        layer_uses_sliding_window=(False,) * _get(raw, "n_layer"),
    )


def _rope(raw: dict[str, Any], allow_partial: bool = False) -> RopeScaling:
    """Merge the older (`rope_theta` + `rope_scaling`) and newer (`rope_parameters`) styles."""
    params = dict(raw.get("rope_parameters") or {})
    params.update(raw.get("rope_scaling") or {})
    rope_type = params.pop("rope_type", None) or params.pop("type", None) or "default"
    params.pop("type", None)
    theta = params.pop("rope_theta", None) or raw.get("rope_theta") or 10000.0
    if rope_type in ("llama3", "yarn", "longrope"):
        params.setdefault(
            "original_max_position_embeddings",
            raw.get("original_max_position_embeddings") or raw.get("max_position_embeddings"),
        )
    if rope_type == "longrope":  # without a factor: how far max_position_embeddings stretches the original
        params["factor"] = params.get("factor") or raw["max_position_embeddings"] / params["original_max_position_embeddings"]
    known = {f.name for f in dataclasses.fields(RopeScaling)}
    unknown = sorted(set(params) - known)
    if params.get("partial_rotary_factor", 1.0) != 1.0 and not allow_partial:
        raise ConfigError("config.json: partial_rotary_factor != 1 is supported for Phi-3 only")
    if unknown:
        raise ConfigError(f"config.json: unknown rope parameters {unknown} for rope type {rope_type!r}")
    clean = {k: v for k, v in params.items() if v is not None}
    if "truncate" in clean:
        clean["truncate"] = bool(clean["truncate"])
    for key in ("short_factor", "long_factor"):
        if key in clean:
            clean[key] = tuple(float(f) for f in clean[key])
    return RopeScaling(rope_type=rope_type, rope_theta=float(theta), **clean)


def _phi3_rope(raw: dict[str, Any]) -> RopeScaling:
    """Phi-3's LongRoPE, named "longrope" (older files: "su"; transformers reads "yarn" as it too), with
    the top-level original_max_position_embeddings (default 4096) over one inside the parameters."""
    params = dict(raw.get("rope_parameters") or {})
    params.update(raw.get("rope_scaling") or {})
    if (params.get("rope_type") or params.get("type")) in ("su", "yarn", "longrope"):
        params.pop("type", None)
        params.update(rope_type="longrope",
                      original_max_position_embeddings=raw.get("original_max_position_embeddings", 4096))
    params.setdefault("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    return _rope({**raw, "rope_parameters": params, "rope_scaling": None}, allow_partial=True)


def _dtype(raw: dict[str, Any]) -> str:
    dtype = raw.get("dtype") or raw.get("torch_dtype") or "float32"
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise ConfigError(f"config.json: unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    return dtype


def _get(raw: dict[str, Any], key: str) -> Any:
    if key not in raw:
        raise ConfigError(f"config.json has no {key!r}")
    return raw[key]


def _id_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _read_json(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise ConfigError(f"{path} not found (is this a Hugging Face checkpoint folder?)")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must contain a JSON object")
    return data
