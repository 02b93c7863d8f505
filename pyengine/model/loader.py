"""Reading a checkpoint's tensors from safetensors files into host (numpy) arrays.

Host-side file I/O, so it imports numpy by name (`tests/test_architecture.py` lists the
modules of `model/` allowed to); the weights go to the device afterwards, in `from_tensors`.

Handles a single `model.safetensors` or shards listed in `model.safetensors.index.json`, and
float32/float16/bfloat16 tensors. numpy has no bfloat16: a bf16 value is the top 16 bits of a
float32, so its bits are read as uint16 and shifted into float32 exactly (`float32_from_bfloat16`).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np  # host arrays: tensors as read from the files
from safetensors import SafetensorError, safe_open


def float32_from_bfloat16(raw: np.ndarray) -> np.ndarray:
    """Host: bf16 bit patterns stored as uint16 -> float32 (exact; bf16 is fp32's top half)."""
    if raw.dtype != np.uint16:
        raise TypeError(f"expected uint16 bf16 bit patterns, got {raw.dtype}")
    return (raw.astype(np.uint32) << 16).view(np.float32)


class CheckpointError(ValueError):
    """A weight file is missing, corrupt, or does not hold what the config promises."""


def checkpoint_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder, in shard order."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index} is not a valid safetensors index: {exc}") from exc
        files = [path / name for name in dict.fromkeys(weight_map.values())]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} lists shards that are missing: {', '.join(missing)}")
        return files
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    raise CheckpointError(
        f"no model.safetensors or model.safetensors.index.json in {path} "
        "(only safetensors checkpoints are supported)"
    )


def load_tensors(path: str | Path, dtype: str = "float32") -> dict[str, Any]:
    """All tensors of the checkpoint at `path`, by name, as host numpy arrays of `dtype`.

    `dtype` is "float32" (the numpy path: everything is upcast) or "float16" (the cupy path
    keeps half precision; bf16 weights are then rounded to fp16).
    """
    tensors: dict[str, Any] = {}
    for file in checkpoint_files(Path(path)):
        for name, array in _read_file(file).items():
            tensors[name] = array.astype(dtype, copy=False)
    return tensors


def _read_file(file: Path) -> dict[str, Any]:
    header = _read_header(file)
    out: dict[str, Any] = {}
    try:
        with safe_open(str(file), framework="numpy") as handle:
            for name in handle.keys():
                if header[name]["dtype"] == "BF16":
                    out[name] = _read_bf16(file, header, name)
                else:
                    out[name] = handle.get_tensor(name)
    except SafetensorError as exc:
        raise CheckpointError(f"{file} is not a readable safetensors file: {exc}") from exc
    return out


def _read_header(file: Path) -> dict[str, Any]:
    """The JSON header: name -> {dtype, shape, data_offsets} (the safetensors format's first bytes)."""
    with file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise CheckpointError(f"{file} is truncated: no safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > 100_000_000:
            raise CheckpointError(f"{file} has an implausible header length {length}: corrupt?")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{file} has a corrupt safetensors header: {exc}") from exc
    header.pop("__metadata__", None)
    header["__data_start__"] = 8 + length
    return header


def _read_bf16(file: Path, header: dict[str, Any], name: str) -> Any:
    entry = header[name]
    start, end = entry["data_offsets"]
    raw = np.memmap(file, dtype=np.uint16, mode="r", offset=header["__data_start__"] + start,
                    shape=((end - start) // 2,))
    return float32_from_bfloat16(np.array(raw)).reshape(entry["shape"])


def take_tensor(tensors: dict[str, Any], name: str, shape: tuple[int, ...]) -> Any:
    """Pop `name` from `tensors`, checking its shape against what the config implies.

    Raises:
        CheckpointError: the tensor is missing or has another shape.
    """
    if name not in tensors:
        raise CheckpointError(f"checkpoint has no tensor {name!r} (expected shape {list(shape)})")
    array = tensors.pop(name)
    if tuple(array.shape) != tuple(shape):
        raise CheckpointError(
            f"tensor {name!r} has shape {list(array.shape)} but config.json implies {list(shape)}"
        )
    return array
