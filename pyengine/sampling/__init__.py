"""Sampling: SamplingParams, the logits processors, the sampler, logprobs and beam search."""

from pyengine.sampling.beam_search import BeamSequence, beam_search
from pyengine.sampling.params import RepetitionDetectionParams, SamplingParams, tokenize_bad_words
from pyengine.sampling.sampler import (
    RowLogprobs,
    Sampler,
    SamplerOutput,
    SamplingRow,
    compute_prompt_logprobs,
    make_generator,
)

__all__ = [
    "BeamSequence", "RepetitionDetectionParams", "RowLogprobs", "Sampler", "SamplerOutput", "SamplingParams",
    "SamplingRow", "beam_search", "compute_prompt_logprobs", "make_generator", "tokenize_bad_words",
]
