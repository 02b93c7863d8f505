"""Chat completions end to end with the real `openai` client against a real uvicorn server.

The tiny random Qwen2 writes random bytes, so these tests check shapes, counts and the rules
of each field, not the words. Greedy decoding (temperature 0) makes outputs reproducible.
"""

from __future__ import annotations

import json

import httpx

from tests.server.conftest import MODEL_NAME, chat_body, serve

HELLO = [{"role": "user", "content": "Hello"}]


def sse_events(http: httpx.Client, body: dict) -> list:
    """POST a streamed request and return its decoded events ("[DONE]" as the string)."""
    events = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_non_streaming_response_shape(client):
    completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=5, temperature=0)
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == MODEL_NAME
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "length"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5
    raw = completion.model_dump()
    assert raw["choices"][0]["stop_reason"] is None and raw["prompt_logprobs"] is None


def test_streaming_matches_non_streaming(client, http):
    whole = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=6, temperature=0)
    stream = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    events = sse_events(http, chat_body(max_tokens=3, stream=True))
    assert events[-1] == "[DONE]" and all("usage" not in e for e in events[:-1])


def test_n_choices_streamed_and_whole(client, http):
    whole = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4, n=3, seed=7)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert whole.usage.completion_tokens == 12
    events = sse_events(http, chat_body(max_tokens=4, n=3, stream=True, stream_options={}))
    chunks = [e for e in events if e != "[DONE]"]
    assert all(len(c["choices"]) == 1 for c in chunks[:-1])  # one choice per chunk
    roles = [c["choices"][0]["index"] for c in chunks[:-1] if c["choices"][0]["delta"].get("role")]
    finishes = [c["choices"][0]["index"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]]
    assert sorted(roles) == [0, 1, 2] and sorted(finishes) == [0, 1, 2]
    assert chunks[-1]["usage"]["completion_tokens"] == 12  # `stream_options: {}` turns usage on


def test_seed_reproduces(client):
    first = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=6, seed=123)
    second = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=6, seed=123)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_logprobs_whole_and_streamed(client):
    completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=0,
                                                logprobs=True, top_logprobs=3)
    content = completion.choices[0].logprobs.content
    assert len(content) == 4
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob  # greedy: top-1 first
        assert entry.token == entry.top_logprobs[0].token
    stream = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=0,
                                            logprobs=True, top_logprobs=3, stream=True)
    streamed = [e for c in stream if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]


def test_token_ids_as_tokens_and_prompt_logprobs(http):
    body = http.post("/v1/chat/completions", json=chat_body(
        return_token_ids=True, logprobs=True, top_logprobs=1, return_tokens_as_token_ids=True,
        prompt_logprobs=1, temperature=0)).json()
    choice = body["choices"][0]
    assert len(choice["token_ids"]) == 4 and body["prompt_token_ids"][0] == 298  # <|im_start|>
    assert [e["token"] for e in choice["logprobs"]["content"]] == [f"token_id:{i}" for i in choice["token_ids"]]
    prompt_logprobs = body["prompt_logprobs"]
    assert prompt_logprobs[0] is None and len(prompt_logprobs) == len(body["prompt_token_ids"])
    for token_id, step in zip(body["prompt_token_ids"][1:], prompt_logprobs[1:]):
        assert str(token_id) in step
    assert body["usage"]["prompt_tokens_details"] is None  # reported only with --enable-prompt-tokens-details


def test_streamed_token_ids(http):
    events = sse_events(http, chat_body(return_token_ids=True, stream=True, temperature=0))
    assert events[0]["prompt_token_ids"][0] == 298
    ids = [i for e in events[1:-1] for i in e["choices"][0]["token_ids"]]
    whole = http.post("/v1/chat/completions", json=chat_body(return_token_ids=True, temperature=0)).json()
    assert ids == whole["choices"][0]["token_ids"]


