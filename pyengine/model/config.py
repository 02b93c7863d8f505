"""ModelConfig: the one place that reads a checkpoint's config.json.

Hugging Face checkpoints spell the same hyperparameter in several ways: older files say
`rope_theta`, `rope_scaling` and `torch_dtype`; newer ones say `rope_parameters` and `dtype`;
GPT-2 says `n_embd`, `n_layer`, `n_head`. `ModelConfig.from_pretrained` normalises all of them
into one frozen dataclass with Hugging Face's (Llama) names, so the model code never parses
JSON and a reader can quote config.json directly. `generation_config.json` is read here too,
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
    "GPT2LMHeadModel": "gpt2",
}
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")
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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The hyperparameters of one checkpoint, with Hugging Face's names."""

    architecture: str
    family: str  # "llama" (Llama, Mistral, Qwen2, Qwen3) or "gpt2"
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
        fields = _gpt2_fields(raw) if family == "gpt2" else _llama_fields(raw, architecture)
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
        if self.rope is not None and self.rope.rope_type not in ROPE_TYPES:
            raise ConfigError(
                f"config.json: unsupported rope type {self.rope.rope_type!r}; supported: "
                + ", ".join(ROPE_TYPES)
            )


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
    if architecture in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and not raw.get("use_sliding_window"):
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
        rope=_rope(raw),
        qkv_bias=is_qwen2 or attention_bias,
        o_bias=attention_bias and not is_qwen2,
        mlp_bias=bool(raw.get("mlp_bias", False)),
        qk_norm=architecture == "Qwen3ForCausalLM",
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


def _rope(raw: dict[str, Any]) -> RopeScaling:
    """Merge the older (`rope_theta` + `rope_scaling`) and newer (`rope_parameters`) styles."""
    params = dict(raw.get("rope_parameters") or {})
    params.update(raw.get("rope_scaling") or {})
    rope_type = params.pop("rope_type", None) or params.pop("type", None) or "default"
    params.pop("type", None)
    theta = params.pop("rope_theta", None) or raw.get("rope_theta") or 10000.0
    if rope_type in ("llama3", "yarn"):
        params.setdefault(
            "original_max_position_embeddings",
            raw.get("original_max_position_embeddings") or raw.get("max_position_embeddings"),
        )
    known = {f.name for f in dataclasses.fields(RopeScaling)}
    unknown = sorted(set(params) - known - {"partial_rotary_factor"})
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ConfigError("config.json: partial_rotary_factor != 1 is not supported")
    if unknown:
        raise ConfigError(f"config.json: unknown rope parameters {unknown} for rope type {rope_type!r}")
    params.pop("partial_rotary_factor", None)
    clean = {k: v for k, v in params.items() if v is not None}
    if "truncate" in clean:
        clean["truncate"] = bool(clean["truncate"])
    return RopeScaling(rope_type=rope_type, rope_theta=float(theta), **clean)


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
