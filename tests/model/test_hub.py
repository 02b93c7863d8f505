"""Loading by hub id from a hub cache on disk (HF_HOME, HF_HUB_OFFLINE=1: no test touches the network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import httpx
import pytest

from pyengine import LLM, SamplingParams
from pyengine.model.hub import HUB_FILES, ModelNotFoundError, hub_cache_dir, resolve_model
from pyengine_server import cli as serve_cli
from tests.server.serve_command import pyengine_serve

from .hub_cache import LLAMA_FIXTURE, ROOT, SMOLLM2_ID, add_snapshot, folder_files, smollm2_files

DEMO = ROOT / "pyengine" / "demo_model"
REV_A = "a" * 40
REV_B = "b" * 40


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """An empty offline hub cache in a temporary HF_HOME."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def test_a_hub_id_resolves_to_its_snapshot_in_hf_home(hf_home):
    snapshot = add_snapshot(hf_home, "pyengine/demo", folder_files(DEMO), REV_A)
    assert resolve_model("pyengine/demo") == snapshot
    assert hub_cache_dir() == hf_home / "hub"


def test_the_demo_model_by_id_generates_what_its_folder_generates(hf_home):
    add_snapshot(hf_home, "pyengine/demo", folder_files(DEMO), REV_A)
    params = SamplingParams(temperature=0.0, max_tokens=8)
    by_id = LLM(model=str(resolve_model("pyengine/demo")), num_kv_blocks=16).generate(["2 + 3 ="], params)
    by_folder = LLM(model=str(DEMO), num_kv_blocks=16).generate(["2 + 3 ="], params)
    assert by_id[0].outputs[0].token_ids == by_folder[0].outputs[0].token_ids
    assert len(by_id[0].outputs[0].token_ids) > 0


def test_llm_takes_hub_ids_revisions_and_download_dir_as_serve_does(hf_home, tmp_path):
    """`LLM(model="org/name")` with HF_HUB_OFFLINE=1 reads the snapshot from HF_HOME's hub cache."""
    add_snapshot(hf_home, "pyengine/demo", folder_files(DEMO), REV_A)
    add_snapshot(hf_home, "pyengine/demo", folder_files(LLAMA_FIXTURE), REV_B, branch="tiny")
    params = SamplingParams(temperature=0.0, max_tokens=8)
    by_folder = LLM(model=str(DEMO), num_kv_blocks=16).generate(["2 + 3 ="], params)[0]
    llm = LLM(model="pyengine/demo", num_kv_blocks=16)
    assert Path(llm.llm_engine.config.model).name == REV_A
    assert llm.generate(["2 + 3 ="], params)[0].outputs[0].text == by_folder.outputs[0].text != ""
    # revision picks the other snapshot (another model and tokenizer); tokenizer_revision alone
    # picks the tokenizer of another revision of the same repository
    assert Path(LLM(model="pyengine/demo", revision="tiny", num_kv_blocks=16).llm_engine.config.model).name == REV_B
    mixed = LLM(model="pyengine/demo", tokenizer_revision=REV_B, num_kv_blocks=16).llm_engine.config
    assert (Path(mixed.model).name, Path(mixed.tokenizer).name) == (REV_A, REV_B)
    other = add_snapshot(tmp_path / "elsewhere", "org/other", folder_files(DEMO), REV_A)
    by_dir = LLM(model="org/other", tokenizer=str(DEMO), download_dir=str(tmp_path / "elsewhere" / "hub"),
                 num_kv_blocks=16)
    assert (by_dir.llm_engine.config.model, by_dir.llm_engine.config.tokenizer) == (str(other), str(DEMO))
    with pytest.raises(ModelNotFoundError, match="'org/absent' is not in the hub cache"):
        LLM(model="org/absent")


def test_revision_picks_a_snapshot_and_main_is_the_default(hf_home):
    add_snapshot(hf_home, "org/tiny", folder_files(LLAMA_FIXTURE), REV_B, branch="v2")
    add_snapshot(hf_home, "org/tiny", folder_files(DEMO), REV_A)
    assert resolve_model("org/tiny").name == REV_A
    assert resolve_model("org/tiny", revision=REV_B).name == REV_B
    assert resolve_model("org/tiny", revision="v2").name == REV_B


def test_download_dir_replaces_the_environment_cache(hf_home, tmp_path):
    snapshot = add_snapshot(tmp_path / "other-home", "org/tiny", folder_files(LLAMA_FIXTURE), REV_A)
    assert resolve_model("org/tiny", download_dir=tmp_path / "other-home" / "hub") == snapshot
    with pytest.raises(ModelNotFoundError):
        resolve_model("org/tiny")  # HF_HOME's cache does not have it


def test_a_local_folder_wins_and_is_not_looked_up(hf_home):
    assert resolve_model(str(LLAMA_FIXTURE)) == LLAMA_FIXTURE


@pytest.mark.parametrize("name, message", [
    ("org/absent", "'org/absent' is not in the hub cache {cache} and offline"),
    ("not a/valid id", "neither a folder nor a hub id"),
    ("/no/such/folder", "neither a folder nor a hub id"),
])
def test_a_missing_model_is_a_one_line_error_naming_id_and_cache(hf_home, capsys, name, message):
    with pytest.raises(SystemExit) as exit_info:
        serve_cli.main([name])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyengine serve: error: model ")
    assert message.format(cache=hf_home / "hub") in err


