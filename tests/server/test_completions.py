"""`POST /v1/completions` through the `openai` client and raw HTTP, against the tiny Qwen2 model.

The model's text is random bytes; what is checked is what a client of vLLM's completions API
relies on: the response and chunk shapes, prompt-major choice indices, the default of 16
tokens, echo, the legacy logprobs, token-id prompts, the 400s, and that a client who leaves
frees its KV blocks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests.server.conftest import MODEL_NAME, serve
from tests.server.probes import slow_steps


def complete(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = http.post("/v1/completions", json={"model": MODEL_NAME, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def events(http: httpx.Client, **fields: Any) -> list[Any]:
    """The SSE events of a streamed completion: JSON chunks, then the string "[DONE]"."""
    with http.stream("POST", "/v1/completions", json={"model": MODEL_NAME, "stream": True, **fields}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


def streamed_texts(chunks: list[Any]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    return texts


def prompt_ids(http: httpx.Client, text: str) -> list[int]:
    return http.post("/tokenize", json={"prompt": text}).json()["tokens"]


def test_a_completion_through_the_openai_client(client, http):
    completion = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=5, temperature=0)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == MODEL_NAME
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason in ("length", "stop") and choice.logprobs is None
    assert completion.usage.prompt_tokens == len(prompt_ids(http, "Hello"))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    raw = complete(http, prompt="Hello", max_tokens=5, temperature=0, ignore_eos=True, return_token_ids=True)
    assert set(raw) == {"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint",
                        "usage", "kv_transfer_params"}
    raw_choice = raw["choices"][0]
    assert set(raw_choice) == {"index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_logprobs",
                               "token_ids", "prompt_token_ids"}
    assert raw_choice["finish_reason"] == "length" and len(raw_choice["token_ids"]) == 5
    assert raw_choice["prompt_token_ids"] == prompt_ids(http, "Hello")
    assert raw_choice["text"] == http.post("/detokenize", json={"tokens": raw_choice["token_ids"]}).json()["prompt"]
    assert raw_choice["text"].startswith(choice.text)  # greedy: the same start, with or without EOS


def test_max_tokens_defaults_to_16_not_the_rest_of_the_context(http):
    for fields in ({}, {"max_tokens": None}):
        body = complete(http, prompt="Hello", ignore_eos=True, **fields)
        assert body["usage"]["completion_tokens"] == 16 and body["choices"][0]["finish_reason"] == "length"


def test_streaming_gives_the_same_text_and_a_usage_chunk(client, http):
    whole = complete(http, prompt="Once", max_tokens=6, temperature=0, ignore_eos=True)
    stream = client.completions.create(model=MODEL_NAME, prompt="Once", max_tokens=6, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert all(c.object == "text_completion" and c.id == chunks[0].id for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole["choices"][0]["text"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].usage.prompt_tokens == whole["usage"]["prompt_tokens"]
    raw = events(http, prompt="Once", max_tokens=2, stream_options={"include_usage": True})
    assert raw[-1] == "[DONE]" and raw[-2]["choices"] == [] and set(raw[-2]) == {"id", "object", "created", "model",
                                                                                 "choices", "usage"}
    assert set(raw[0]["choices"][0]) == {"index", "text", "logprobs", "finish_reason", "stop_reason",
                                         "prompt_token_ids", "token_ids"}
    assert events(http, prompt="Once", max_tokens=2)[-2]["choices"]  # no usage chunk unless asked


def test_echo_prepends_the_prompt_and_max_tokens_0_returns_only_the_echo(client, http):
    plain = complete(http, prompt="Hello", max_tokens=3, temperature=0, ignore_eos=True)["choices"][0]["text"]
    echoed = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=3, temperature=0, echo=True,
                                       extra_body={"ignore_eos": True})
    assert echoed.choices[0].text == "Hello" + plain
    only = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=0, echo=True)
    assert only.choices[0].text == "Hello" and only.usage.completion_tokens == 0
    chunks = events(http, prompt="Hello", max_tokens=3, temperature=0, echo=True, ignore_eos=True)
    assert chunks[0]["choices"][0]["text"].startswith("Hello")
    assert streamed_texts(chunks) == {0: "Hello" + plain}
    assert streamed_texts(events(http, prompt="Hello", max_tokens=0, echo=True)) == {0: "Hello"}
    with pytest.raises(openai.BadRequestError, match="max_tokens must be at least 1"):
        client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=0)


def check_legacy_logprobs(logprobs: dict[str, Any], num_tokens: int, num_top: int, num_prompt: int = 0) -> None:
    """Four parallel lists; offsets count the listed tokens' characters; each top dict holds the
    token itself and the top `num_top`; greedy tokens (after the `num_prompt` echoed ones) are the
    most likely. Tokens are written `token_id:<id>` (distinct keys, where byte tokens' texts collide)."""
    assert set(logprobs) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    tokens, values, tops, offsets = (logprobs[k] for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset"))
    assert len(tokens) == len(values) == len(tops) == len(offsets) == num_tokens
    assert offsets == [sum(len(t) for t in tokens[:i]) for i in range(num_tokens)]
    for position, (token, value, top) in enumerate(zip(tokens, values, tops)):
        assert token.startswith("token_id:")
        if value is None:
            assert position == 0 and top is None  # the first prompt token has no context
            continue
        assert num_top <= len(top) <= num_top + 1 and top[token] == value
        if position >= num_prompt:
            assert value == pytest.approx(max(top.values()))  # temperature 0: the most likely token


def test_logprobs_are_the_legacy_format_and_echo_adds_the_prompts(client, http):
    as_ids = {"ignore_eos": True, "return_tokens_as_token_ids": True}
    completion = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=4, temperature=0,
                                           logprobs=2, extra_body=as_ids)
    check_legacy_logprobs(completion.choices[0].logprobs.model_dump(), 4, 2)
    num_prompt = len(prompt_ids(http, "Hello"))
    body = complete(http, prompt="Hello", max_tokens=4, temperature=0, logprobs=2, echo=True, **as_ids)
    choice = body["choices"][0]
    check_legacy_logprobs(choice["logprobs"], num_prompt + 4, 2, num_prompt)
    assert choice["logprobs"]["tokens"][:num_prompt] == [f"token_id:{i}" for i in prompt_ids(http, "Hello")]
    assert len(choice["prompt_logprobs"]) == num_prompt  # echo turned prompt logprobs on
    assert choice["logprobs"]["token_logprobs"][num_prompt:] == completion.choices[0].logprobs.token_logprobs
    # token texts by default: the echoed prompt's tokens spell it
    plain = complete(http, prompt="Hello", max_tokens=1, logprobs=0, echo=True)["choices"][0]["logprobs"]
    assert "".join(plain["tokens"][:num_prompt]) == "Hello" and plain["text_offset"][num_prompt] == len("Hello")
    # streamed: each chunk's offsets continue from the text sent before
    chunks = events(http, prompt="Hello", max_tokens=4, temperature=0, logprobs=1, echo=True, ignore_eos=True)
    offsets = [o for c in chunks[:-1] for o in c["choices"][0]["logprobs"]["text_offset"]]
    texts = [c["choices"][0]["text"] for c in chunks[:-1]]
    starts = [sum(len(t) for t in texts[:i]) for i in range(len(texts))]
    assert [c["choices"][0]["logprobs"]["text_offset"][0] for c in chunks[:-1]] == starts
    assert len(offsets) == num_prompt + 4


def test_a_list_of_prompts_with_n_numbers_choices_prompt_major(http):
    def texts(prompt: Any, stream: bool = False) -> list[str]:
        fields = {"prompt": prompt, "n": 2, "max_tokens": 4, "seed": 7, "temperature": 1.0, "ignore_eos": True}
        if stream:
            by_index = streamed_texts(events(http, **fields))
            return [by_index[i] for i in sorted(by_index)]
        choices = complete(http, **fields)["choices"]
        assert [c["index"] for c in choices] == list(range(len(choices)))
        return [c["text"] for c in choices]

    hello, bye = texts("Hello"), texts("Bye")
    assert hello[0] != hello[1]  # two samples of one prompt (seed, seed + 1)
    both = texts(["Hello", "Bye"])
    assert both == hello + bye  # prompt 0's n choices, then prompt 1's
    assert texts(["Hello", "Bye"], stream=True) == both
    body = complete(http, prompt=["Hello", "Bye"], max_tokens=2, ignore_eos=True)
    assert body["usage"]["prompt_tokens"] == len(prompt_ids(http, "Hello")) + len(prompt_ids(http, "Bye"))
    assert body["usage"]["completion_tokens"] == 4


def test_token_id_prompts_are_the_prompts_they_spell(client, http):
    ids, other = prompt_ids(http, "Hello"), prompt_ids(http, "Bye")
    by_text = complete(http, prompt=["Hello", "Bye"], max_tokens=4, temperature=0, ignore_eos=True)["choices"]
    by_ids = client.completions.create(model=MODEL_NAME, prompt=[ids, other], max_tokens=4, temperature=0,
                                       echo=True, extra_body={"ignore_eos": True}).choices
    assert [c.text for c in by_ids] == ["Hello" + by_text[0]["text"], "Bye" + by_text[1]["text"]]
    single = complete(http, prompt=ids, max_tokens=4, temperature=0, ignore_eos=True)["choices"]
    assert [c["text"] for c in single] == [by_text[0]["text"]]


def test_add_special_tokens_and_truncation(http):
    ids = prompt_ids(http, "Hello world")
    assert complete(http, prompt="Hello world", max_tokens=1, add_special_tokens=False)["usage"]["prompt_tokens"] \
        == len(http.post("/tokenize", json={"prompt": "Hello world", "add_special_tokens": False}).json()["tokens"])
    kept = complete(http, prompt="Hello world", max_tokens=1, truncate_prompt_tokens=3, echo=True,
                    return_token_ids=True)["choices"][0]
    assert kept["prompt_token_ids"] == ids[-3:]
    first = complete(http, prompt="Hello world", max_tokens=1, truncate_prompt_tokens=3, truncation_side="right",
                     return_token_ids=True)["choices"][0]
    assert first["prompt_token_ids"] == ids[:3]


@pytest.mark.parametrize("fields, message", [
    ({"suffix": "!"}, "suffix is not supported"),
    ({"prompt": ""}, "`prompt` must be given"),
    ({"prompt": [[1, 2], [10**6]]}, "prompt[1]: token ids [1000000] are outside the vocabulary"),
    ({"prompt_embeds": "AAAA"}, "prompt_embeds are not supported"),
    ({"logprobs": -2}, "`logprobs` must be a non-negative value or -1"),
    ({"logprobs": 50}, "logprobs"),
    ({"temperature": -1}, "temperature"),
    ({"n": 2, "temperature": 0}, "n must be 1 when using greedy sampling"),
    ({"stream": True, "use_beam_search": True, "n": 2}, "Streaming is not currently supported with beam search"),
    ({"prompt_logprobs": 1, "stream": True}, "`prompt_logprobs` are not available when `stream=True`"),
    ({"max_tokens": 1000}, "'max_tokens' is too large"),
    ({"vllm_xargs": {"a": 1}}, "vllm_xargs"),
    ({"structured_outputs": {"regex": "("}}, "invalid structured_outputs"),
])
def test_fields_that_cannot_be_honoured_are_a_clear_400(http, fields, message):
    response = http.post("/v1/completions", json={"model": MODEL_NAME, "prompt": "Hello", **fields})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_suffix_is_a_bad_request_through_the_client(client):
    with pytest.raises(openai.BadRequestError, match="suffix is not supported"):
        client.completions.create(model=MODEL_NAME, prompt="def f(", suffix="return 1")
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="other", prompt="Hello")