def test_stop_strings_cut_the_text(client, http):
    free = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12, temperature=0)
    text = free.choices[0].message.content
    stop = text[3:5]
    cut = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=12, temperature=0, stop=[stop])
    raw = cut.model_dump()["choices"][0]
    assert raw["finish_reason"] == "stop" and raw["stop_reason"] == stop
    assert cut.choices[0].message.content == text[:text.find(stop)]
    events = sse_events(http, chat_body(max_tokens=12, temperature=0, stop=[stop], stream=True))
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1])
    assert streamed == cut.choices[0].message.content  # a partial stop string is never streamed


def test_continuous_usage_stats(http):
    events = sse_events(http, chat_body(max_tokens=3, stream=True,
                                        stream_options={"include_usage": True, "continuous_usage_stats": True}))
    usages = [e["usage"]["completion_tokens"] for e in events[:-1] if e["choices"]]
    assert usages[0] == 0 and usages[-1] == 3 and usages == sorted(usages)


def test_prefix_cache_hits_are_reported():
    """With --enable-prompt-tokens-details: the cached count when there is one, null otherwise (vLLM)."""
    messages = [{"role": "system", "content": "You are a careful assistant. " * 3}, *HELLO]
    with serve(enable_prompt_tokens_details=True) as running, httpx.Client(base_url=running.url) as http:
        first = http.post("/v1/chat/completions", json=chat_body(messages=messages)).json()
        assert first["usage"]["prompt_tokens_details"] is None  # nothing cached yet
        again = http.post("/v1/chat/completions", json=chat_body(messages=messages)).json()
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= 16
        salted = http.post("/v1/chat/completions", json=chat_body(messages=messages, cache_salt="tenant-a")).json()
        assert salted["usage"]["prompt_tokens_details"] is None
        with_logprobs = http.post("/v1/chat/completions", json=chat_body(messages=messages, prompt_logprobs=1)).json()
        assert with_logprobs["usage"]["prompt_tokens_details"] is None  # prompt logprobs read no cache


def test_echo_and_continue_final_message(http):
    messages = [*HELLO, {"role": "assistant", "content": "Once upon"}]
    body = http.post("/v1/chat/completions", json=chat_body(
        messages=messages, add_generation_prompt=False, continue_final_message=True, echo=True, temperature=0)).json()
    assert body["choices"][0]["message"]["content"].startswith("Once upon")
    assert body["prompt_logprobs"] is not None  # vLLM quirk: echo turns prompt logprobs on
    events = sse_events(http, chat_body(messages=messages, add_generation_prompt=False,
                                        continue_final_message=True, echo=True, stream=True))
    assert events[1]["choices"][0]["delta"] == {"content": "Once upon"}


def test_response_role_follows_the_last_message_without_generation_prompt(http):
    body = http.post("/v1/chat/completions", json=chat_body(add_generation_prompt=False)).json()
    assert body["choices"][0]["message"]["role"] == "user"


def test_message_roles_and_content_parts(client):
    messages = [
        {"role": "developer", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "function", "name": "f", "content": "1"},
        {"role": "user", "name": "ann", "content": "ok"},
    ]
    completion = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=2,
                                                extra_body={"ignore_eos": True})  # the random model may end early
    assert completion.choices[0].finish_reason == "length"


def test_template_fields_reach_the_template():
    template = ("{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}\n{% endfor %}"
                "{% if documents %}docs={{ documents | length }}\n{% endif %}"
                "{% if reasoning_effort %}effort={{ reasoning_effort }}\n{% endif %}"
                "{% if flavour %}flavour={{ flavour }}\n{% endif %}assistant:")
    with serve(trust_request_chat_template=True) as running, httpx.Client(base_url=running.url) as http:
        body = chat_body(chat_template=template, documents=[{"title": "a", "text": "b"}], reasoning_effort="low",
                         chat_template_kwargs={"flavour": "mint"})
        tokens = http.post("/tokenize", json={"messages": body["messages"], "chat_template": template,
                                              "chat_template_kwargs": {"flavour": "mint"}}).json()
        assert tokens["count"] > 0
        response = http.post("/v1/chat/completions", json={**body, "return_token_ids": True}).json()
        prompt = http.post("/detokenize", json={"tokens": response["prompt_token_ids"]}).json()["prompt"]
        assert prompt == "user:Hello\ndocs=1\neffort=low\nflavour=mint\nassistant:"


