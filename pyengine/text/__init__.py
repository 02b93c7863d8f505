"""Text: tokenizer, chat templates, and the per-token text kernels (detokenizer, stop strings,
repetition detection) with their Python twins."""

from pyengine.text.chat_template import ChatTemplateError, render_chat_template
from pyengine.text.tokenizer import Tokenizer

__all__ = ["ChatTemplateError", "Tokenizer", "render_chat_template"]
