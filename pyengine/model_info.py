"""What a server needs to know about the engine: its model, read once at start-up, and its load.

    info = async_engine.model_info
    info.tokenizer, info.max_model_len, info.vocab_size, info.generation_defaults
    stats = await async_engine.stats()     # running and waiting requests, KV cache in use

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
    architecture: str  # config.json's, e.g. "Qwen2ForCausalLM"
    dtype: str  # what the weights are computed in: "float32" on the CPU
    num_kv_blocks: int  # the KV cache: blocks of block_size tokens
    block_size: int
    enable_prefix_caching: bool

    @classmethod
    def of(cls, engine: Any) -> "ModelInfo":
        """The model info of an `Engine`."""
        generation = engine.model.config.generation_config
        defaults = {name: generation[name] for name in GENERATION_DEFAULT_FIELDS if name in generation}
        return cls(engine.config.model, engine.tokenizer, engine.max_model_len, engine.vocab_size, defaults,
                   engine.model.config.architecture, str(engine.model.dtype), engine.blocks.num_blocks,
                   engine.blocks.block_size, engine.config.enable_prefix_caching)


@dataclasses.dataclass(frozen=True)
class EngineStats:
    """The engine's load between two steps: what a server's gauges show."""

    running: int  # sequences in the running queue
    waiting: int  # sequences waiting to be scheduled
    kv_cache_usage: float  # the share of KV blocks in use, 0..1

    @classmethod
    def of(cls, engine: Any) -> "EngineStats":
        """The stats of an `Engine` (read them on the thread that steps it)."""
        blocks = engine.blocks
        return cls(len(engine.scheduler.running), len(engine.scheduler.waiting),
                   1.0 - blocks.num_free_blocks / blocks.num_blocks)
