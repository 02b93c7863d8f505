"""Models: config normalisation, checkpoint loading and one forward pass per family.

`load_model(path, backend)` reads config.json, imports the family that implements its `architectures`
(FAMILIES; Llama is the reference) and the attention twin (ATTENTION), each when chosen.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pyengine import settings
from pyengine.backend import Backend
from pyengine.model.config import SUPPORTED_ARCHITECTURES, ConfigError, ModelConfig
from pyengine.model.layers import AttentionInputs
from pyengine.model.loader import CheckpointError, load_tensors

# Each family's module loads when a checkpoint needs it (module, class), the attention twin when chosen.
FAMILIES = {"llama": ("pyengine.model.llama", "LlamaModel"), "gpt2": ("pyengine.model.gpt2", "GPT2Model"),
            "gemma": ("pyengine.model.gemma", "GemmaModel"), "moe": ("pyengine.model.moe", "MoeModel")}
ATTENTION = {"reference": ("pyengine.model.layers", "REFERENCE"), "fast": ("pyengine.model.fast_path", "FAST")}
logger = logging.getLogger(__name__)

__all__ = ["ATTENTION", "AttentionInputs", "CheckpointError", "ConfigError", "FAMILIES", "ModelConfig",
           "SUPPORTED_ARCHITECTURES", "load_model"]


def load_model(path: str | Path, backend: Backend, progress: bool | None = None, attention: str = "fast") -> Any:
    """Load the checkpoint at `path` onto `backend`; returns a model with `.config`.

    Weights are float32 on the CPU and, for half-precision checkpoints, float16 on a GPU (bf16 rounded).
    `progress`: a progress bar (None: when stderr is a terminal and INFO is logged); `attention`: the
    twin the model runs, "fast" or "reference". Raises ConfigError (config.json) or CheckpointError
    (weight files missing or corrupt, a tensor of the wrong shape).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model path {path} is not a directory")
    config = ModelConfig.from_pretrained(path)
    dtype = "float16" if backend.is_gpu and config.dtype != "float32" else "float32"
    start = time.perf_counter()
    tensors = load_tensors(path, dtype, progress)
    logger.info("Loading %s: %s, %.1fM parameters stored as %s, computed in %s, %d safetensors file(s)",
                path, config.architecture, tensors.num_parameters / 1e6, "/".join(tensors.stored_dtypes),
                dtype, len(tensors.files))
    try:
        model = settings.load(*FAMILIES[config.family]).from_tensors(config, tensors, backend)
    finally:
        tensors.close()
    logger.info("Loaded the weights in %.2f s", time.perf_counter() - start)
    model.ops = settings.load(*ATTENTION[attention])
    return model

