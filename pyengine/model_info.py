"""What a server needs to know about the engine's model, read once at start-up.

    info = async_engine.model_info
    info.tokenizer, info.max_model_len, info.vocab_size, info.generation_defaults

`generation_defaults` are the sampling defaults the checkpoint's `generation_config.json` sets
(`temperature`, `top_p`, `top_k`, `min_p`, `repetition_penalty`, and `max_new_tokens`), taken
from the model config, which reads that file once; a server applies them to requests that leave
those fields out, as vLLM does with `--generation-config auto`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

GENERATION_DEFAULT_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The served model: where it came from, its tokenizer, its context and vocabulary sizes, its defaults."""

    model: str  # the checkpoint folder
    tokenizer: Any  # pyengine.text.Tokenizer, or None with skip_tokenizer_init
    max_model_len: int
    vocab_size: int
    generation_defaults: dict[str, Any]

    @classmethod
    def of(cls, engine: Any) -> "ModelInfo":
        """The model info of an `Engine`."""
        generation = engine.model.config.generation_config
        defaults = {name: generation[name] for name in GENERATION_DEFAULT_FIELDS if name in generation}
        return cls(engine.config.model, engine.tokenizer, engine.max_model_len, engine.vocab_size, defaults)
