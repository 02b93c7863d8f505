"""The sampler's reference twin: vLLM's pipeline as a textbook writes it, over whole rows.

    0. grammar mask      logits where allowed, else -inf                  (Sampler.__call__, shared)
    1. processors        bans, bias, penalties                             (processors.py, shared)
    2. greedy            argmax of the processed logits
    3. temperature       x / T
       min_p             apply_min_p: -inf below max + ln(min_p)           (truncation.py)
       top-k             apply_top_k: a full sort, -inf below the k-th largest
       top-p             apply_top_p: a full sort, -inf past the nucleus
    4. draw              p = softmax(x); the first token whose cumulative p passes the row's uniform
    5. logprobs          log_softmax of the raw logits; rank = tokens at least as likely; a full sort

`ReferenceSampler` runs it with the fast sampler's interface, so the engine can run either
(`PYENGINE_KERNELS=sampler=reference`, or `EngineConfig(sampler="reference")`). The fast twin
(sampler.py, truncation.py's `truncate`, draw.py) computes the same thing without sorting or
writing out [B, V] arrays; tests/sampling/test_reference.py holds the two to the same results.

Both draw one uniform number per sampling row from the same generators (a seeded row's own,
the others' from the sampler's), and walk a row in the same order: a row with a filter from its
most likely token down (ties by token id), a row without one in token-id order. So a seeded row
gets the same token from both, in any batch, except in two cases, where each twin is still
reproducible on its own: (1) on the CPU, a filtered row that keeps more tokens than the fast
twin's candidates (truncation.NUM_CANDIDATES) is walked by the fast twin in token-id order;
(2) an unfiltered row whose uniform falls within rounding (about 1e-7) of a boundary between
two tokens, since the fast twin sums the row in blocks.

Shapes: B rows, V vocabulary, k top logprobs.
"""

from __future__ import annotations

from typing import Any, Sequence

from pyengine.backend import array_module
from pyengine.sampling.draw import inverse_cdf_sample
from pyengine.sampling.sampler import Sampler, SamplingRow
from pyengine.sampling.truncation import apply_min_p, apply_temperature, apply_top_k, apply_top_p


class ReferenceSampler(Sampler):
    """The textbook twin of `Sampler`: steps 2-4 and the logprobs over whole, sorted rows."""

    def sample(self, logits: Any, rows: Sequence[SamplingRow]) -> Any:
        """Steps 2-4: argmax for greedy rows; temperature, the three filters and a draw for the rest. -> [B]"""
        xp = self.xp
        params = [row.params for row in rows]
        greedy = [p.greedy for p in params]
        greedy_ids = xp.argmax(logits, axis=-1)  # [B], lowest index on ties
        if all(greedy):
            return greedy_ids
        scaled = apply_temperature(logits, self._column([1.0 if p.greedy else p.temperature for p in params]))
        scaled = apply_min_p(scaled, self._column([p.min_p for p in params]))  # [B, V], -inf where cut
        scaled = apply_top_k(scaled, self._column([self._top_k(p) for p in params], xp.int64))
        scaled = apply_top_p(scaled, self._column([p.top_p for p in params]))
        filtered = self._column([p.min_p > 0 or self._top_k(p) > 0 or p.top_p < 1 for p in params], bool)
        sampled = draw(scaled, self._uniforms(rows), filtered)  # [B]
        return xp.where(self._column(greedy, bool)[:, 0], greedy_ids, sampled)

    def logprob_arrays(self, raw: Any, chosen_ids: Any, k: int) -> list[Any]:
        """[Bq, V] raw logits, [Bq] sampled ids -> [chosen logprob, rank, top ids [Bq, k], top logprobs [Bq, k]]."""
        xp = self.xp
        logprobs = log_softmax(raw)  # [Bq, V]
        chosen_logit = xp.take_along_axis(raw, chosen_ids[:, None], axis=-1)  # [Bq, 1]
        ranks = (raw >= chosen_logit).sum(axis=-1)  # [Bq]: ranked on the logits, which log_softmax only shifts
        order = xp.argsort(-raw, axis=-1, kind="stable")[:, :k]  # [Bq, k] most likely first, ties by id
        chosen = xp.take_along_axis(logprobs, chosen_ids[:, None], axis=-1)[:, 0]  # [Bq]
        return [chosen, ranks, order, xp.take_along_axis(logprobs, order, axis=-1)]


def log_softmax(logits: Any) -> Any:
    """[B, V] -> [B, V]: x - max - log(sum(exp(x - max))), each row's log-probabilities."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # [B, V], the largest at 0
    return shifted - xp.log(xp.exp(shifted.astype(xp.float64)).sum(axis=-1, keepdims=True)).astype(logits.dtype)


def draw(scaled: Any, uniforms: Any, filtered: Any) -> Any:
    """[B, V] scaled logits (-inf where cut), [B, 1] uniforms, [B, 1] bool -> [B] token ids.

    Inverse CDF: walk the row, summing probabilities, and stop at the first token whose running
    sum passes the uniform. A filtered row is walked from its most likely token down, any other
    in token-id order (see the module docstring for why).
    """
    xp = array_module(scaled)
    batch, vocab = scaled.shape
    by_likelihood = xp.argsort(-scaled, axis=-1, kind="stable")  # [B, V] most likely first, ties by id
    by_id = xp.broadcast_to(xp.arange(vocab), (batch, vocab))  # [B, V]
    order = xp.where(filtered, by_likelihood, by_id)  # [B, V] the order each row is walked in
    walked = xp.take_along_axis(scaled, order, axis=-1)  # [B, V]
    weights = xp.exp(walked - walked.max(axis=-1, keepdims=True))  # [B, V] unnormalised p, 0 where cut
    return xp.take_along_axis(order, inverse_cdf_sample(weights, uniforms)[:, None], axis=-1)[:, 0]
