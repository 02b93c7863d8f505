"""Hugging Face hub caches built on disk for tests: `HF_HOME/hub/models--org--name/snapshots/REV/`.

The layout is the one `huggingface_hub` writes and reads: `refs/main` holds the commit the
branch points at, and `snapshots/<commit>/` holds the files. Tests point HF_HOME at a temporary
folder and set HF_HUB_OFFLINE=1, so loading by id reads only these files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .checkpoints import llama_tensors, to_bf16_bits

ROOT = Path(__file__).resolve().parents[2]
LLAMA_FIXTURE = ROOT / "tests" / "fixtures" / "parity" / "llama"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

# HuggingFaceTB/SmolLM2-135M-Instruct's config.json, except for the marked sizes: the real model
# (hidden 576, 30 layers, vocabulary 49,152) is shrunk to a few thousand parameters with the
# same architecture, head layout (9 query heads sharing 3 KV heads), rope, norms and tied
# embeddings; the tokenizer is the Llama test fixture's (ChatML special tokens 297-299).
SMOLLM2_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 298, "eos_token_id": 299,  # the real ones are 1 and 2 in its own vocabulary
    "hidden_act": "silu",
    "hidden_size": 72,  # real: 576 (9 heads of 64); here 9 heads of 8
    "initializer_range": 0.041666666666666664,
    "intermediate_size": 192,  # real: 1536
    "is_llama_config": True, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 9, "num_hidden_layers": 2,  # real: 30 layers
    "num_key_value_heads": 3, "pad_token_id": 299, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_interleaved": False, "rope_scaling": None, "rope_theta": 100000, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": True,
    "vocab_size": 300,  # real: 49152
}


def add_snapshot(hf_home: Path, repo_id: str, files: dict[str, Path | bytes | str], revision: str,
                 branch: str | None = "main") -> Path:
    """Lay `files` (name -> source file or content) out as snapshot `revision` of `repo_id`.

    `branch` (when given) is pointed at `revision` through refs/BRANCH. Returns the snapshot folder.
    """
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, target)
        elif isinstance(source, bytes):
            target.write_bytes(source)
        else:
            target.write_text(source)
    if branch is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / branch).write_text(revision)
    return snapshot


def folder_files(folder: Path) -> dict[str, Path | bytes | str]:
    return {f.name: f for f in sorted(folder.iterdir()) if f.is_file()}


def bf16_safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    """A safetensors file holding `tensors` as bfloat16 (as real checkpoints ship; numpy has no bf16)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        bits = to_bf16_bits(tensors[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(bits)]}
        blobs.append(bits)
        offset += len(bits)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + b"".join(blobs)


def smollm2_files(seed: int = 0) -> dict[str, Path | bytes | str]:
    """The tiny random-weight stand-in for SmolLM2-135M-Instruct (see SMOLLM2_CONFIG), bf16 weights."""
    c = SMOLLM2_CONFIG
    tensors = llama_tensors(seed, tied=True, hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
                            num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                            num_key_value_heads=c["num_key_value_heads"], vocab_size=c["vocab_size"])
    return {
        "config.json": json.dumps(c),
        "generation_config.json": json.dumps({"bos_token_id": 298, "eos_token_id": 299, "pad_token_id": 299}),
        "model.safetensors": bf16_safetensors(tensors),
        "tokenizer.json": LLAMA_FIXTURE / "tokenizer.json",
        "tokenizer_config.json": LLAMA_FIXTURE / "tokenizer_config.json",
    }
