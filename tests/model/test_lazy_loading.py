"""Loading reads each tensor when the model takes it: no second copy, a progress bar, a startup log."""

from __future__ import annotations

import json
import logging
import re
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import save_file

from pyengine.backend import get_backend
from pyengine.model import CheckpointError, load_model
from pyengine.model.loader import load_tensors

from .checkpoints import llama_config, llama_tensors, write_checkpoint
from .hub_cache import bf16_safetensors

SHAPE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=6, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=512)


def bf16_checkpoint(path, shards: int = 1, dtype: str = "bfloat16"):
    """A bf16 (or fp16) checkpoint of ~2.2M parameters (8.7 MB as fp32), in `shards` files."""
    tensors = llama_tensors(**SHAPE)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(llama_config(dtype=dtype, **SHAPE)))
    names = sorted(tensors)
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors" if shards > 1 else "model.safetensors"
        part = {n: tensors[n] for n in names[k::shards]}
        if dtype == "float16":
            save_file({n: t.astype(np.float16) for n, t in part.items()}, str(path / file))
        else:
            (path / file).write_bytes(bf16_safetensors(part))
        weight_map.update({n: file for n in part})
    if shards > 1:
        (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return path, sum(t.size for t in tensors.values()) * 4


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_nothing_is_read_until_taken_and_peak_memory_stays_near_the_fp32_weights(tmp_path, dtype):
    path, fp32_bytes = bf16_checkpoint(tmp_path / "m", dtype=dtype)
    tracemalloc.start()
    try:
        tensors = load_tensors(path)
        assert "model.layers.0.mlp.up_proj.weight" in tensors and "nope" not in tensors
        assert tracemalloc.get_traced_memory()[0] < 100_000  # the headers only: asking reads nothing
        assert tensors.num_parameters * 4 == fp32_bytes and tensors.stored_dtypes == [dtype]
        del tensors
        tracemalloc.reset_peak()
        model = load_model(path, get_backend("cpu"), progress=False)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.config.num_hidden_layers == 6
    assert current >= fp32_bytes * 0.95  # the model holds its fp32 weights...
    assert peak <= fp32_bytes * 1.3  # ...and loading never held a second copy of them


def test_lazy_and_eager_reads_agree_bit_for_bit(tmp_path):
    path, _ = bf16_checkpoint(tmp_path / "m", shards=3)
    tensors = load_tensors(path)
    name = "model.layers.2.mlp.down_proj.weight"
    expected = llama_tensors(**SHAPE)[name]
    bits = expected.view(np.uint32)
    rounded = (((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16) << 16).view(np.float32)  # bf16 rounding
    np.testing.assert_array_equal(tensors.pop(name), rounded)
    assert name not in tensors and len(tensors) == len(llama_tensors(**SHAPE)) - 1


def test_progress_bar_counts_tensors_by_shard_on_stderr(tmp_path, capsys):
    path, _ = bf16_checkpoint(tmp_path / "m", shards=2)
    load_model(path, get_backend("cpu"), progress=True)
    err = capsys.readouterr().err
    total = len(llama_tensors(**SHAPE))
    assert re.search(rf"Loading shard [12]/2: 100%.* {total}/{total} .*tensor/s", err), err


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys, caplog):
    path, _ = bf16_checkpoint(tmp_path / "m")
    with caplog.at_level(logging.INFO):
        load_model(path, get_backend("cpu"))  # progress=None: stderr is captured, not a terminal
    assert capsys.readouterr().err == ""


def test_the_load_is_logged_with_architecture_parameters_and_dtypes(tmp_path, caplog):
    path, fp32_bytes = bf16_checkpoint(tmp_path / "m")
    with caplog.at_level(logging.INFO, logger="pyengine.model"):
        load_model(path, get_backend("cpu"), progress=False)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"LlamaForCausalLM, {fp32_bytes / 4 / 1e6:.1f}M parameters stored as bfloat16, computed in float32" in text
    assert "Loaded the weights in " in text


def test_a_tensor_past_the_end_of_its_file_is_named(tmp_path):
    path = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config())
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="does not fit its offsets"):
        load_model(path, get_backend("cpu"))


def test_the_serve_startup_line_gives_kv_tokens_and_concurrency():
    from pyengine import EngineConfig
    from pyengine.async_engine import AsyncEngine
    from pyengine_server.cli import capacity_summary

    from .hub_cache import LLAMA_FIXTURE

    engine = AsyncEngine(EngineConfig(model=str(LLAMA_FIXTURE), num_kv_blocks=40, block_size=16))
    try:
        line = capacity_summary(engine, "tiny")
    finally:
        engine.shutdown()
    assert line == ("Serving tiny (LlamaForCausalLM, float32): KV cache of 640 tokens (40 blocks of 16); "
                    "maximum concurrency for 128 tokens per request: 5.00x")