def test_sampling_extensions_and_structured_outputs(client):
    choice = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=8, temperature=0.7,
                                       extra_body={"structured_outputs": {"choice": ["yes", "no"]}}).choices[0]
    assert choice.text in ("yes", "no") and choice.finish_reason == "stop"
    stopped = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=8, temperature=0,
                                        extra_body={"allowed_token_ids": [72, 73], "min_tokens": 2,
                                                    "top_k": 5, "stop": ["ii"], "ignore_eos": True}).choices[0]
    assert set(stopped.text) <= {"i", "j"} and "ii" not in stopped.text
    biased = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=4, temperature=0,
                                       logit_bias={"72": 100}, extra_body={"ignore_eos": True}).choices[0]
    assert biased.text == "iiii"
    banned = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=4, temperature=0,
                                       extra_body={"allowed_token_ids": [72, 73], "bad_words": ["i"],
                                                   "ignore_eos": True}).choices[0]
    assert banned.text == "jjjj"


def test_a_constraint_is_compiled_once_for_every_prompt_of_a_request(http, monkeypatch):
    import pyengine.structured  # noqa: PLC0415

    calls: list[str] = []
    original = pyengine.structured.compile_grammar

    def counting(kind, *args, **kwargs):
        calls.append(kind)
        return original(kind, *args, **kwargs)

    monkeypatch.setattr(pyengine.structured, "compile_grammar", counting)
    body = complete(http, prompt=["Hello", "Bye"], n=2, max_tokens=8, temperature=0.7,
                    structured_outputs={"choice": ["yes", "no"]})
    assert [c["text"] in ("yes", "no") for c in body["choices"]] == [True] * 4
    assert calls == ["choice"]  # while the request was checked; the engine uses that grammar for all four


