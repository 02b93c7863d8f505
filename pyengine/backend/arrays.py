"""The array backend: numpy on the CPU, cupy on a GPU, or the strict fake device for tests.

Every array operation in the model, cache and sampler goes through an array module `xp`
obtained here, never through `import numpy` directly. On a GPU, `xp` is cupy and arrays live
in device memory; the only device→host transfers a decode step may make are the sampled token
ids (and any logprobs a request asked for), and they go through `Backend.to_host`.

Reference: cupy's `get_array_module` idiom.
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

    def reset(self) -> None:
        self.device_to_host = 0
        self.host_to_device = 0


@dataclasses.dataclass
class Backend:
    """One array backend: the module `xp` plus the two explicit copy functions.

    `to_device(host_array)` copies a numpy array onto the device; `to_host(array)` copies a
    device array back into numpy. On the CPU both are no-ops (no copy).
    """

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
    """Return the backend for `device` ("cpu", "cuda" or "fake").

    Raises:
        ValueError: unknown device name.
        RuntimeError: "cuda" asked for but cupy (or a CUDA device) is not available.
    """
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
            raise RuntimeError(
                "device 'cuda' needs cupy: pip install 'pyengine[cuda]' on a machine with CUDA"
            ) from exc
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
