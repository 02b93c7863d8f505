"""Models: config normalisation, checkpoint loading and one forward pass per family.

`load_model(path, backend)` reads config.json, imports the family that implements the checkpoint's
`architectures` (FAMILIES; Llama is the reference) and builds its weights on the backend's device. The
attention twin (ATTENTION: layers.py's equations, or fast_path.py) is imported the same way, when chosen.
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

__all__ = [
    "ATTENTION", "AttentionInputs", "CheckpointError", "ConfigError", "FAMILIES", "ModelConfig",
    "SUPPORTED_ARCHITECTURES", "load_model",
]


def load_model(path: str | Path, backend: Backend, progress: bool | None = None,
               attention: str = "fast") -> Any:
    """Load the checkpoint at `path` onto `backend`; returns a model with `.config`.

    Weights are upcast to float32 on the CPU (numpy has no fast half precision); on a GPU
    half-precision checkpoints stay float16 (bf16 is rounded to fp16, which cupy supports).
    Each tensor is read as the model takes it (loader.LazyTensors), with a progress bar when
    `progress` (None: when stderr is a terminal and INFO is logged). `attention` is the twin
    whose projection and attention the model runs: "fast" or "reference".

    Raises:
        ConfigError: config.json missing/malformed, or an unsupported architecture.
        CheckpointError: weight files missing/corrupt, or a tensor of the wrong shape.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model path {path} is not a directory")
    config = ModelConfig.from_pretrained(path)
    dtype = "float16" if backend.is_gpu and config.dtype != "float32" else "float32"
    if dtype == "float16" and config.family == "gemma":
        logger.warning("%s computes in float16 here (no bfloat16 on this backend); Gemma's activations are "
                       "known to overflow float16's range, which shows as inf/NaN logits", config.architecture)
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

