"""The array backend: numpy on the CPU, cupy on a GPU, or the strict fake device for tests.

Array code in the model, cache and sampler goes through a module `xp` from here (cupy's
`get_array_module` idiom); the only device->host copies a decode step makes (the sampled ids and any
logprobs asked for) go through `Backend.to_host`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

SUPPORTED_DEVICES = ("cpu", "cuda", "fake")


@dataclasses.dataclass
class TransferCounter:
    """Counts explicit copies between host and the (fake) device."""

    device_to_host: int = 0
    host_to_device: int = 0


@dataclasses.dataclass
class Backend:
    """One array backend: the module `xp` and the two explicit copies, `to_device` and `to_host` (free on a CPU)."""

    name: str
    xp: Any
    transfers: TransferCounter = dataclasses.field(default_factory=TransferCounter)

    def to_device(self, host_array: Any, dtype: Any = None) -> Any:
        """Host (numpy, list or scalar) -> device array."""
        if self.name != "cpu":
            self.transfers.host_to_device += 1
        return self.xp.asarray(host_array, dtype=dtype)

    def to_host(self, array: Any) -> numpy.ndarray:
        """Device array -> numpy array (the one explicit device→host copy)."""
        if self.name == "cpu":
            return numpy.asarray(array)
        if self.name == "cuda":
            self.transfers.device_to_host += 1
        return array.get()  # the fake device counts its own transfers in get()

    @property
    def is_gpu(self) -> bool:
        return self.name == "cuda"


def get_backend(device: str = "cpu") -> Backend:
    """The backend for `device` ("cpu", "cuda" or "fake"). Raises ValueError for another name,
    RuntimeError for "cuda" without cupy."""
    if device == "cpu":
        return Backend("cpu", numpy)
    if device == "fake":
        from pyengine.backend.fake_device import FakeDeviceModule  # noqa: PLC0415  (test tooling, loaded when asked for)
        counter = TransferCounter()
        return Backend("fake", FakeDeviceModule(counter), counter)
    if device == "cuda":
        try:
            import cupy  # noqa: PLC0415  (optional dependency, imported only when asked for)
        except ImportError as exc:
            raise RuntimeError("device 'cuda' needs cupy: pip install 'pyengine[cuda]' on a machine with CUDA") from exc
        return Backend("cuda", cupy)
    raise ValueError(f"unknown device {device!r}; supported: {', '.join(SUPPORTED_DEVICES)}")


def array_module(array: Any) -> Any:
    """The array module (`numpy`, `cupy` or the fake device's) that owns `array`."""
    module_name = type(array).__module__
    if module_name == "pyengine.backend.fake_device":  # a FakeDeviceArray knows its module
        return array._module
    if module_name.startswith("cupy"):
        import cupy  # noqa: PLC0415
        return cupy
    return numpy
