"""Sampling: SamplingParams, the logits processors, the sampler and logprobs.

Reading order: params.py (what a request asks for) -> processors.py (penalties, bias, bans)
-> truncation.py (temperature, min_p, top-k, top-p) -> draw.py (the seeded draw) ->
logprobs.py (vLLM's layout) -> reference.py (the whole pipeline, as the textbook writes it).

Two twins run the pipeline: `ReferenceSampler` (reference.py: whole rows, full sorts) and
`Sampler` (fast/: candidates, tiles and a two-level draw, for speed). `make_sampler` builds
the one the engine's `sampler` setting names, importing the fast twin only when it is chosen.
processors.py and nested_params.py load with the first request that uses them; beam search
(beam_search.py) with its driver, `pyengine.beam_requests`.
"""

from __future__ import annotations

import importlib
from typing import Any

from pyengine.sampling.draw import make_generator
from pyengine.sampling.logprobs import RowLogprobs
from pyengine.sampling.params import RequestOutputKind, SamplingParams
from pyengine.sampling.reference import ReferenceSampler, SamplerOutput, SamplingRow

SAMPLERS = {"reference": ("pyengine.sampling.reference", "ReferenceSampler"),
            "fast": ("pyengine.sampling.fast.sampler", "Sampler")}  # the `sampler` twin -> (module, class)


def make_sampler(name: str, backend: Any, vocab_size: int, seed: int | None = None) -> ReferenceSampler:
    """The sampler twin `name` ("reference" or "fast") over `backend`, its module imported now."""
    module, class_name = SAMPLERS[name]
    return getattr(importlib.import_module(module), class_name)(backend, vocab_size, seed=seed)


__all__ = [
    "SAMPLERS", "ReferenceSampler", "RequestOutputKind", "RowLogprobs", "SamplerOutput", "SamplingParams", "SamplingRow",
    "make_generator", "make_sampler",
]
