"""Beam search over the engine, as vLLM's serving layer runs it.

Each search step is a batch of one-token requests, one per live beam, each asking for the top
2W raw logprobs; the prefix cache means every step computes about one new token per beam. The
search itself (`pyengine.sampling.beam_search`) only sees those numbers. Both the offline `LLM`
and the `AsyncEngine` (for the server) call `run_beam_search` with their own way to run a step.
"""

from __future__ import annotations

from typing import Any, Callable

from pyengine.backend import host_numpy
from pyengine.outputs import CompletionOutput, RequestOutput
from pyengine.sampling import SamplingParams, beam_search

np = host_numpy()

RunStep = Callable[[list[list[int]], SamplingParams], list[RequestOutput]]


def run_beam_search(request_id: str, text: str | None, prompt_ids: list[int], params: SamplingParams,
                    engine: Any, run_step: RunStep) -> RequestOutput:
    """Search with beam width `params.n`; returns one finished RequestOutput with the best beams."""
    width = params.n
    step = SamplingParams(temperature=0.0, max_tokens=1, logprobs=2 * width, ignore_eos=True)

    def next_token_logprobs(sequences: list[list[int]]) -> Any:
        rows = np.full((len(sequences), engine.vocab_size), -np.inf)  # [W, V], top 2W filled in
        for row, output in zip(rows, run_step(sequences, step)):
            for token_id, logprob in output.outputs[0].logprobs[0].items():
                row[token_id] = logprob.logprob
        return rows

    room = engine.max_model_len - len(prompt_ids)
    max_tokens = min(params.max_tokens or room, room)
    beams = beam_search(prompt_ids, next_token_logprobs, beam_width=width, max_tokens=max_tokens,
                        eos_token_id=engine.eos_token_id, length_penalty=params.length_penalty,
                        ignore_eos=params.ignore_eos, include_stop_str_in_output=params.include_stop_str_in_output)
    tokenizer = engine.tokenizer
    completions = [
        CompletionOutput(
            index=i, token_ids=b.token_ids, cumulative_logprob=b.cum_logprob, logprobs=None,
            text=tokenizer.decode(b.token_ids, skip_special_tokens=params.skip_special_tokens) if tokenizer else "",
            finish_reason=b.finish_reason, stop_reason=b.stop_reason)
        for i, b in enumerate(beams)
    ]
    return RequestOutput(request_id, text, list(prompt_ids), None, completions, True)
