"""Process tuning for the numpy backend: BLAS threads and glibc's memory thresholds.

Both are settings of the whole process, not of one engine, so they are applied once at start-up
by whoever starts the process's engine (`LLM`, the `AsyncEngine` the server runs, the CLI), with
`tune_process_for(engine)`, rather than by every `Engine()`.
"""

from __future__ import annotations

from typing import Any

SMALL_MODEL_MATRIX = 1 << 19  # elements: below this, one BLAS thread beats several (see blas_threads_for)
_initial_blas_threads: int | None = None


def blas_threads_for(hidden_size: int, intermediate_size: int, requested: int | None = None) -> int:
    """How many BLAS threads the numpy backend should use for a model of these sizes.

    `requested` wins when given. Otherwise a model whose MLP matrix (hidden x intermediate) has
    under half a million elements gets one thread: each of its products takes a few microseconds, less
    than waking and joining a second thread, and on a machine whose other core is busy the
    join can cost milliseconds (the 3.7M-parameter demo model decodes about 4x faster with one
    thread than with two on a busy 2-core machine). Larger models keep the BLAS default.
    """
    if requested is not None:
        return requested
    initial = _blas_threads()
    return 1 if hidden_size * intermediate_size < SMALL_MODEL_MATRIX else initial


def set_blas_threads(count: int) -> None:
    """Set the process's BLAS thread count (numpy backend; one setting per process)."""
    from threadpoolctl import threadpool_limits

    _blas_threads()  # remember the default before the first change
    threadpool_limits(limits=count, user_api="blas")


def _blas_threads() -> int:
    """The BLAS thread count the process started with (OPENBLAS_NUM_THREADS etc. included)."""
    global _initial_blas_threads
    if _initial_blas_threads is None:
        from threadpoolctl import threadpool_info

        counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
        _initial_blas_threads = max(counts, default=1)
    return _initial_blas_threads


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_heap_kept = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory in the process rather than hand it back to the OS (numpy backend).

    A decode step allocates the same large temporaries every layer: the gathered keys and values of
    a batch of 32 are two 4.7 MB arrays. By default glibc returns such blocks to the OS when they
    are freed (mmap'd chunks, and a heap top trimmed past twice the last one's size), so the next
    layer's copy into fresh memory page-faults on every 4 KB page: that doubles the cost of the
    gather. Raising both thresholds (mmap at 32 MB, glibc's ceiling; trim at 1 GB) makes such
    blocks come back from the heap already mapped. The price is that the process keeps its peak
    temporary memory, as GPU engines keep their memory pools. Returns False (and changes nothing)
    where the C library is not glibc.
    """
    global _heap_kept
    if _heap_kept:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        kept = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _heap_kept = bool(kept)
    return _heap_kept


def tune_cpu_process(hidden_size: int, intermediate_size: int, cpu_threads: int | None = None) -> None:
    """Start-up tuning for a numpy model of these sizes: its BLAS thread count, and freed memory kept."""
    set_blas_threads(blas_threads_for(hidden_size, intermediate_size, cpu_threads))
    keep_freed_memory()  # big per-layer temporaries come back without page faults


def tune_process_for(engine: Any) -> None:
    """`tune_cpu_process` for an `Engine`'s model, when it runs on the CPU (called once, at start-up)."""
    if engine.backend.name == "cpu":
        config = engine.model.config
        tune_cpu_process(config.hidden_size, config.intermediate_size, engine.config.cpu_threads)
