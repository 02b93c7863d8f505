"""Every error class, end to end: 422 schema errors, 400 semantic errors, 404, 401, 503, and
the openai client's view of them. Nothing a client sends may produce a 5xx."""

from __future__ import annotations

import pytest

from tests.server.conftest import MODEL_NAME, chat_body, serve

URL = "/v1/chat/completions"


# -- 422: the body does not fit the schema (types read as vLLM's pydantic models read them) ----------


@pytest.mark.parametrize("body, loc, kind", [
    ({"model": MODEL_NAME}, ["body", "messages"], "missing"),
    ({"messages": "hi"}, ["body", "messages"], "list_type"),
    (chat_body(temperature="warm"), ["body", "temperature"], "float_parsing"),
    (chat_body(max_tokens="five"), ["body", "max_tokens"], "int_parsing"),
    (chat_body(n=1.5), ["body", "n"], "int_from_float"),
    (chat_body(stream="maybe"), ["body", "stream"], "bool_parsing"),
    (chat_body(include_reasoning=None), ["body", "include_reasoning"], "bool_type"),
    (chat_body(tool_choice="sometimes"), ["body", "tool_choice"], "literal_error"),
    (chat_body(reasoning_effort="extreme"), ["body", "reasoning_effort"], "literal_error"),
    (chat_body(logit_bias={"5": "high"}), ["body", "logit_bias", "5"], "float_parsing"),
    (chat_body(truncate_prompt_tokens=-2), ["body", "truncate_prompt_tokens"], "greater_than_equal"),
    (chat_body(messages=[{"content": "no role"}]), ["body", "messages", 0], "value_error"),
    (chat_body(messages=[{"role": "user", "content": None}]), ["body", "messages", 0], "value_error"),
    (chat_body(response_format={"type": "yaml"}), ["body", "response_format", "type"], "literal_error"),
    (chat_body(stream_options={"include_usage": "maybe"}), ["body", "stream_options", "include_usage"], "bool_parsing"),
    (chat_body(tools=[{"type": "function", "function": {"description": "no name"}}]),
     ["body", "tools", 0, "function", "name"], "missing"),
])
def test_schema_violations_are_422_in_the_spec_shape(http, body, loc, kind):
    response = http.post(URL, json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert {"loc", "msg", "type"} <= detail[0].keys()
    assert any(d["loc"] == loc and d["type"] == kind for d in detail), detail


def test_malformed_json_and_wrong_content_type_are_422(http):
    response = http.post(URL, content=b'{"messages": [', headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    response = http.post(URL, content=b"messages=hi", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422


def test_unknown_fields_are_accepted(http):
    response = http.post(URL, json=chat_body(not_in_the_spec=1, metadata={"a": "b"}))
    assert response.status_code == 200, response.text


# -- 400: fits the schema, breaks a rule --------------------------------------------------------------


@pytest.mark.parametrize("fields, needle, param", [
    ({"temperature": -1}, "temperature", None),
    ({"top_p": 0}, "top_p", None),
    ({"top_k": -5}, "top_k", None),
    ({"n": 2, "temperature": 0}, "n must be 1 when using greedy", None),
    ({"n": 0}, "n must be at least 1", None),
    ({"n": 9}, "n must be at most 8", "n"),
    ({"max_tokens": 0}, "max_tokens must be at least 1", "max_tokens"),
    ({"max_completion_tokens": 10**6}, "too large", "max_completion_tokens"),
    ({"max_tokens": 120}, "maximum input length", "input_tokens"),
    ({"min_tokens": 9, "max_tokens": 4}, "min_tokens", None),
    ({"stop": [""]}, "stop", None),
    ({"logit_bias": {"abc": 1}}, "logit_bias", "logit_bias"),
    ({"logit_bias": {"100000": 1}}, "out-of-vocab", None),
    ({"allowed_token_ids": []}, "allowed_token_ids", None),
    ({"stop_token_ids": [-3]}, "out-of-vocab", None),
    ({"top_logprobs": 2}, "`logprobs` must be set to true", "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 50}, "greater than max allowed", None),
    ({"prompt_logprobs": 2, "stream": True}, "not available when `stream=True`", "prompt_logprobs"),
    ({"stream_options": {"include_usage": True}}, "only be defined when `stream=True`", "stream_options"),
    ({"cache_salt": ""}, "cache_salt", "cache_salt"),
    ({"priority": 3}, "priority", None),
    ({"add_generation_prompt": True, "continue_final_message": True}, "Cannot set both", "continue_final_message"),
    ({"continue_final_message": True}, "continue_final_message", "messages"),
    ({"chat_template": "{{ messages }}"}, "--trust-request-chat-template", "chat_template"),
    ({"chat_template_kwargs": {"chat_template": "x"}}, "--trust-request-chat-template", "chat_template"),
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs may not set", "chat_template_kwargs"),
    ({"truncate_prompt_tokens": 200}, "truncate_prompt_tokens", "truncate_prompt_tokens"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "array", "uniqueItems": True}}}}, "unsupported JSON Schema keyword(s): uniqueItems", "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}},
     "the schema admits no value at all", "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "json_schema", "response_format"),
    ({"structured_outputs": {"regex": "a(b"}}, "invalid structured_outputs", "structured_outputs"),
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "only use one kind", "structured_outputs"),
    ({"structured_outputs": {"grammar": "root ::= missing"}}, "invalid structured_outputs", "structured_outputs"),
    ({"tool_choice": "auto"}, "`tools` must be set", "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "has not been passed", "tool_choice"),
    ({"kv_transfer_params": {"a": 1}}, "KV-transfer connector", "kv_transfer_params"),
    ({"mm_processor_kwargs": {"a": 1}}, "text-only", "mm_processor_kwargs"),
    ({"vllm_xargs": {"a": 1}}, "extensions", "vllm_xargs"),
    ({"length_penalty": 2.0}, "beam search", "length_penalty"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "image input is not supported", "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     "audio input is not supported", "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "v"}}]}]},
     "video input is not supported", "messages"),
    ({"messages": [{"author": {"role": "user"}, "content": []}]}, "harmony", "messages"),
    ({"messages": [{"role": "user", "content": "x" * 600}]}, "context length", "input_tokens"),
])
def test_rule_violations_are_400_with_an_openai_error(http, fields, needle, param):
    response = http.post(URL, json=chat_body(**fields))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "BadRequestError" and error["code"] == 400
    assert needle in error["message"]
    if param is not None:
        assert error["param"] == param


