"""The one place that picks the text kernels: native (Rust) or the Python twins.

`PYENGINE_KERNELS=python` selects the twins (to step through them in a debugger); the default
is the native kernels when the extension provides them. Both expose the same classes.
"""

from __future__ import annotations

import os

from pyengine.text.detokenizer import IncrementalDetokenizer, TokenTable
from pyengine.text.repetition import RepetitionDetector
from pyengine.text.stop import StopChecker

KERNELS = os.environ.get("PYENGINE_KERNELS", "native")

__all__ = ["KERNELS", "IncrementalDetokenizer", "RepetitionDetector", "StopChecker", "TokenTable"]
