"""The README's test command is what CI runs, word for word."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest -q'


def test_readme_and_ci_run_the_same_test_command():
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert f"python -m {TEST_COMMAND}" in ci_lines


# -- the README's examples are real outputs of the demo model ---------------------------------------

import contextlib  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

DEMO = ROOT / "pyengine" / "demo_model"
CURL = re.compile(r"```bash\n(curl [^`]*?)\n```\s*\n```text\n(.*?)```", re.DOTALL)
CLIENT = re.compile(r"```python\n(from openai import OpenAI\n.*?)```\s*\n```text\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def demo_server():
    if not (DEMO / "config.json").is_file():
        pytest.skip("the demo model is not shipped")
    from pyengine_server.background import BackgroundServer

    server = BackgroundServer.start(str(DEMO), num_kv_blocks=256)
    yield server
    server.stop()


def test_readme_shows_a_curl_and_an_openai_client_example():
    text = (ROOT / "README.md").read_text()
    assert CURL.search(text) and CLIENT.search(text)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_example_answers_as_shown(demo_server):
    command, shown = CURL.search((ROOT / "README.md").read_text()).groups()
    command = command.replace("\\\n", " ").replace("http://127.0.0.1:8000", demo_server.url)
    command = command.replace("| python ", f"| {shlex.quote(sys.executable)} ")
    actual = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60).stdout
    assert actual == shown


def test_readme_openai_client_example_prints_what_is_shown(demo_server):
    code, shown = CLIENT.search((ROOT / "README.md").read_text()).groups()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace("http://127.0.0.1:8000", demo_server.url), "README.md", "exec"), {})
    assert printed.getvalue() == shown
