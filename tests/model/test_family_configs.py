"""config.json key styles of Gemma 2, Gemma 3, Phi-3, Qwen3-MoE and Mixtral, as the Hub spells them, normalised alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyengine.model import ConfigError, ModelConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def _raw(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text())


def test_gemma3_older_and_newer_keys_give_the_same_config():
    old = _raw("gemma3")  # rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern
    new = {k: v for k, v in old.items()
           if k not in ("rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern")}
    new["layer_types"] = ["sliding_attention", "full_attention", "sliding_attention"]
    new["rope_parameters"] = {
        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
    }
    assert ModelConfig.from_dict(old) == ModelConfig.from_dict(new)
    config = ModelConfig.from_dict(old)
    assert (config.rope.rope_type, config.rope.factor, config.rope.rope_theta) == ("linear", 2.0, 1e6)
    assert (config.sliding_rope.rope_type, config.sliding_rope.rope_theta) == ("default", 1e4)
    assert config.attn_logit_softcapping is None and config.query_pre_attn_scalar == 32


def test_gemma_layer_patterns_and_defaults_without_layer_types():
    gemma3 = {k: v for k, v in _raw("gemma3").items() if k != "sliding_window_pattern"}
    gemma3["num_hidden_layers"] = 12
    config = ModelConfig.from_dict(gemma3)  # transformers' default pattern: every sixth layer global
    assert [i for i, s in enumerate(config.layer_uses_sliding_window) if not s] == [5, 11]
    gemma2 = {k: v for k, v in _raw("gemma2").items()
              if k not in ("layer_types", "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar")}
    gemma2["num_hidden_layers"] = 4
    config = ModelConfig.from_dict(gemma2)  # Gemma 2: every second layer global, caps 50 and 30
    assert config.layer_uses_sliding_window == (True, False, True, False)
    assert (config.attn_logit_softcapping, config.final_logit_softcapping, config.query_pre_attn_scalar) == (50.0, 30.0, 256)
    assert config.hidden_act == "gelu_pytorch_tanh" and config.tie_word_embeddings


def test_phi3_longrope_key_styles():
    raw = _raw("phi3-longrope")
    config = ModelConfig.from_dict(raw)
    assert config.rope.rope_type == "longrope" and config.rope.original_max_position_embeddings == 16
    assert config.rope.factor == 64 / 16  # max_position_embeddings / original, as transformers derives it
    su = dict(raw, rope_scaling=dict(raw["rope_scaling"], type="su"))  # the oldest Phi-3 files
    assert ModelConfig.from_dict(su) == config
    short_only = dict(raw, rope_scaling=None)  # Phi-3-mini-4k: plain rope
    assert ModelConfig.from_dict(short_only).rope.rope_type == "default"
    with pytest.raises(ConfigError, match="short_factor and long_factor of 8"):
        ModelConfig.from_dict(dict(raw, rope_scaling=dict(raw["rope_scaling"], long_factor=[1.0, 2.0])))
    partial = ModelConfig.from_dict(_raw("phi3-partial-rotary"))  # Phi-4-mini's top-level key
    assert partial.rope.partial_rotary_factor == 0.5 and len(partial.rope.short_factor) == 16 * 0.5 / 2
    with pytest.raises(ConfigError, match="short_factor and long_factor of 8 numbers"):
        ModelConfig.from_dict(dict(_raw("phi3-partial-rotary"), partial_rotary_factor=1.0))
    with pytest.raises(ConfigError, match="partial_rotary_factor != 1 is supported for Phi-3 only"):
        ModelConfig.from_dict(dict(_raw("llama3-rope"), rope_scaling=dict(_raw("llama3-rope")["rope_scaling"],
                                                                          partial_rotary_factor=0.5)))


def test_qwen3_moe_expert_layers_and_both_expert_count_keys():
    raw = _raw("qwen3-moe")
    config = ModelConfig.from_dict(raw)  # save_pretrained writes num_local_experts
    assert (config.num_experts, config.num_experts_per_tok, config.norm_topk_prob) == (8, 2, True)
    assert config.layer_uses_experts == (True, False, True) and config.qk_norm
    hub = {k: v for k, v in raw.items() if k != "num_local_experts"}
    assert ModelConfig.from_dict(dict(hub, num_experts=8)) == config  # the Hub's Qwen3-MoE files
    every_second = ModelConfig.from_dict(dict(raw, mlp_only_layers=[], decoder_sparse_step=2))
    assert every_second.layer_uses_experts == (False, True, False)
    with pytest.raises(ConfigError, match="num_experts_per_tok"):
        ModelConfig.from_dict(dict(raw, num_experts_per_tok=9))


def test_mixtral_routes_every_layer_to_intermediate_size_experts_and_renormalises():
    config = ModelConfig.from_dict(_raw("mixtral"))
    assert (config.family, config.num_experts, config.num_experts_per_tok) == ("moe", 4, 2)
    assert config.moe_intermediate_size == config.intermediate_size == 32
    assert config.norm_topk_prob and config.layer_uses_experts == (True, True) and not config.qk_norm


@pytest.mark.parametrize("architecture", ["Gemma3ForConditionalGeneration", "DeepseekV3ForCausalLM"])
def test_unsupported_architectures_get_a_clear_error(architecture):
    with pytest.raises(ConfigError, match="unsupported architecture .*supported: .*Gemma3ForCausalLM"):
        ModelConfig.from_dict(dict(_raw("gemma3"), architectures=[architecture]))


def test_unsupported_gemma_options_are_errors():
    with pytest.raises(ConfigError, match="use_bidirectional_attention"):
        ModelConfig.from_dict(dict(_raw("gemma3"), use_bidirectional_attention=True))
    with pytest.raises(ConfigError, match="unsupported activation 'gelu_fast'"):
        ModelConfig.from_dict(dict(_raw("gemma2"), hidden_activation="gelu_fast"))
