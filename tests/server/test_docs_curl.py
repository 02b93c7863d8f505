"""The curl examples of docs/05-server.md run against a live server and answer as the page shows.

Each ```bash block that starts with `curl` is followed by its output (```json or ```text).
The command runs with the page's port replaced by the test server's; the answer must have the
page's shape: the same keys, list lengths, numbers, finish reasons and error messages. Ids,
timestamps and the random model's text may differ.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server.conftest import QWEN2
from pyengine_server.background import BackgroundServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "05-server.md"
PAIR = re.compile(r"```bash\n(curl [^\n]*)\n```\s*\n```(json|text)\n(.*?)```", re.DOTALL)
FREE_TEXT = {"id", "content", "created", "token", "decoded_token"}


def examples() -> list[tuple[str, str, str]]:
    return PAIR.findall(DOC.read_text())


def same_shape(actual, shown, key: str = "", free: frozenset | set = FREE_TEXT) -> bool:
    """Same keys, lengths and values, except under the `free` keys and floats: same type only."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and actual.keys() == shown.keys() and all(
            same_shape(actual[k], shown[k], k, free) for k in shown)
    if isinstance(shown, list):
        return isinstance(actual, list) and len(actual) == len(shown) and all(
            same_shape(a, s, key, free) for a, s in zip(actual, shown))
    if key in free or isinstance(shown, float):
        return type(actual) is type(shown)
    return actual == shown


def events(text: str) -> list:
    return [line[len("data: "):] if line == "data: [DONE]" else json.loads(line[len("data: "):])
            for line in text.splitlines() if line.startswith("data: ")]


def test_the_page_has_curl_examples():
    assert len(examples()) >= 4


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_examples_answer_as_shown():
    with BackgroundServer.start(str(QWEN2), served_model_name="tiny", num_kv_blocks=64) as server:
        for command, kind, shown in examples():
            command = command.replace("http://127.0.0.1:8000", server.url)
            actual = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60).stdout
            if kind == "json":
                assert same_shape(json.loads(actual), json.loads(shown)), (command, actual)
            else:
                assert same_shape(events(actual), events(shown)), (command, actual)
