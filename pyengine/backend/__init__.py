"""The array backend: `xp` (numpy | cupy | the strict fake device) and CPU process tuning.

arrays.py holds the backend; fake_device.py the test device (loaded by get_backend("fake")); cpu_tuning.py
the BLAS and glibc settings applied once at start-up. Device code reaches arrays only through `xp` or
`array_module`; the few modules that handle host arrays import numpy by name (test_architecture.py).
"""

from pyengine.backend.arrays import SUPPORTED_DEVICES, Backend, TransferCounter, array_module, get_backend

__all__ = ["SUPPORTED_DEVICES", "Backend", "TransferCounter", "array_module", "get_backend"]
