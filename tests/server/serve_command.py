"""`pyengine serve` as a user runs it: a subprocess on a free port, used once /health answers.

For the tests and benchmarks that need the real command line (its flags, its environment, its
signals) rather than the in-process server of conftest.py.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def pyengine_serve(args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None,
                   timeout: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`pyengine serve ARGS --port P`; yields (its URL, the process) once /health answers 200.

    `env` is the process's whole environment (None: this one's); its output goes to `log`
    (None: discarded). Raises RuntimeError, with the log's end, when the process exits or
    `timeout` seconds pass before it answers. On leaving, a process still running gets SIGTERM
    (and SIGKILL if it is still there 20 s later).
    """
    port = free_port()
    with open(log, "wb") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as out:
        process = subprocess.Popen([sys.executable, "-m", "pyengine_server", "serve", *args, "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace")[-4000:] if log is not None else "(output discarded)"
                raise RuntimeError(f"`pyengine serve {' '.join(args)}` did not start "
                                   f"(exit status {process.poll()}):\n{said}")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
