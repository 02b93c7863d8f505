"""EngineConfig: the engine's knobs, with vLLM's names (`LLM(model=..., **kwargs)` maps its arguments
onto them). The twin choices `pyengine.settings` reads from the environment are the defaults of
`kernels`, `sampler` and `attention`, resolved into `twins` when the config is made.
"""

from __future__ import annotations

import dataclasses

from pyengine import settings

DEFAULT_KV_CACHE_FRACTION = 0.25  # of available memory, when neither size is given
MAX_DEFAULT_KV_CACHE_BYTES = 4 << 30


@dataclasses.dataclass
class EngineConfig:
    """Engine, cache and scheduler settings (vLLM's field names)."""

    model: str
    tokenizer: str | None = None  # defaults to `model`
    skip_tokenizer_init: bool = False  # token ids in and out, no text (vLLM's flag)
    device: str = "cpu"  # "cpu" (numpy), "cuda" (cupy) or "fake" (strict test device)
    max_model_len: int | None = None  # defaults to the model's max_position_embeddings
    block_size: int = 16
    num_kv_blocks: int | None = None  # overrides kv_cache_memory
    kv_cache_memory: int | None = None  # bytes for the KV cache
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 8192
    max_logprobs: int = 20
    enable_prefix_caching: bool = True
    scheduling_policy: str = "fcfs"  # or "priority": lower `priority` values run first
    seed: int = 0
    kernels: str | None = None  # text and grammar kernels: "native" (Rust) or "python"; None: PYENGINE_KERNELS
    sampler: str | None = None  # "fast" or "reference" (sampling/reference.py); None: PYENGINE_KERNELS
    attention: str | None = None  # "fast" (model/fast_path.py) or "reference"; None: PYENGINE_KERNELS
    cpu_threads: int | None = None  # BLAS threads on the CPU; None: 1 for small models, else BLAS's default
    twins: settings.Twins = dataclasses.field(init=False, repr=False)  # the resolved choices of the three above

    def __post_init__(self) -> None:
        optional = ("num_kv_blocks", "max_model_len", "cpu_threads")  # None: the default
        for name in ("block_size", "max_num_seqs", "max_num_batched_tokens", *optional):
            value = getattr(self, name)
            if (value is not None or name not in optional) and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise ValueError(f"scheduling_policy must be 'fcfs' or 'priority', got {self.scheduling_policy!r}")
        chosen = {"text": self.kernels, "grammar": self.kernels, "sampler": self.sampler, "attention": self.attention}
        checked = {twin: settings.check(twin, value) for twin, value in chosen.items() if value}
        self.twins = dataclasses.replace(settings.from_environment(), **checked)  # the environment's where None

    @classmethod
    def from_kwargs(cls, model: str, **kwargs: object) -> "EngineConfig":
        names = {f.name for f in dataclasses.fields(cls) if f.init} - {"model"}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown engine argument(s) {unknown}; valid: {sorted(names)}")
        return cls(model=model, **kwargs)  # type: ignore[arg-type]

    def resolve_num_blocks(self, bytes_per_block: int) -> int:
        """Blocks to preallocate: num_kv_blocks, else kv_cache_memory, else a share of free RAM."""
        if self.num_kv_blocks is not None:
            return self.num_kv_blocks
        budget = self.kv_cache_memory
        if budget is None:
            budget = min(int(_available_memory() * DEFAULT_KV_CACHE_FRACTION), MAX_DEFAULT_KV_CACHE_BYTES)
        blocks = budget // bytes_per_block
        if blocks < 1:
            raise ValueError(f"kv_cache_memory of {budget} bytes holds no block of {bytes_per_block} bytes")
        return blocks


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 30
