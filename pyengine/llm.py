"""The offline API, with vLLM's names: `LLM(model=...)`, `.generate(...)`, `.chat(...)`.

    from pyengine import LLM, SamplingParams
    llm = LLM(model="path/to/hf/checkpoint")
    out = llm.generate(["Once upon a time"], SamplingParams(temperature=0, max_tokens=16))
    print(out[0].outputs[0].text)

The same lines run against vLLM. `generate` queues every prompt on the engine and steps it until
all are done, so the prompts are batched together (continuous batching).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

from pyengine.backend.cpu_tuning import tune_process_for
from pyengine.engine_config import EngineConfig
from pyengine.engine import Engine
from pyengine.beam_requests import beam_search_requests
from pyengine.model.hub import resolve_checkpoint
from pyengine.outputs import RequestOutput
from pyengine.sampling import RequestOutputKind, SamplingParams

PromptType = Any  # str | list[int] | {"prompt_token_ids": [...], "prompt": str?}


class LLM:
    """An engine for offline batched generation.

    `model` (and `tokenizer`) are checkpoint folders or hub ids (`org/name`), found as `pyengine
    serve` finds them: `revision` and `tokenizer_revision` pick hub revisions, `download_dir`
    replaces the hub cache of the environment (HF_HOME, HF_HUB_CACHE), and HF_HUB_OFFLINE=1 reads
    the cache only (pyengine/model/hub.py). The other keyword arguments are `EngineConfig` fields.
    """

    def __init__(self, model: str, *, tokenizer: str | None = None, revision: str | None = None,
                 tokenizer_revision: str | None = None, download_dir: str | None = None, **kwargs: Any):
        model_folder, tokenizer_folder = resolve_checkpoint(model, tokenizer, revision=revision,
                                                            tokenizer_revision=tokenizer_revision,
                                                            download_dir=download_dir)
        tokenizer = None if tokenizer_folder is None else str(tokenizer_folder)
        self.llm_engine = Engine(EngineConfig.from_kwargs(str(model_folder), tokenizer=tokenizer, **kwargs))
        tune_process_for(self.llm_engine)
        self._request_counter = itertools.count()

    def get_tokenizer(self) -> Any:
        return self.llm_engine.tokenizer

    def generate(
        self,
        prompts: PromptType | Sequence[PromptType],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
    ) -> list[RequestOutput]:
        """Generate completions for one prompt or a list; outputs come back in prompt order.

        `sampling_params` is one SamplingParams for all prompts, or one per prompt.
        """
        prompt_list = [prompts] if _is_single_prompt(prompts) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params_list = (list(sampling_params) if isinstance(sampling_params, (list, tuple))
                       else [sampling_params] * len(prompt_list))
        if len(params_list) != len(prompt_list):
            raise ValueError(f"got {len(prompt_list)} prompts but {len(params_list)} sampling params")
        # generate returns each request's whole output: a DELTA request runs as CUMULATIVE (a copy)
        params_list = [dataclasses.replace(p, output_kind=RequestOutputKind.CUMULATIVE)
                       if p.output_kind is RequestOutputKind.DELTA else p for p in params_list]
        if any(p.use_beam_search for p in params_list):
            return [self._beam_search(prompt, p) if p.use_beam_search else self._run([prompt], [p])[0]
                    for prompt, p in zip(prompt_list, params_list)]
        return self._run(prompt_list, params_list)

    def chat(
        self,
        messages: list[dict[str, Any]] | list[list[dict[str, Any]]],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        documents: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        """Render each conversation with the model's chat template, then generate."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        tokenizer = self.get_tokenizer()
        prompts = []
        for conversation in conversations:
            ids = tokenizer.apply_chat_template(
                conversation, tools=tools, documents=documents, chat_template=chat_template,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message, tokenize=True,
                **(chat_template_kwargs or {}),
            )
            prompts.append({"prompt_token_ids": ids})
        return self.generate(prompts, sampling_params)

    def _run(self, prompts: list[PromptType], params_list: list[SamplingParams]) -> list[RequestOutput]:
        engine = self.llm_engine
        request_ids = []
        try:
            for prompt, params in zip(prompts, params_list):
                request_id = str(next(self._request_counter))
                engine.add_request(request_id, prompt, params)
                request_ids.append(request_id)
            finished: dict[str, RequestOutput] = {}
            while len(finished) < len(request_ids):
                for output in engine.step():
                    if output.finished:
                        finished[output.request_id] = output
        except BaseException:
            engine.abort_request(request_ids)  # never leave blocks behind on an error
            raise
        return [finished[r] for r in request_ids]

    def _beam_search(self, prompt: PromptType, params: SamplingParams) -> RequestOutput:
        """use_beam_search: vLLM's beam search, each step a batch of one-token requests run here."""
        text, prompt_ids = self.llm_engine.prompt_ids(prompt, params)
        driver = beam_search_requests(str(next(self._request_counter)), text, prompt_ids, params, self.llm_engine)
        sequences, step = next(driver)
        while True:
            outputs = self._run([{"prompt_token_ids": seq} for seq in sequences], [step] * len(sequences))
            try:
                sequences, step = driver.send(outputs)
            except StopIteration as done:
                return done.value


def _is_single_prompt(prompts: Any) -> bool:
    if isinstance(prompts, (str, dict)):
        return True
    return isinstance(prompts, (list, tuple)) and bool(prompts) and isinstance(prompts[0], int)
