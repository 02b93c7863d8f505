"""`python -m pyengine_server ...`: the same as the `pyengine` command (serve, generate)."""

import sys

from pyengine_server.cli import entry

sys.exit(entry())
