"""Sampling: SamplingParams, the logits processors, the sampler, logprobs and beam search.

Reading order: params.py (what a request asks for) -> processors.py (penalties, bias, bans)
-> truncation.py (temperature, min_p, top-k, top-p) -> draw.py (the seeded draw) ->
logprobs.py -> sampler.py (the pipeline over a batch) -> beam_search.py.
"""

from pyengine.sampling.beam_search import BeamSequence, beam_search
from pyengine.sampling.draw import make_generator
from pyengine.sampling.logprobs import RowLogprobs, compute_prompt_logprobs
from pyengine.sampling.params import RepetitionDetectionParams, SamplingParams, StructuredOutputsParams, tokenize_bad_words
from pyengine.sampling.sampler import Sampler, SamplerOutput, SamplingRow

__all__ = [
    "BeamSequence", "RepetitionDetectionParams", "RowLogprobs", "Sampler", "SamplerOutput", "SamplingParams",
    "SamplingRow", "StructuredOutputsParams", "beam_search", "compute_prompt_logprobs", "make_generator", "tokenize_bad_words",
]
