"""The embedded demo model: shipped in the package, small, and really answering.

The behaviour tests use greedy decoding, so they are deterministic; each checks something a
user of the README's first command sees: an addition answered right, a JSON answer that parses,
a tool call in the Hermes format with the offered tool and the user's arguments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyengine import LLM, SamplingParams

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pyengine" / "demo_model"
GREEDY = SamplingParams(temperature=0.0, max_tokens=96)

pytestmark = pytest.mark.skipif(not (DEMO / "config.json").is_file(), reason="the demo model is not shipped")


def _package_bytes() -> int:
    """Bytes of everything the wheel ships: both packages, the extension and the model."""
    return sum(f.stat().st_size for top in ("pyengine", "pyengine_server") for f in (ROOT / top).rglob("*")
               if f.is_file() and "__pycache__" not in f.parts)


def test_the_package_stays_under_30_mb():
    assert _package_bytes() < 30 * 2**20


@pytest.fixture(scope="module")
def llm():
    return LLM(model=str(DEMO))


def _reply(llm, messages, tools=None) -> str:
    return llm.chat(messages, GREEDY, tools=tools)[0].outputs[0].text


def test_logits_match_transformers():
    """What transformers computed on the shipped weights (tools/demo_model/check_export.py)."""
    import numpy as np

    from pyengine.backend import get_backend
    from pyengine.model import load_model
    from pyengine.single_sequence import SingleSequence

    expected = np.load(ROOT / "tests" / "fixtures" / "demo_model_expected.npz")
    seq = SingleSequence(load_model(str(DEMO), get_backend("cpu")))
    logits = [np.asarray(seq.run(expected["prompt_ids"].tolist()))[-1]]
    for token in expected["greedy_ids"][:len(expected["decode_logits"]) - 1]:
        logits.append(np.asarray(seq.run([int(token)]))[0])
    np.testing.assert_allclose(np.stack(logits), expected["decode_logits"], atol=2e-3)
    assert [int(np.argmax(row)) for row in logits] == expected["greedy_ids"][:len(logits)].tolist()


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city name"}},
                   "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Get the current local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_it_adds_two_digit_numbers(llm):
    problems = [(23, 45), (58, 37), (19, 38), (71, 43), (66, 29), (14, 88), (90, 11), (35, 35), (47, 52), (82, 19)]
    outputs = llm.chat([[{"role": "user", "content": f"What is {a} + {b}?"}] for a, b in problems], GREEDY)
    answers = [int(re.findall(r"\d+", out.outputs[0].text)[-1]) for out in outputs]
    right = sum(answer == a + b for answer, (a, b) in zip(answers, problems))
    assert right >= 9, list(zip(problems, [out.outputs[0].text for out in outputs]))


def test_it_calls_the_offered_tool_with_the_users_arguments(llm):
    reply = _reply(llm, [{"role": "user", "content": "What's the weather in Lisbon?"}], tools=[TIME_TOOL, WEATHER_TOOL])
    block = re.fullmatch(r"<tool_call>\s*(.*?)\s*</tool_call>", reply.strip(), re.DOTALL)
    assert block is not None, reply
    assert json.loads(block.group(1)) == {"name": "get_weather", "arguments": {"city": "Lisbon"}}


def test_it_answers_extraction_requests_in_json(llm):
    reply = _reply(llm, [{"role": "user", "content": "Extract the name, age and city as JSON: Maria is 34 years old "
                                                     "and lives in Oslo."}])
    assert json.loads(reply) == {"name": "Maria", "age": 34, "city": "Oslo"}


def test_it_thinks_first_when_asked_to(llm):
    reply = _reply(llm, [{"role": "system", "content": "Think step by step before you answer."},
                         {"role": "user", "content": "What is 12 + 34?"}])
    assert reply.startswith("<think>\n") and "</think>" in reply, reply


def test_pyengine_generate_chats_with_the_demo_model_by_default(capsys):
    from pyengine.generate_cli import main

    assert main(["generate", "--prompt", "What is 23 + 45?", "--max-tokens", "64"]) == 0
    completion = capsys.readouterr().out.split("completion: ", 1)[1]
    assert "finish_reason=stop" in completion and re.findall(r"\d+", completion)[-1] == "68", completion


def test_pyengine_generate_default_leaves_room_for_an_addition_with_a_carry(capsys):
    from pyengine.generate_cli import main

    assert main(["generate", "--prompt", "What is 58 + 67?"]) == 0  # the default --max-tokens
    completion = capsys.readouterr().out.split("completion: ", 1)[1]
    assert "finish_reason=stop" in completion and re.findall(r"\d+", completion)[-1] == "125", completion


def test_pyengine_help_is_for_users(capsys):
    from pyengine_server.cli import entry

    with pytest.raises(SystemExit):
        entry(["--help"])
    shown = capsys.readouterr().out
    assert "pyengine serve" in shown and "pyengine generate" in shown
    assert "pyengine_server/cli.py" not in shown and "imports" not in shown  # no notes on the code's layout
