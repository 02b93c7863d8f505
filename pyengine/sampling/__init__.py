"""Sampling: SamplingParams, the logits processors, the sampler, logprobs and beam search.

Reading order: params.py (what a request asks for) -> processors.py (penalties, bias, bans)
-> truncation.py (temperature, min_p, top-k, top-p) -> reference.py (the whole pipeline, as
the textbook writes it) -> then its fast twin: topk.py, draw.py (the seeded draw), logprobs.py,
sampler.py -> beam_search.py.

Two twins run the pipeline: `ReferenceSampler` (reference.py: the textbook, full sorts) and
`Sampler` (sampler.py: candidates, tiles and a two-level draw, for speed); `SAMPLERS` names them
for the engine's `sampler` setting.
"""

from pyengine.sampling.beam_search import BeamSequence, beam_search, beam_search_steps
from pyengine.sampling.draw import make_generator
from pyengine.sampling.logprobs import RowLogprobs, compute_prompt_logprobs
from pyengine.sampling.params import (
    RepetitionDetectionParams,
    RequestOutputKind,
    SamplingParams,
    StructuredOutputsParams,
    tokenize_bad_words,
)
from pyengine.sampling.reference import ReferenceSampler
from pyengine.sampling.sampler import Sampler, SamplerOutput, SamplingRow

SAMPLERS = {"fast": Sampler, "reference": ReferenceSampler}

__all__ = [
    "SAMPLERS", "BeamSequence", "ReferenceSampler", "RepetitionDetectionParams", "RequestOutputKind", "RowLogprobs",
    "Sampler",
    "SamplerOutput", "SamplingParams", "SamplingRow", "StructuredOutputsParams", "beam_search", "beam_search_steps",
    "compute_prompt_logprobs", "make_generator", "tokenize_bad_words",
]
