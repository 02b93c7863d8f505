"""Sampling: SamplingParams, the logits processors, the sampler and logprobs (docs/03-sampling.md).

Two twins run the pipeline: `ReferenceSampler` (reference.py) and `Sampler` (fast/), which
`make_sampler` imports only when it is chosen; processors.py and nested_params.py load with the
first request that uses them, beam_search.py with its driver.
"""

from __future__ import annotations

from typing import Any

from pyengine import settings
from pyengine.sampling.params import RequestOutputKind, SamplingParams
from pyengine.sampling.reference import ReferenceSampler, RowLogprobs, SamplerOutput, SamplingRow, make_generator

SAMPLERS = {"reference": ("pyengine.sampling.reference", "ReferenceSampler"),
            "fast": ("pyengine.sampling.fast.sampler", "Sampler")}  # the `sampler` twin -> (module, class)


def make_sampler(name: str, backend: Any, vocab_size: int, seed: int | None = None) -> ReferenceSampler:
    """The sampler twin `name` ("reference" or "fast") over `backend`, its module imported now."""
    return settings.load(*SAMPLERS[name])(backend, vocab_size, seed=seed)


__all__ = ["SAMPLERS", "ReferenceSampler", "RequestOutputKind", "RowLogprobs", "SamplerOutput", "SamplingParams",
           "SamplingRow", "make_generator", "make_sampler"]
