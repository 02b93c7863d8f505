"""The strict fake device: numpy arrays that behave like cupy's, for tests of the GPU discipline.

`--device fake` lets a CPU-only machine prove that the engine keeps data on the device: its arrays
refuse implicit conversion to numpy and refuse to mix with numpy arrays, exactly as cupy's do,
and it counts every device→host transfer, so a test can assert how many a decode step made.

Reference: cupy's rule that `numpy.asarray(cupy_array)` raises `TypeError` ("Implicit conversion
to a NumPy array is not allowed").
"""

from __future__ import annotations

from typing import Any

import numpy

from pyengine.backend.arrays import TransferCounter


class DeviceMixingError(TypeError):
    """A host (numpy) array met a device array in one operation, as cupy forbids."""


def _unwrap(value: Any, module: "FakeDeviceModule") -> Any:
    """Replace fake arrays by their numpy payload; refuse numpy arrays (host data)."""
    if isinstance(value, FakeDeviceArray):
        return value._data
    if isinstance(value, numpy.ndarray):
        raise DeviceMixingError(
            "a host numpy array was mixed with device arrays; copy it explicitly with "
            "Backend.to_device (cupy raises here too)"
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, module) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, module) for k, v in value.items()}
    return value


def _wrap(value: Any, module: "FakeDeviceModule") -> Any:
    """Wrap numpy results back into fake device arrays (numpy scalars stay 0-d arrays)."""
    if isinstance(value, numpy.ndarray):
        return FakeDeviceArray(value, module)
    if isinstance(value, numpy.generic):
        return FakeDeviceArray(numpy.asarray(value), module)
    if isinstance(value, tuple):
        return tuple(_wrap(v, module) for v in value)
    if isinstance(value, list):
        return [_wrap(v, module) for v in value]
    return value


class FakeDeviceArray:
    """A numpy array pretending to live on a device, with cupy's strictness.

    - `numpy.asarray(a)`, `float(a)`-style implicit conversion of non-scalars: TypeError.
    - Mixing with a numpy array in an operator or `xp` call: DeviceMixingError.
    - `a.get()` / `Backend.to_host(a)` is the explicit copy; it is counted.
    - `a.item()`, `int(a)`, `float(a)` and `bool(a)` on a single element are allowed (cupy
      allows them too, with a synchronising copy) and are counted as device→host transfers.
    """

    __array_priority__ = 1000

    def __init__(self, data: numpy.ndarray, module: "FakeDeviceModule"):
        self._data = data
        self._module = module

    # -- explicit and implicit conversion ------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        # numpy.exp(device_array) or numpy_scalar * device_array: like cupy, run it on the device,
        # unless a host array takes part (then _unwrap raises DeviceMixingError).
        inputs = _unwrap(inputs, self._module)
        kwargs = _unwrap(kwargs, self._module)
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs), self._module)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        args = _unwrap(args, self._module)
        kwargs = _unwrap(kwargs, self._module)
        return _wrap(func(*args, **kwargs), self._module)

    def get(self) -> numpy.ndarray:
        self._module._transfers.device_to_host += 1
        return self._data.copy()

    def _scalar(self) -> Any:
        if self._data.size != 1:
            raise TypeError("only single-element device arrays convert to Python scalars")
        self._module._transfers.device_to_host += 1
        return self._data.reshape(()).item()

    def item(self) -> Any:
        return self._scalar()

    def __int__(self) -> int:
        return int(self._scalar())

    def __float__(self) -> float:
        return float(self._scalar())

    def __bool__(self) -> bool:
        return bool(self._scalar())

    def __index__(self) -> int:
        return int(self._scalar())

    def tolist(self) -> Any:
        raise TypeError("tolist() on a device array is an implicit transfer; use Backend.to_host")

    def __iter__(self) -> Any:
        raise TypeError("iterating a device array element by element is a transfer per element")

    def __repr__(self) -> str:
        return f"FakeDeviceArray(shape={self._data.shape}, dtype={self._data.dtype})"

    # -- attributes and methods ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> numpy.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def T(self) -> "FakeDeviceArray":  # noqa: N802  (numpy's name)
        return FakeDeviceArray(self._data.T, self._module)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        # Array methods (reshape, astype, sum, max, transpose, ...) run on the payload. Dunder
        # names (numpy's __array_interface__ and friends) are not forwarded: they would let
        # numpy read the payload behind our back.
        if name.startswith("__"):
            raise AttributeError(name)
        attribute = getattr(self._data, name)
        if not callable(attribute):
            return _wrap(attribute, self._module)

        def method(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*_unwrap(args, self._module), **_unwrap(kwargs, self._module))
            return _wrap(result, self._module)

        return method

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._data[_unwrap(index, self._module)], self._module)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._data[_unwrap(index, self._module)] = _unwrap(value, self._module)


def _binary(name: str) -> Any:
    def operator(self: FakeDeviceArray, other: Any) -> Any:
        result = getattr(self._data, name)(_unwrap(other, self._module))
        if result is NotImplemented:
            return NotImplemented
        return _wrap(result, self._module)

    operator.__name__ = name
    return operator


def _unary(name: str) -> Any:
    def operator(self: FakeDeviceArray) -> Any:
        return _wrap(getattr(self._data, name)(), self._module)

    operator.__name__ = name
    return operator


for _name in (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __floordiv__ "
    "__rfloordiv__ __mod__ __pow__ __rpow__ __matmul__ __rmatmul__ __lt__ __le__ __gt__ __ge__ "
    "__eq__ __ne__ __and__ __rand__ __or__ __ror__ __xor__ __lshift__ __rshift__ "
    "__iadd__ __isub__ __imul__ __itruediv__"
).split():
    setattr(FakeDeviceArray, _name, _binary(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(FakeDeviceArray, _name, _unary(_name))
FakeDeviceArray.__hash__ = None  # type: ignore[assignment]  (arrays are unhashable)


class FakeDeviceModule:
    """An `xp` module whose functions take and return `FakeDeviceArray`s.

    `asarray`/`array` accept host data (that is the explicit host→device copy); every other
    function refuses numpy arrays among its arguments. `asnumpy` is the explicit way back.
    """

    def __init__(self, transfers: TransferCounter):
        self._transfers = transfers
        self.__name__ = "fake_device"
        self.ndarray = FakeDeviceArray
        # Dtypes, constants and `newaxis` are plain values shared with numpy.
        for name in (
            "float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ "
            "inf nan pi e newaxis dtype finfo iinfo"
        ).split():
            setattr(self, name, getattr(numpy, name))

    def asarray(self, value: Any, dtype: Any = None) -> FakeDeviceArray:
        if isinstance(value, FakeDeviceArray):
            return value if dtype is None else value.astype(dtype)
        return FakeDeviceArray(numpy.array(value, dtype=dtype), self)

    array = asarray

    def asnumpy(self, value: Any) -> numpy.ndarray:
        if isinstance(value, FakeDeviceArray):
            return value.get()
        return numpy.asarray(value)

    def __getattr__(self, name: str) -> Any:
        target = getattr(numpy, name)
        if not callable(target):
            raise AttributeError(f"fake device module has no attribute {name!r}")

        def function(*args: Any, **kwargs: Any) -> Any:
            return _wrap(target(*_unwrap(args, self), **_unwrap(kwargs, self)), self)

        function.__name__ = name
        return function
