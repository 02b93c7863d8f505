"""A random-weight model with SmolLM2-135M's shapes, built in memory (no download)."""

from __future__ import annotations

import numpy as np

from pyengine.backend import get_backend
from pyengine.model.config import ModelConfig
from pyengine.model.llama import LlamaModel

SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
    "tie_word_embeddings": True, "torch_dtype": "float32", "eos_token_id": 0, "bos_token_id": 0,
}


def random_tensors(raw: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, f, v = raw["hidden_size"], raw["intermediate_size"], raw["vocab_size"]
    dh = d // raw["num_attention_heads"]
    kv = raw["num_key_value_heads"] * dh

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    tensors = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": np.ones(d, np.float32)}
    for i in range(raw["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": np.ones(d, np.float32),
            p + "post_attention_layernorm.weight": np.ones(d, np.float32),
            p + "self_attn.q_proj.weight": w(d, d), p + "self_attn.k_proj.weight": w(kv, d),
            p + "self_attn.v_proj.weight": w(kv, d), p + "self_attn.o_proj.weight": w(d, d),
            p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
            p + "mlp.down_proj.weight": w(d, f),
        })
    return tensors


def build_model(device: str = "cpu", raw: dict | None = None) -> LlamaModel:
    raw = raw or SMOLLM2_135M
    config = ModelConfig.from_dict(raw)
    return LlamaModel.from_tensors(config, random_tensors(raw), get_backend(device))


def weight_bytes_per_token(model: LlamaModel) -> int:
    """Bytes of weights a decode step reads: every layer matrix, the norms and the lm_head."""
    total = model.lm_head.nbytes + model.norm.nbytes
    for layer in model.layers:
        total += sum(getattr(layer, f).nbytes for f in layer.__dataclass_fields__
                     if getattr(layer, f) is not None)
    return total
