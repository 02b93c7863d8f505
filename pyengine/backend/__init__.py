"""The array backend: `xp` (numpy | cupy | the strict fake device) and CPU process tuning.

    arrays.py       Backend (xp, to_device, to_host), get_backend, array_module
    fake_device.py  the strict fake device: cupy's refusals on numpy, with transfer counts
                    (loaded by get_backend("fake"))
    cpu_tuning.py   BLAS threads and glibc thresholds, set once per process at start-up
                    (LLM and AsyncEngine call its tune_process_for)

Device code (model, cache, sampling) reaches arrays only through a `Backend`'s `xp` or
`array_module`; the few modules there that handle host arrays import numpy by name, and
`tests/test_architecture.py` lists them.
"""

from pyengine.backend.arrays import SUPPORTED_DEVICES, Backend, TransferCounter, array_module, get_backend

__all__ = ["SUPPORTED_DEVICES", "Backend", "TransferCounter", "array_module", "get_backend"]
