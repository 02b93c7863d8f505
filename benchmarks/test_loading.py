"""Loading a real-size checkpoint: time, and peak RSS while loading against the fp32 weight size.

The checkpoint is a random-weight bf16 model with SmolLM2-135M's shapes (134.5M parameters,
538 MB as fp32), written as two safetensors shards, as the hub ships such models; set
PYENGINE_BENCH_CHECKPOINT=/path/to/folder to measure a checkpoint of your own instead. The
load runs in a fresh process, whose peak RSS (VmHWM; `ru_maxrss` would carry the parent's peak
over through fork and exec) is the load's; the RSS it started from (Python, numpy, pyengine
imported) is subtracted.

Target: the load adds at most 1.3x the fp32 weights to the process (no second full copy).

    python -m pytest benchmarks/test_loading.py -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import LIMITS, RATIOS
from smollm2 import SMOLLM2_135M, random_tensors

LIMITS.append(("load peak RSS / fp32 weights", "<=", 1.3))
RATIOS.append(("load peak RSS / fp32 weights", "load peak RSS added MB", "fp32 weights MB", None))

MEASURE = r"""
import json, sys, time
from pyengine.backend import get_backend
from pyengine.model import load_model

def rss_mb(field="VmRSS:"):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024

before = rss_mb()
start = time.perf_counter()
model = load_model(sys.argv[1], get_backend("cpu"), progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "before_mb": before, "after_mb": rss_mb(),
                  "peak_mb": rss_mb("VmHWM:")}))
"""


def _bf16_bytes(array: np.ndarray) -> bytes:
    bits = array.astype(np.float32).view(np.uint32)
    return ((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16).astype(np.uint16).tobytes()


def write_bf16_checkpoint(path: Path, raw: dict, shards: int = 2) -> int:
    """Write random weights of `raw`'s shapes as bf16 shards; returns their size as fp32 bytes."""
    tensors = random_tensors(raw)
    fp32_bytes = sum(t.nbytes for t in tensors.values())
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**raw, "torch_dtype": "bfloat16"}))
    names = sorted(tensors)
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        header, offset, blobs = {}, 0, []
        for name in names[k::shards]:
            blob = _bf16_bytes(tensors.pop(name))
            header[name] = {"dtype": "BF16", "shape": list(random_shape(raw, name)), "data_offsets": [offset, offset + len(blob)]}
            blobs.append(blob)
            offset += len(blob)
            weight_map[name] = file
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)
        with open(path / file, "wb") as handle:
            handle.write(len(encoded).to_bytes(8, "little") + encoded)
            for blob in blobs:
                handle.write(blob)
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return fp32_bytes


def random_shape(raw: dict, name: str) -> tuple[int, ...]:
    d, f, v = raw["hidden_size"], raw["intermediate_size"], raw["vocab_size"]
    kv = raw["num_key_value_heads"] * (d // raw["num_attention_heads"])
    shapes = {"embed_tokens": (v, d), "q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, d),
              "gate_proj": (f, d), "up_proj": (f, d), "down_proj": (d, f)}
    return next((s for key, s in shapes.items() if f".{key}." in name or name.startswith(f"model.{key}")), (d,))


def test_load_time_and_peak_rss(tmp_path, record):
    path = os.environ.get("PYENGINE_BENCH_CHECKPOINT")
    if path is None:
        fp32_bytes = write_bf16_checkpoint(tmp_path / "smollm2-135m-bf16", SMOLLM2_135M)
        path = str(tmp_path / "smollm2-135m-bf16")
    else:
        from pyengine.model.loader import load_tensors
        fp32_bytes = load_tensors(path, progress=False).num_parameters * 4
    done = subprocess.run([sys.executable, "-c", MEASURE, path], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    added = result["peak_mb"] - result["before_mb"]
    record("load s", result["seconds"])
    record("load peak RSS added MB", added)
    record("fp32 weights MB", fp32_bytes / 2**20)
    record("load peak RSS / fp32 weights", added / (fp32_bytes / 2**20))
    print(f"\n{path}: loaded in {result['seconds']:.2f} s; RSS {result['before_mb']:.0f} MB before, "
          f"peak {result['peak_mb']:.0f} MB (+{added:.0f} MB), fp32 weights {fp32_bytes / 2**20:.0f} MB: "
          f"{added / (fp32_bytes / 2**20):.2f}x")
