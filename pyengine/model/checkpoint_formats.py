"""What only some checkpoints need from the loader: a sharded index, bfloat16 tensors, a progress bar.

loader.py loads this module when a checkpoint has `model.safetensors.index.json` (its weights in
several files), a tensor stored as BF16, or when a load shows its progress (stderr is a terminal
and INFO is logged, or `progress=True`). Host-side file I/O, so it imports numpy by name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np  # host arrays: bf16 bits widened into float32

from pyengine.model.loader import CheckpointError


def sharded_files(index: Path) -> list[Path]:
    """The shards `model.safetensors.index.json` lists, in order of first mention."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index} is not a valid safetensors index: {exc}") from exc
    files = [index.parent / name for name in dict.fromkeys(weight_map.values())]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{index} lists shards that are missing: {', '.join(missing)}")
    return files


def widen_bfloat16(raw: Any, dtype: str) -> Any:
    """Stored bf16 bits (uint16 [...]) -> a fresh array of `dtype`, exactly: bf16 is the top half of a float32."""
    out = np.empty(raw.shape, dtype=np.float32)
    bits = out.view(np.uint32)
    bits[...] = raw  # widen in place
    bits <<= 16
    return out if dtype == "float32" else out.astype(dtype)


class ProgressBar:
    """A tqdm bar on stderr counting the tensors taken, named after the shard they come from."""

    def __init__(self, total: int, num_files: int):
        from tqdm import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415

        self.num_files = num_files
        self.bar = tqdm(total=total, unit="tensor", file=sys.stderr, desc="Loading", dynamic_ncols=True)

    def took(self, file_index: int, done: bool) -> None:
        """One more tensor, from file `file_index`; `done`: it was the last."""
        self.bar.set_description(f"Loading shard {file_index + 1}/{self.num_files}", refresh=False)
        self.bar.update(1)
        if done:
            self.bar.close()

    def close(self) -> None:
        self.bar.close()
