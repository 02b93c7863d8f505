"""The server installs as `pyengine_server`: a user's own `server.py` on the path cannot shadow it.

A folder holding a script `server.py`, put on PYTHONPATH (or the working directory of
`python -m`), makes `import server` import that script. The command and the app import only
`pyengine_server`, so they start as usual there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER_SCRIPT = "raise SystemExit('the user script server.py was imported')\n"


def _python(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`python *args` from `folder`, with `folder` first on PYTHONPATH (then this checkout)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_server_py_on_the_path_does_not_shadow_the_server(tmp_path):
    (tmp_path / "server.py").write_text(USER_SCRIPT)
    shadowed = _python(tmp_path, "-c", "import server")
    assert shadowed.returncode != 0 and "user script server.py was imported" in shadowed.stderr  # the trap is set

    command = _python(tmp_path, "-m", "pyengine_server", "serve", "--help")  # what the `pyengine` script runs
    assert command.returncode == 0, command.stderr
    assert "usage: pyengine serve" in command.stdout and "--tool-call-parser" in command.stdout

    app = _python(tmp_path, "-c", "import pyengine_server.app, pyengine_server.cli; print('app loaded')")
    assert app.returncode == 0 and app.stdout.strip() == "app loaded", app.stderr