def test_truncate_prompt_tokens_keeps_the_last_tokens(http):
    body = http.post("/v1/chat/completions", json=chat_body(truncate_prompt_tokens=5, return_token_ids=True)).json()
    assert body["usage"]["prompt_tokens"] == 5
    full = http.post("/tokenize", json={"messages": chat_body()["messages"]}).json()["tokens"]
    assert body["prompt_token_ids"] == full[-5:]


def test_request_id_priority_user_and_header(http):
    body = http.post("/v1/chat/completions", json=chat_body(request_id="abc", priority=0, user="u1")).json()
    assert body["id"] == "chatcmpl-abc"
    body = http.post("/v1/chat/completions", json=chat_body(), headers={"X-Request-Id": "from-header"}).json()
    assert body["id"] == "chatcmpl-from-header"
    both = [http.post("/v1/chat/completions", json=chat_body(request_id="same")) for _ in range(2)]
    assert [r.status_code for r in both] == [200, 200]  # duplicate ids do not collide


def test_priority_scheduling_server_accepts_priorities():
    with serve(engine_options={"scheduling_policy": "priority"}) as running, httpx.Client(base_url=running.url) as http:
        assert http.post("/v1/chat/completions", json=chat_body(priority=-3)).status_code == 200


def test_sampling_fields_are_accepted(client):
    completion = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=0.8, top_p=0.9, presence_penalty=0.5,
        frequency_penalty=0.5, logit_bias={"65": 5}, seed=1, stop=["zzz"],
        extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "min_tokens": 2, "ignore_eos": True,
                    "stop_token_ids": [299], "bad_words": ["qq"], "allowed_token_ids": list(range(30, 200)),
                    "skip_special_tokens": False, "spaces_between_special_tokens": False,
                    "include_stop_str_in_output": True, "add_special_tokens": True,
                    "repetition_detection": {"max_pattern_size": 3, "min_count": 3}})
    assert completion.usage.completion_tokens >= 2
    ids = completion.model_dump()["choices"][0]
    assert ids["finish_reason"] in ("length", "repetition", "stop")


def test_response_format_text_is_plain_generation(client):
    completion = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=2,
                                                response_format={"type": "text"})
    assert completion.choices[0].finish_reason == "length"


def test_beam_search_through_the_server(client, http):
    """use_beam_search: n beams ranked best first; greedy is the width-1 beam; streaming sends
    the role chunk, then each choice whole with its finish_reason."""
    greedy = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=0,
                                            extra_body={"ignore_eos": True, "return_token_ids": True})
    one = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4, n=1,
                                         extra_body={"use_beam_search": True, "ignore_eos": True,
                                                     "return_token_ids": True})
    assert one.model_dump()["choices"][0]["token_ids"] == greedy.model_dump()["choices"][0]["token_ids"]
    three = client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=3, n=3,
                                           extra_body={"use_beam_search": True, "ignore_eos": True})
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert len({c.message.content for c in three.choices}) == 3
    assert three.usage.completion_tokens == 9
    events = sse_events(http, chat_body(max_tokens=3, n=2, stream=True, use_beam_search=True, ignore_eos=True))
    assert events[-1] == "[DONE]"
    finished = [e["choices"][0] for e in events[:-1] if e["choices"] and e["choices"][0].get("finish_reason")]
    assert sorted(c["index"] for c in finished) == [0, 1]


def test_an_event_stays_one_line_whatever_the_text_holds():
    """U+0085, U+2028 and U+2029 are line breaks to str.splitlines (so to httpx's iter_lines): an
    event writes them as JSON escapes, so a client splitting lines still reads the text intact."""
    from pyengine_server.streaming import sse_event

    text = "a\u2028b\x85c\u2029d \u00e9\U0001F600"
    event = sse_event({"choices": [{"delta": {"content": text}}]})
    [line, blank] = event.splitlines()
    assert blank == "" and json.loads(line[len("data: "):])["choices"][0]["delta"]["content"] == text
    assert "\u00e9\U0001F600" in line  # other text stays as it is (ensure_ascii=False, as vLLM)
