"""`python -m server ...`: the same as the `pyengine` command (serve, generate)."""

import sys

from server.cli import entry

sys.exit(entry())