def test_a_missing_revision_names_it(hf_home):
    add_snapshot(hf_home, "org/tiny", folder_files(LLAMA_FIXTURE), REV_A)
    with pytest.raises(ModelNotFoundError, match="'org/tiny' at revision 'v9' is not in the hub cache"):
        resolve_model("org/tiny", revision="v9")


def test_serve_resolves_model_and_tokenizer_ids_and_serves_under_the_id(hf_home, monkeypatch):
    add_snapshot(hf_home, "org/weights", folder_files(LLAMA_FIXTURE), REV_A)
    tok_main = add_snapshot(hf_home, "org/tok", folder_files(DEMO), REV_A)
    tok_b = add_snapshot(hf_home, "org/tok", folder_files(LLAMA_FIXTURE), REV_B, branch=None)
    seen = {}
    monkeypatch.setattr("pyengine_server.app.build_app", lambda engine, serving, **kw: seen.update(
        engine=engine, serving=serving) or engine.shutdown())
    monkeypatch.setattr("pyengine_server.http_server.uvicorn_config", lambda app, **kw: seen.update(app=app))
    monkeypatch.setattr("pyengine_server.http_server.GracefulServer", lambda config: types.SimpleNamespace(run=lambda: None))
    assert serve_cli.main(["--model", "org/weights", "--tokenizer", "org/tok", "--tokenizer-revision", REV_B,
                           "--num-kv-blocks", "8"]) == 0
    config = seen["engine"].engine.config
    assert Path(config.model).name == REV_A and Path(config.tokenizer) == tok_b != tok_main
    assert seen["serving"].served_model_names == ["org/weights"]


def test_tokenizer_revision_alone_applies_to_the_models_tokenizer(hf_home, monkeypatch):
    weights = add_snapshot(hf_home, "org/m", folder_files(LLAMA_FIXTURE), REV_A)
    other = add_snapshot(hf_home, "org/m", folder_files(LLAMA_FIXTURE), REV_B, branch=None)
    parser = serve_cli.build_parser()
    args = parser.parse_args(["org/m", "--tokenizer-revision", REV_B])
    assert serve_cli.resolve_model_args(args) == (str(weights), str(other), "org/m")
    args = parser.parse_args(["org/m"])
    assert serve_cli.resolve_model_args(args) == (str(weights), None, "org/m")


def test_positional_and_flag_must_agree(hf_home, capsys):
    with pytest.raises(SystemExit):
        serve_cli.main(["org/a", "--model", "org/b"])
    assert "the model is given twice: org/a and --model org/b" in capsys.readouterr().err


def test_only_the_files_the_engine_reads_are_fetched():
    """The allow-list, applied as snapshot_download applies it, to a typical repository listing."""
    from huggingface_hub.utils import filter_repo_objects

    listing = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "model.safetensors.index.json",
               "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
               "pytorch_model.bin", "model.gguf", "onnx/model.onnx", "README.md", ".gitattributes",
               "original/consolidated.00.pth", "vocab.json", "merges.txt"]
    fetched = set(filter_repo_objects(listing, allow_patterns=HUB_FILES))
    assert fetched == set(listing[:9])


@pytest.mark.slow
def test_pyengine_serve_smollm2_by_id_from_an_offline_cache(tmp_path):
    """`pyengine serve HuggingFaceTB/SmolLM2-135M-Instruct` with HF_HUB_OFFLINE=1 and the id's config.

    The checkpoint is a shrunk random-weight SmolLM2 (hub_cache.SMOLLM2_CONFIG says what changed).
    """
    home = tmp_path / "hf"
    add_snapshot(home, SMOLLM2_ID, smollm2_files(), REV_A)
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    args = [SMOLLM2_ID, "--num-kv-blocks", "32", "--log-level", "warning"]
    with pyengine_serve(args, env=env, log=tmp_path / "serve.log") as (url, _):
        assert [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == [SMOLLM2_ID]
        body = {"model": SMOLLM2_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                "ignore_eos": True}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 3
        assert json.loads(answer.text)["model"] == SMOLLM2_ID


def test_pyengine_serve_unknown_id_offline_exits_with_one_line(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "pyengine_server", "serve", "org/absent"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"pyengine serve: error: model 'org/absent' is not in the hub cache {tmp_path / 'hub'} " \
                          "and offline (HF_HUB_OFFLINE is set)\n"


def test_pyengine_generate_takes_a_hub_id(hf_home, capsys):
    from pyengine import generate_cli as cli

    add_snapshot(hf_home, "pyengine/demo", folder_files(DEMO), REV_A)
    assert cli.main(["generate", "--model", "pyengine/demo", "--prompt", "2 + 3 =", "--max-tokens", "3"]) == 0
    assert "prompt: '2 + 3 ='" in capsys.readouterr().out
    assert cli.main(["generate", "--model", "pyengine/absent", "--prompt", "x"]) == 2
    assert "'pyengine/absent' is not in the hub cache" in capsys.readouterr().err
