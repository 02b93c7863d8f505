"""Write tiny random-weight Llama checkpoints for loader tests (no transformers needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

TINY = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=40, max_position_embeddings=64)


def llama_tensors(seed: int = 0, tied: bool = False, **shape) -> dict[str, np.ndarray]:
    s = {**TINY, **shape}
    rng = np.random.default_rng(seed)
    d, f, v = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
    dh = d // s["num_attention_heads"]
    kv = s["num_key_value_heads"] * dh

    def w(*shape_):
        return rng.normal(0, 0.2, shape_).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": 1 + w(d)}
    if not tied:
        tensors["lm_head.weight"] = w(v, d)
    for i in range(s["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": 1 + w(d), p + "post_attention_layernorm.weight": 1 + w(d),
            p + "self_attn.q_proj.weight": w(d, d), p + "self_attn.k_proj.weight": w(kv, d),
            p + "self_attn.v_proj.weight": w(kv, d), p + "self_attn.o_proj.weight": w(d, d),
            p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
            p + "mlp.down_proj.weight": w(d, f),
        })
    return tensors


def llama_config(newer_keys: bool = False, tied: bool = False, dtype: str = "float32", **extra) -> dict:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **TINY,
              "rms_norm_eps": 1e-5, "tie_word_embeddings": tied, "eos_token_id": 2, "bos_token_id": 1}
    if newer_keys:
        config.update(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, dtype=dtype)
    else:
        config.update(rope_theta=10000.0, rope_scaling=None, torch_dtype=dtype)
    config.update(extra)
    return config


def write_checkpoint(path: Path, tensors: dict, config: dict, shards: int = 1) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    if shards == 1:
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
        return path
    names = sorted(tensors)
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[k::shards]}
        save_file(part, str(path / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


def to_bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), rounding to nearest even, as torch does."""
    bits = array.astype(np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)
