"""Beam search over the engine's requests, as vLLM's serving layer runs it.

Each search step is a batch of one-token requests, one per live beam, each asking for the top
2W raw logprobs; the prefix cache means every step computes about one new token per beam. The
search itself (`pyengine.sampling.beam_search`) only sees those numbers.

`beam_search_requests` is the one driver: a generator that yields the requests of each step and
receives their finished outputs, and returns the search's RequestOutput. The offline `LLM` runs
the requests and sends the outputs back synchronously; the `AsyncEngine` does the same with
`await`, on its event loop.

    driver = beam_search_requests(request_id, text, prompt_ids, params, engine)
    sequences, step_params = next(driver)              # token lists to run, one token each
    sequences, step_params = driver.send(outputs)      # their finished RequestOutputs, in order
    ...                                                # until StopIteration: its value is the result
"""

from __future__ import annotations

from typing import Any, Generator

import numpy as np  # host: the [W, V] logprob rows the search reads

from pyengine.outputs import CompletionOutput, RequestOutput
from pyengine.sampling import SamplingParams
from pyengine.sampling.beam_search import beam_search_steps

StepRequests = tuple[list[list[int]], SamplingParams]  # the prompts of one step, and their parameters


def beam_search_requests(request_id: str, text: str | None, prompt_ids: list[int], params: SamplingParams,
                         engine: Any) -> Generator[StepRequests, list[RequestOutput], RequestOutput]:
    """Search with beam width `params.n`; returns one finished RequestOutput with the best beams."""
    width = params.n
    step = SamplingParams(temperature=0.0, max_tokens=1, logprobs=2 * width, ignore_eos=True)
    room = engine.max_model_len - len(prompt_ids)
    max_tokens = min(params.max_tokens or room, room)
    search = beam_search_steps(prompt_ids, beam_width=width, max_tokens=max_tokens, eos_token_id=engine.eos_token_id,
                               length_penalty=params.length_penalty, ignore_eos=params.ignore_eos,
                               include_stop_str_in_output=params.include_stop_str_in_output)
    sequences = next(search)
    while True:
        outputs = yield sequences, step
        rows = np.full((len(sequences), engine.vocab_size), -np.inf)  # [W, V], the top 2W filled in
        for row, output in zip(rows, outputs):
            for token_id, logprob in output.outputs[0].logprobs[0].items():
                row[token_id] = logprob.logprob
        try:
            sequences = search.send(rows)
        except StopIteration as done:
            beams = done.value
            break
    tokenizer = engine.tokenizer
    completions = [
        CompletionOutput(
            index=i, token_ids=b.token_ids, cumulative_logprob=b.cum_logprob, logprobs=None,
            text=tokenizer.decode(b.token_ids, skip_special_tokens=params.skip_special_tokens) if tokenizer else "",
            finish_reason=b.finish_reason, stop_reason=b.stop_reason)
        for i, b in enumerate(beams)
    ]
    return RequestOutput(request_id, text, list(prompt_ids), None, completions, True)
