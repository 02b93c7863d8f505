"""The sampler's tuned twin: reference.py's pipeline with its costly steps arranged for speed.

File for file beside the reference: sampler.py (`Sampler`, a `ReferenceSampler` that overrides
steps 7b-7f), truncation.py (one threshold per row among candidates), topk.py (a row's k largest
without sorting it), draw.py (the two-level draw), logprobs.py (the tiled logsumexp). The engine
imports this package only when its `sampler` twin is "fast" (`pyengine.sampling.make_sampler`).
"""

from pyengine.sampling.fast.sampler import Sampler, filtered_logits

__all__ = ["Sampler", "filtered_logits"]