def test_prompt_logprobs_and_continuous_usage(http):
    num_prompt = len(prompt_ids(http, "Hello"))
    choice = complete(http, prompt="Hello", max_tokens=2, prompt_logprobs=1)["choices"][0]
    assert choice["logprobs"] is None and len(choice["prompt_logprobs"]) == num_prompt
    assert choice["prompt_logprobs"][0] is None and all(1 <= len(step) <= 2 for step in choice["prompt_logprobs"][1:])
    chunks = events(http, prompt="Hello", max_tokens=3, ignore_eos=True,
                    stream_options={"include_usage": True, "continuous_usage_stats": True})
    counts = [c["usage"]["completion_tokens"] for c in chunks[:-2]]
    assert counts == sorted(counts) and counts[-1] == 3 and chunks[-2]["usage"]["completion_tokens"] == 3


def test_a_client_that_leaves_aborts_every_prompt_and_frees_its_blocks():
    with serve(max_n=4) as live:
        slow_steps(live.engine, 0.02)
        core = live.engine.engine
        aborted: list[str] = []
        original = core.abort_request

        def recording_abort(request_ids):
            ids = [request_ids] if isinstance(request_ids, str) else list(request_ids)
            aborted.extend(i for i in ids if i in core.requests)
            return original(request_ids)

        core.abort_request = recording_abort
        body = {"model": MODEL_NAME, "prompt": ["Hello", "Bye"], "n": 2, "max_tokens": 100, "ignore_eos": True}

        async def leave_mid_stream() -> int:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
                async with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
                    seen = 0
                    async for line in response.aiter_lines():
                        seen += line.startswith("data: ")
                        if seen == 3:
                            return seen  # leaving the block closes the connection mid-stream
            return seen

        assert asyncio.run(leave_mid_stream()) == 3
        live.wait_idle()
        assert len(aborted) == 2 and core.requests == {}  # both prompts' requests, while they ran
        free, total = live.free_blocks()
        assert free == total

        aborted.clear()
        with pytest.raises(httpx.ReadTimeout):  # a whole answer: the client gives up waiting
            httpx.post(f"{live.url}/v1/completions", json=body, timeout=httpx.Timeout(30, read=0.5))
        live.wait_idle()
        assert len(aborted) == 2 and core.requests == {}
        free, total = live.free_blocks()
        assert free == total


def test_the_served_document_has_the_route(http):
    document = http.get("/openapi.json").json()
    operation = document["paths"]["/v1/completions"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CompletionRequest"}
    assert {"200", "400", "404", "422"} <= set(operation["responses"])
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    properties = document["components"]["schemas"]["CompletionRequest"]["properties"]
    assert properties["max_tokens"]["default"] == 16 and properties["add_special_tokens"]["default"] is True
