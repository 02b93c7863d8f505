"""Text: tokenizer, chat templates, the per-token text kernels (detokenizer, stop strings,
repetition detection) with their Python twins, and a sequence's output text (sequence_text.py)."""

from pyengine.text.chat_template import ChatTemplateError, render_chat_template
from pyengine.text.tokenizer import Tokenizer

__all__ = ["ChatTemplateError", "Tokenizer", "render_chat_template"]

# The per-token text kernels, native or Python twins as PYENGINE_KERNELS selects (see kernels.py).
from pyengine.text.kernels import IncrementalDetokenizer, RepetitionDetector, StopChecker, TokenTable  # noqa: E402

__all__ += ["IncrementalDetokenizer", "RepetitionDetector", "StopChecker", "TokenTable"]
