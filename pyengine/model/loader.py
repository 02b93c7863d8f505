"""Reading a checkpoint's tensors from safetensors files into host (numpy) arrays, one at a time.

`load_tensors` reads only the files' JSON headers; each tensor is memory-mapped, read and converted
when the model takes it, so memory never holds a second copy of the checkpoint. A single
`model.safetensors` of float32/float16 tensors needs nothing more; shards, bfloat16 tensors and the
progress bar are checkpoint_formats.py's, loaded when a checkpoint or a terminal needs them.
"""

from __future__ import annotations

import collections.abc
import json
import logging
import math
import os
import struct
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np  # host arrays: tensors as read from the files

logger = logging.getLogger(__name__)

# safetensors dtype tag -> (numpy dtype of the stored bytes, bytes per element)
_STORED = {"F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("uint16", 2)}
CHECKPOINT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


class CheckpointError(ValueError):
    """A weight file is missing, corrupt, or does not hold what the config promises."""


def checkpoint_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder, in shard order."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        from pyengine.model.checkpoint_formats import sharded_files  # noqa: PLC0415  (a sharded checkpoint loads it)
        return sharded_files(index)
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {path} "
                          "(only safetensors checkpoints are supported)")


class LazyTensors(collections.abc.MutableMapping):
    """name -> host array of `dtype`, read from its file when asked for (`[name]` or `pop`, which the
    model does once per tensor and the progress bar counts). Read-only."""

    def __init__(self, files: list[Path], dtype: str = "float32", progress: bool | None = None):
        self.dtype, self.files = dtype, files
        self._where: dict[str, tuple[Path, int, dict[str, Any]]] = {}  # name -> (file, data start, entry)
        for file in files:
            header = _read_header(file)
            start, size = header.pop("__data_start__"), file.stat().st_size
            for name, entry in header.items():
                _check_entry(file, name, entry, size - start)
                self._where[name] = (file, start, entry)
        self._bar = None
        if progress is None:  # a bar when stderr is a terminal and INFO is logged
            progress = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO) and not os.environ.get("TQDM_DISABLE")
        if self._where and progress:
            from pyengine.model.checkpoint_formats import ProgressBar  # noqa: PLC0415
            self._bar = ProgressBar(len(self._where), len(files))

    # -- what the checkpoint holds, from the headers alone -----------------------------------------
    @property
    def num_parameters(self) -> int:
        return sum(math.prod(entry["shape"]) for _, _, entry in self._where.values())

    @property
    def stored_dtypes(self) -> list[str]:
        """The checkpoint's dtypes as torch names ("bfloat16", ...), most parameters first."""
        counts: collections.Counter[str] = collections.Counter()
        for _, _, entry in self._where.values():
            counts[CHECKPOINT_DTYPES.get(entry["dtype"], entry["dtype"])] += math.prod(entry["shape"])
        return [name for name, _ in counts.most_common()]

    # -- the mapping ---------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        file, start, entry = self._where[name]
        return _read_tensor(file, start, entry, self.dtype)

    def __delitem__(self, name: str) -> None:
        file, _, _ = self._where.pop(name)
        if self._bar is not None:
            self._bar.took(self.files.index(file), done=not self._where)

    def __setitem__(self, name: str, value: Any) -> None:
        raise TypeError("a checkpoint's tensors are read-only")

    def __contains__(self, name: object) -> bool:  # from the headers: reads nothing
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._where))

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def load_tensors(path: str | Path, dtype: str = "float32", progress: bool | None = None) -> LazyTensors:
    """The tensors of the checkpoint at `path`, by name, read as host arrays of `dtype` ("float32", or
    "float16" for a GPU) when taken. Raises CheckpointError: missing shards, a corrupt header, a tensor
    the file cannot hold."""
    return LazyTensors(checkpoint_files(Path(path)), dtype, progress)


def _read_header(file: Path) -> dict[str, Any]:
    """The JSON header: name -> {dtype, shape, data_offsets} (the safetensors format's first bytes: its
    length as a little-endian u64, then the JSON), with `__data_start__` added."""
    with file.open("rb") as handle:
        prefix = handle.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else None
        if length is None or length > 100_000_000:
            raise CheckpointError(f"{file} is truncated or corrupt: no plausible safetensors header")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{file} has a corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{file} has a corrupt safetensors header: not a JSON object")
    header.pop("__metadata__", None)
    return header | {"__data_start__": 8 + length}


def _check_entry(file: Path, name: str, entry: Any, data_size: int) -> None:
    """The header's promise about one tensor fits the file: known dtype, size, offsets inside."""
    try:
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        valid = all(isinstance(s, int) and s >= 0 for s in shape) and 0 <= begin <= end
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(f"{file} is not a readable safetensors file: bad header entry for {name!r}") from None
    itemsize = _STORED[dtype][1] if dtype in _STORED else None  # other dtypes fail when read
    if not valid or (itemsize is not None and end - begin != math.prod(shape) * itemsize) or end > data_size:
        raise CheckpointError(f"{file} is not a readable safetensors file: tensor {name!r} "
                              f"does not fit its offsets (truncated or corrupt)")


def _read_tensor(file: Path, start: int, entry: dict[str, Any], dtype: str) -> Any:
    """One tensor, memory-mapped and converted into a fresh array of `dtype` (float32/float16)."""
    if entry["dtype"] not in _STORED:
        raise CheckpointError(f"{file}: a tensor has dtype {entry['dtype']}; only F32, F16 and BF16 are supported")
    stored, _ = _STORED[entry["dtype"]]
    begin, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if begin == end:
        return np.zeros(shape, dtype=dtype)
    raw = np.memmap(file, dtype=stored, mode="r", offset=start + begin, shape=(math.prod(shape),)).reshape(shape)
    try:
        if entry["dtype"] != "BF16":
            return np.array(raw, dtype=dtype)  # one copy, out of the mapping
        from pyengine.model.checkpoint_formats import widen_bfloat16  # noqa: PLC0415  (a bf16 tensor loads it)
        return widen_bfloat16(raw, dtype)
    finally:
        del raw  # unmap


def take_tensor(tensors: collections.abc.MutableMapping, name: str, shape: tuple[int, ...]) -> Any:
    """Pop `name` from `tensors`; CheckpointError if it is missing or not of the shape the config implies."""
    if name not in tensors:
        raise CheckpointError(f"checkpoint has no tensor {name!r} (expected shape {list(shape)})")
    array = tensors.pop(name)
    if tuple(array.shape) != tuple(shape):
        raise CheckpointError(f"tensor {name!r} has shape {list(array.shape)} but config.json implies {list(shape)}")
    return array