def test_unknown_model_is_404_and_alias_works(http):
    response = http.post(URL, json=chat_body(model="gpt-4"))
    assert response.status_code == 404
    assert response.json()["error"] == {"message": "The model `gpt-4` does not exist.", "type": "NotFoundError",
                                        "param": "model", "code": 404}
    response = http.post(URL, json=chat_body(model="alias"))
    assert response.status_code == 200 and response.json()["model"] == MODEL_NAME
    assert http.post(URL, json=chat_body(model=None)).status_code == 200


def test_unknown_routes_and_methods_answer_json(http):
    response = http.get("/v1/nothing")
    assert response.status_code == 404 and "error" in response.json()
    response = http.get(URL)
    assert response.status_code == 405 and "error" in response.json()


def test_openai_client_raises_the_matching_exceptions(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}],
                                       temperature=-1, max_tokens=2)
    assert "temperature" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=MODEL_NAME, messages="hi")  # type: ignore[arg-type]


# -- 401 and 503: separate servers ---------------------------------------------------------------------


def test_api_key_is_required_on_v1_only():
    import httpx
    import openai

    with serve(api_key="s3cret") as running, httpx.Client(base_url=running.url) as http:
        response = http.post(URL, json=chat_body())
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "AuthenticationError"
        assert http.post(URL, json=chat_body(), headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/health").status_code == 200  # outside /v1: open, as in vLLM
        good = openai.OpenAI(base_url=f"{running.url}/v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}],
                                            max_tokens=2).choices
        bad = openai.OpenAI(base_url=f"{running.url}/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_a_full_server_answers_503_with_retry_after():
    import httpx

    with serve(max_pending_requests=0) as running, httpx.Client(base_url=running.url) as http:
        response = http.post(URL, json=chat_body())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "ServiceUnavailableError"
