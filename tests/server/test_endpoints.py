"""The neighbouring endpoints (vLLM's shapes) and the served OpenAPI document."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

import pyengine
from pyengine_server.openapi import SPEC_FILE
from tests.server.conftest import MODEL_NAME, QWEN2
from tests.server.serve_command import pyengine_serve

SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "openapi.json"


def test_models(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_NAME, "alias"]
    raw = models.data[0].model_dump()
    assert raw["max_model_len"] == 128 and raw["object"] == "model" and raw["permission"][0]["allow_sampling"]


def test_health_and_version(http):
    response = http.get("/health")
    assert response.status_code == 200 and response.content == b""
    assert http.get("/version").json() == {"version": pyengine.__version__}


def test_tokenize_and_detokenize(http):
    plain = http.post("/tokenize", json={"prompt": "Hello world", "return_token_strs": True}).json()
    assert plain["count"] == len(plain["tokens"]) and plain["max_model_len"] == 128
    assert len(plain["token_strs"]) == plain["count"]
    assert http.post("/detokenize", json={"tokens": plain["tokens"]}).json() == {"prompt": "Hello world"}
    chat = http.post("/tokenize", json={"messages": [{"role": "user", "content": "Hello"}]}).json()
    assert chat["tokens"][0] == 298 and chat["token_strs"] is None  # <|im_start|>
    assert http.post("/detokenize", json={"tokens": [10**6]}).status_code == 400
    assert http.post("/detokenize", json={"tokens": "x"}).status_code == 422
    assert http.post("/tokenize", json={"prompt": "x", "model": "other"}).status_code == 404


def test_served_openapi_keeps_the_spec_schemas(http):
    served = http.get("/openapi.json").json()
    spec = json.loads(SPEC_FILE.read_text())
    for name in ("ChatCompletionRequest", "ChatCompletionResponse", "HTTPValidationError"):
        assert served["components"]["schemas"][name] == spec["components"]["schemas"][name]
    for path in ("/v1/chat/completions", "/v1/chat/completions/"):
        op = served["paths"][path]["post"]
        assert op["requestBody"] == spec["paths"]["/v1/chat/completions/"]["post"]["requestBody"]
        assert {"200", "400", "404", "422"} <= set(op["responses"])


@pytest.mark.shared_data
def test_the_spec_copy_is_the_shared_spec():
    if not SHARED_SPEC.is_file():
        pytest.skip("../shared/spec is not here")
    assert json.loads(SPEC_FILE.read_text()) == json.loads(SHARED_SPEC.read_text())


def test_pyengine_serve_command(tmp_path):
    """`pyengine serve` starts, answers, checks the key from the environment, and stops on SIGTERM."""
    args = ["--model", str(QWEN2), "--served-model-name", "tiny", "--num-kv-blocks", "32", "--log-level", "warning"]
    env = {**os.environ, "PYENGINE_API_KEY": "k"}
    with pyengine_serve(args, env=env, log=tmp_path / "serve.log") as (url, _):
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2
