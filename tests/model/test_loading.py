"""Checkpoint loading: key styles, ties, shards, dtypes, and clear errors for bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pyengine.backend import get_backend
from pyengine.model import CheckpointError, ConfigError, ModelConfig, load_model
from pyengine.model.loader import load_tensors

from .checkpoints import llama_config, llama_tensors, to_bf16_bits, write_checkpoint
from pyengine.single_sequence import SingleSequence

PROMPT = [3, 7, 11, 5, 2, 9]


def _logits(path):
    backend = get_backend("cpu")
    return backend.to_host(SingleSequence(load_model(path, backend), block_size=4).run(PROMPT))


def test_older_and_newer_config_keys_load_the_same_model(tmp_path):
    tensors = llama_tensors()
    old = write_checkpoint(tmp_path / "old", dict(tensors), llama_config(newer_keys=False))
    new = write_checkpoint(tmp_path / "new", dict(tensors), llama_config(newer_keys=True))
    assert ModelConfig.from_pretrained(old).rope == ModelConfig.from_pretrained(new).rope
    np.testing.assert_array_equal(_logits(old), _logits(new))


def test_rope_theta_is_read_from_both_styles(tmp_path):
    old = ModelConfig.from_dict(llama_config(rope_theta=5e5))
    new = ModelConfig.from_dict(llama_config(newer_keys=True, rope_parameters={"rope_type": "llama3",
        "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}))
    assert old.rope.rope_theta == new.rope.rope_theta == 5e5
    assert new.rope.rope_type == "llama3" and new.rope.original_max_position_embeddings == 32


def test_sharded_checkpoint_equals_single_file(tmp_path):
    tensors = llama_tensors()
    single = write_checkpoint(tmp_path / "single", dict(tensors), llama_config())
    sharded = write_checkpoint(tmp_path / "sharded", dict(tensors), llama_config(), shards=3)
    np.testing.assert_array_equal(_logits(single), _logits(sharded))


def test_tied_embeddings_keep_one_table_for_lookup_and_output_head(tmp_path):
    tensors = llama_tensors(tied=True)
    table = np.array(tensors["model.embed_tokens.weight"])  # [V, D]
    path = write_checkpoint(tmp_path / "tied", tensors, llama_config(tied=True))
    model = load_model(path, get_backend("cpu"))
    assert model.embed_tokens is None  # the [D, V] head is the only copy
    np.testing.assert_array_equal(model.lm_head, table.T)
    ids = np.array([3, 0, 3, 7])
    np.testing.assert_array_equal(model.embed(ids), table[ids])  # lookups read its columns


def test_untied_checkpoint_without_lm_head_is_an_error(tmp_path):
    path = write_checkpoint(tmp_path / "m", llama_tensors(tied=True), llama_config(tied=False))
    with pytest.raises(CheckpointError, match="lm_head"):
        load_model(path, get_backend("cpu"))


def test_bf16_and_fp16_weights_upcast_exactly_to_float32(tmp_path):
    tensors = llama_tensors()
    fp16 = {n: t.astype(np.float16) for n, t in tensors.items()}
    write_checkpoint(tmp_path / "fp16", fp16, llama_config(dtype="float16"))
    loaded = load_tensors(tmp_path / "fp16")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert loaded[name].dtype == np.float32
    np.testing.assert_array_equal(loaded[name], fp16[name].astype(np.float32))
    # bf16: write raw bit patterns with the BF16 dtype tag by hand (numpy has no bf16 type)
    bits = to_bf16_bits(tensors[name])
    _write_raw_safetensors(tmp_path / "bf16.safetensors", name, bits, "BF16")
    from pyengine.model.loader import LazyTensors
    upcast = LazyTensors([tmp_path / "bf16.safetensors"], progress=False)[name]
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(upcast, expected)
    assert np.abs(upcast - tensors[name]).max() < 1e-2  # bf16 keeps ~3 significant digits


def _write_raw_safetensors(path, name, array, dtype_tag):
    data = array.tobytes()
    header = json.dumps({name: {"dtype": dtype_tag, "shape": list(array.shape), "data_offsets": [0, len(data)]}})
    header_bytes = header.encode() + b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + data)


# -- bad input: each is a clear exception naming the problem ------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_model(tmp_path / "nope", get_backend("cpu"))


def test_missing_config(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError, match="config.json not found"):
        load_model(tmp_path / "m", get_backend("cpu"))


def test_corrupt_config(tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    (path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(path, get_backend("cpu"))


def test_unknown_architecture_lists_the_supported_ones():
    with pytest.raises(ConfigError, match="supported: LlamaForCausalLM, MistralForCausalLM"):
        ModelConfig.from_dict(llama_config(architectures=["MambaForCausalLM"]))


def test_missing_weights(tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(llama_config()))
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(path, get_backend("cpu"))


def test_corrupt_safetensors(tmp_path):
    path = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config())
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="corrupt|truncated|not a readable"):
        load_model(path, get_backend("cpu"))


def test_missing_shard(tmp_path):
    path = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config(), shards=2)
    (path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(path, get_backend("cpu"))


def test_tensor_of_the_wrong_shape_is_named(tmp_path):
    tensors = llama_tensors()
    tensors["model.layers.1.mlp.up_proj.weight"] = np.zeros((31, 16), np.float32)
    path = write_checkpoint(tmp_path / "m", tensors, llama_config())
    with pytest.raises(CheckpointError, match=r"model.layers.1.mlp.up_proj.weight.*\[31, 16\].*\[32, 16\]"):
        load_model(path, get_backend("cpu"))


def test_missing_tensor_is_named(tmp_path):
    tensors = llama_tensors()
    del tensors["model.layers.0.self_attn.k_proj.weight"]
    path = write_checkpoint(tmp_path / "m", tensors, llama_config())
    with pytest.raises(CheckpointError, match="model.layers.0.self_attn.k_proj.weight"):
        load_model(path, get_backend("cpu"))


def test_heads_must_divide(tmp_path):
    with pytest.raises(ConfigError, match="multiple of num_key_value_heads"):
        ModelConfig.from_dict(llama_config(num_key_value_heads=3))


def test_generation_config_eos_list_is_merged():
    config = ModelConfig.from_dict(llama_config(eos_token_id=2), {"eos_token_id": [2, 7]})
    assert config.eos_token_ids == (2, 7)
