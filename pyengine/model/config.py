"""ModelConfig: the one place that reads a checkpoint's config.json (and generation_config.json: its eos ids).

Hub files spell the same hyperparameter in several ways (`rope_theta` + `rope_scaling` or
`rope_parameters`, `torch_dtype` or `dtype`); `ModelConfig.from_pretrained` normalises them into one
frozen dataclass with Hugging Face's (Llama) names, so model code never parses JSON. This module reads
the Llama family's keys and plain rope; the keys only other checkpoints have load with the first such
config: the other families' in family_configs.py, rope scaling's and Phi-3's in rope_scaling.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pyengine import settings

# architectures value in config.json -> the family that implements it (see model/__init__.py). Phi-3 stores
# q/k/v and gate/up fused and may use LongRoPE; of Gemma 3 only the text model (Gemma 3 1B) is supported.
SUPPORTED_ARCHITECTURES = {
    **dict.fromkeys(("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                     "Phi3ForCausalLM"), "llama"),
    "GPT2LMHeadModel": "gpt2", "Gemma2ForCausalLM": "gemma", "Gemma3ForCausalLM": "gemma",
    "Qwen3MoeForCausalLM": "moe", "MixtralForCausalLM": "moe",
}
ACTIVATIONS = ("silu", "gelu_new", "gelu_pytorch_tanh")  # what layers.ACTIVATIONS implements
DTYPES = ("float32", "float16", "bfloat16")
PHI3_ROPE = ("pyengine.model.rope_scaling", "phi3_rope")  # LongRoPE and partial rotation, loaded by a Phi-3 config


class ConfigError(ValueError):
    """config.json (or generation_config.json) is missing, malformed or unsupported."""


@dataclasses.dataclass(frozen=True)
class Rope:
    """Rotary embedding parameters, from `rope_theta` or `rope_parameters` (rope_scaling.RopeScaling
    adds the parameters of a long-context variant)."""

    rope_type: str = "default"
    rope_theta: float = 10000.0
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
    rope: Rope | None  # None for GPT-2 (learned positions)
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

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ModelConfig":
        """Read `path/config.json` (+ `generation_config.json` if present) and normalise it. Raises
        ConfigError: a missing or malformed file, an unsupported architecture, bad values."""
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
            raise ConfigError(f"unsupported architecture {architectures!r} in config.json; supported: "
                              + ", ".join(SUPPORTED_ARCHITECTURES))
        architecture = supported[0]
        family = SUPPORTED_ARCHITECTURES[architecture]
        if family == "llama":
            fields, config_class = llama_fields(raw, architecture), cls
        else:  # a FamilyConfig: ModelConfig with the fields of Gemma and the mixtures of experts
            from pyengine.model.family_configs import FamilyConfig, family_fields  # noqa: PLC0415  (their first config)
            fields, config_class = family_fields(raw, architecture, family), FamilyConfig
        eos = _id_list(raw.get("eos_token_id")) + _id_list(generation.get("eos_token_id"))
        config = config_class(architecture=architecture, family=family, dtype=_dtype(raw),
                              bos_token_id=raw.get("bos_token_id", generation.get("bos_token_id")),
                              eos_token_ids=tuple(dict.fromkeys(eos)),  # unique, order kept
                              generation_config=dict(generation), **fields)
        config._validate()
        return config

    def _validate(self) -> None:
        positive = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "max_position_embeddings")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config.json: {name} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"config.json: num_attention_heads ({self.num_attention_heads}) must be a multiple "
                              f"of num_key_value_heads ({self.num_key_value_heads})")
        if self.rope is not None and self.rope.rope_type != "default":
            from pyengine.model.rope_scaling import check_rope  # noqa: PLC0415
            check_rope(self.rope, self.head_dim)
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"config.json: unsupported activation {self.hidden_act!r}; supported: "
                              + ", ".join(ACTIVATIONS))


def llama_fields(raw: dict[str, Any], architecture: str) -> dict[str, Any]:
    """Llama, Mistral, Qwen2 and Qwen3 share Llama's keys, with small additions."""
    hidden_size = required(raw, "hidden_size")
    num_heads = required(raw, "num_attention_heads")
    num_layers = required(raw, "num_hidden_layers")
    head_dim = raw.get("head_dim") or hidden_size // num_heads
    is_qwen2 = architecture == "Qwen2ForCausalLM"
    attention_bias = bool(raw.get("attention_bias", False))
    window, sliding_layers = None, (False,) * num_layers
    if raw.get("sliding_window") is not None:  # Mistral's, or Qwen's (maybe switched off): family_configs.py
        from pyengine.model.family_configs import sliding_window  # noqa: PLC0415
        window, sliding_layers = sliding_window(raw, architecture, num_layers)
    return dict(  # sizes; then norm, activation, embeddings, rope; then the attention's variants
        vocab_size=required(raw, "vocab_size"), hidden_size=hidden_size, head_dim=head_dim,
        intermediate_size=required(raw, "intermediate_size"), num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=raw.get("num_key_value_heads") or num_heads,
        max_position_embeddings=required(raw, "max_position_embeddings"),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)), hidden_act=raw.get("hidden_act", "silu"),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope=parse_rope(raw) if architecture != "Phi3ForCausalLM" else settings.load(*PHI3_ROPE)(raw),
        qkv_bias=is_qwen2 or attention_bias, o_bias=attention_bias and not is_qwen2,
        mlp_bias=bool(raw.get("mlp_bias", False)), qk_norm=architecture in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM"),
        sliding_window=window, layer_uses_sliding_window=sliding_layers)


def parse_rope(raw: dict[str, Any], allow_partial: bool = False) -> Rope:
    """Merge the older (`rope_theta` + `rope_scaling`) and newer (`rope_parameters`) styles."""
    params = dict(raw.get("rope_parameters") or {})
    params.update(raw.get("rope_scaling") or {})
    rope_type = params.pop("rope_type", None) or params.pop("type", None) or "default"
    params.pop("type", None)
    theta = float(params.pop("rope_theta", None) or raw.get("rope_theta") or 10000.0)
    if rope_type == "default" and not params:
        return Rope(rope_theta=theta)
    from pyengine.model.rope_scaling import rope_scaling  # noqa: PLC0415  (the first scaled rope loads it)
    return rope_scaling(raw, rope_type, theta, params, allow_partial)


def _dtype(raw: dict[str, Any]) -> str:
    dtype = raw.get("dtype") or raw.get("torch_dtype") or "float32"
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise ConfigError(f"config.json: unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    return dtype


def required(raw: dict[str, Any], key: str) -> Any:
    if key not in raw:
        raise ConfigError(f"config.json has no {key!r}")
    return raw[key]


def _id_list(value: Any) -> list[int]:
    return [] if value is None else [int(v) for v in value] if isinstance(value, list) else [int(value)]


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
