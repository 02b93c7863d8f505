"""Evaluate the exported demo model on held-out prompts and write tools/demo_model/RESULTS.md.

    python tools/demo_model/evaluate.py --model pyengine/demo_model [--seed 20250607] [--n 200]
        [--train-corpus runs/corpus.jsonl]

Prompts come from corpus.py's generators with a seed other than the training one. Greedy decoding
with pyengine's offline API (`pyengine.LLM`, every prompt of a metric in one batch); the forced
tool calls use pyengine's grammar engine exactly as the server does for `tool_choice: "required"`.
Needs only pyengine (and jsonschema, a test dependency, to check forced arguments).

Reported, each against the target the model was trained to meet:
- two-digit addition: the last number of the reply equals a + b (target >= 95%); also on the
  problems that never appear in the training corpus when --train-corpus is given;
- tool calls without constraints: every `<tool_call>` block parses, names an offered tool, and the
  calls equal the expected ones, name and arguments (target >= 90%);
- tool calls under `tool_choice: "required"`: the output is constrained to Hermes tool calls whose
  arguments match the tool's parameters schema; valid = every call parses, names an offered tool
  and its arguments validate against that tool's schema (target 100%);
- JSON answers: the reply (after any <think> block) parses as JSON (target >= 95%), and how
  often it equals the expected object;
- extras: reasoning prompts that open with <think> and get the right answer, and tool
  conversations where no offered tool fits, answered without a call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

import jsonschema

import corpus
from pyengine import LLM, SamplingParams
from pyengine.sampling.params import StructuredOutputsParams
from render import render_conversation

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


class Greedy:
    """Greedy decoding of chat prompts with pyengine; generation stops at <|im_end|> / <|endoftext|>."""

    def __init__(self, path: str):
        self.llm = LLM(model=path)

    def prompt(self, record: dict) -> str:
        return render_conversation(record, add_generation_prompt=True)

    def complete(self, prompts: list[str], max_tokens: int, structured: list | None = None) -> list[str]:
        """The replies to `prompts`, one batch; `structured` gives each prompt a constraint (or None)."""
        params = [SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                 structured_outputs=(structured or [None] * len(prompts))[i])
                  for i in range(len(prompts))]
        return [out.outputs[0].text for out in self.llm.generate(prompts, params)]


def user_prompt(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) the first assistant reply."""
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:first]


def answer_text(reply: str) -> str:
    return reply.split("</think>", 1)[1].strip() if "</think>" in reply else reply.strip()


def last_int(text: str) -> int | None:
    numbers = re.findall(r"-?\d+", text)
    return int(numbers[-1]) if numbers else None


def parse_calls(reply: str) -> list[dict] | None:
    """The tool calls of a reply, or None when a <tool_call> block is not a JSON object with name/arguments."""
    calls = []
    for block in TOOL_CALL.findall(reply):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            return None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), dict):
            return None
        calls.append(call)
    if reply.count("<tool_call>") != len(calls):
        return None
    return calls


def records(task: str, n: int, rng: random.Random, reasoning: bool = False) -> list[dict]:
    out = []
    while len(out) < n:
        generated = corpus.TASKS[task][0](rng, reasoning)
        messages, tools = generated if isinstance(generated, tuple) else (generated, None)
        out.append({"messages": messages, "tools": tools})
    return out


def eval_addition(model: Greedy, rng: random.Random, n: int, seen: set) -> dict:
    right = unseen = unseen_right = 0
    failures = []
    batch = records("add2", n, rng)
    replies = model.complete([model.prompt({"messages": user_prompt(r["messages"])}) for r in batch], 64)
    for record, reply in zip(batch, replies):
        a, b = (int(x) for x in re.findall(r"\d+", record["messages"][0]["content"]))
        ok = last_int(answer_text(reply)) == a + b
        right += ok
        if (a, b) not in seen:
            unseen += 1
            unseen_right += ok
        if not ok and len(failures) < 5:
            failures.append(f"{a} + {b}: {reply!r}")
    return {"n": n, "accuracy": right / n, "unseen_n": unseen,
            "unseen_accuracy": unseen_right / unseen if unseen else None, "failures": failures}


def expected_calls(messages: list[dict]) -> list[dict] | None:
    reply = next(m for m in messages if m["role"] == "assistant")
    return [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in reply.get("tool_calls", [])] or None


def eval_tools(model: Greedy, rng: random.Random, n: int) -> dict:
    """n conversations that need a call (free and forced), plus up to n/4 where no offered tool fits."""
    needing, no_tool = [], []
    while len(needing) < n:
        record = records("tools", 1, rng)[0]
        expected = expected_calls(record["messages"])
        prompt = {"messages": user_prompt(record["messages"]), "tools": record["tools"]}
        if expected is not None:
            needing.append((prompt, expected))
        elif len(no_tool) < n // 4:  # no offered tool fits: the right answer has no call
            no_tool.append(prompt)
    prompts = [model.prompt(p) for p, _ in needing]
    free = model.complete(prompts, 192)
    # tool_choice "required": the grammar the server builds, every offered tool with its schema
    forced_params = [StructuredOutputsParams(tool_calls=(
        tuple((t["function"]["name"], t["function"].get("parameters")) for t in p["tools"]), 1, None))
        for p, _ in needing]
    forced = model.complete(prompts, 192, forced_params)
    unneeded = model.complete([model.prompt(p) for p in no_tool], 96)
    free_valid = free_right = forced_valid = forced_right = 0
    failures = []
    for (prompt, expected), reply, forced_reply in zip(needing, free, forced):
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in prompt["tools"]}
        calls = parse_calls(reply)
        valid = bool(calls) and all(c["name"] in schemas for c in calls)
        free_valid += valid
        free_right += valid and calls == expected
        if not (valid and calls == expected) and len(failures) < 5:
            failures.append(f"{prompt['messages'][-1]['content']!r} -> {reply!r}")
        calls = parse_calls(forced_reply)
        ok = bool(calls) and all(c["name"] in schemas for c in calls)
        ok = ok and all(jsonschema.Draft202012Validator(schemas[c["name"]]).is_valid(c["arguments"]) for c in calls)
        forced_valid += ok
        forced_right += ok and calls[:1] == expected[:1]
    return {"n": n, "valid": free_valid / n, "right": free_right / n, "forced_valid": forced_valid / n,
            "forced_right_first_call": forced_right / n, "no_tool_n": len(no_tool),
            "no_tool_right": sum("<tool_call>" not in r for r in unneeded) / len(no_tool) if no_tool else None,
            "failures": failures}


def eval_json(model: Greedy, rng: random.Random, n: int) -> dict:
    parsed = exact = 0
    failures = []
    batch = records("json", n, rng)
    replies = model.complete([model.prompt({"messages": user_prompt(r["messages"])}) for r in batch], 96)
    for record, reply in zip(batch, replies):
        expected = json.loads(next(m for m in record["messages"] if m["role"] == "assistant")["content"])
        try:
            value = json.loads(answer_text(reply))
        except json.JSONDecodeError:
            value = None
            if len(failures) < 5:
                failures.append(f"{record['messages'][0]['content']!r} -> {reply!r}")
        parsed += value is not None
        exact += value == expected
    return {"n": n, "parse_rate": parsed / n, "exact": exact / n, "failures": failures}


def eval_reasoning(model: Greedy, rng: random.Random, n: int) -> dict:
    """Two-digit additions under a reasoning system prompt: a <think> block first, then the sum."""
    batch, prompts = records("add2", n, rng, reasoning=True), []
    for record in batch:
        messages = [{"role": "system", "content": rng.choice(corpus.REASONING_SYSTEM_PROMPTS)}] + user_prompt(record["messages"])
        prompts.append(model.prompt({"messages": messages}))
    thinks = right = 0
    for record, reply in zip(batch, model.complete(prompts, 96)):
        a, b = (int(x) for x in re.findall(r"\d+", record["messages"][0]["content"]))
        thinks += reply.startswith("<think>\n") and "</think>" in reply
        right += last_int(answer_text(reply)) == a + b
    return {"n": n, "think_rate": thinks / n, "accuracy": right / n}


def training_additions(path: str | None) -> set:
    """(a, b) of every two-digit addition asked in the training corpus."""
    seen = set()
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                for m in json.loads(line)["messages"]:
                    if m["role"] == "user":
                        found = re.findall(r"(\d+) ?(?:\+|plus|and) ?(\d+)", m["content"])
                        seen.update((int(a), int(b)) for a, b in found)
    return seen


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report(command: str, r: dict) -> str:
    add, tools, js, rs = r["addition"], r["tools"], r["json"], r["reasoning"]
    rows = [
        ("two-digit addition, greedy (last number = a + b)", f"{pct(add['accuracy'])} of {add['n']}", ">= 95%"),
        ("  ... on problems absent from the training corpus", f"{pct(add['unseen_accuracy'])} of {add['unseen_n']}", ""),
        ("tool calls, no constraints: valid, offered tool", f"{pct(tools['valid'])} of {tools['n']}", ""),
        ("tool calls, no constraints: right tool and arguments", pct(tools["right"]), ">= 90%"),
        ("tool calls, tool_choice required (grammar): valid, arguments match the schema", pct(tools["forced_valid"]), "100%"),
        ("  ... and the first call right", pct(tools["forced_right_first_call"]), ""),
        ("no tool fits: answered without a call", f"{pct(tools['no_tool_right'])} of {tools['no_tool_n']}", ""),
        ("JSON answers that parse", f"{pct(js['parse_rate'])} of {js['n']}", ">= 95%"),
        ("  ... equal to the expected object", pct(js["exact"]), ""),
        ("reasoning prompt: reply opens with <think>...</think>", f"{pct(rs['think_rate'])} of {rs['n']}", ""),
        ("reasoning prompt: right sum after thinking", pct(rs["accuracy"]), ""),
    ]
    lines = ["# Demo model evaluation", "",
             f"`python tools/demo_model/evaluate.py {command}`: held-out prompts from corpus.py's generators "
             "with another seed than training's (0), greedy decoding with pyengine (`LLM.generate`); the "
             "tool_choice required row constrains the output with pyengine's grammar engine, as the server "
             f"does. {r['seconds']:.0f} s for the whole evaluation on a {os.cpu_count()}-core CPU.", "",
             "| metric | result | target |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", "Sample failures:", ""]
    for name in ("addition", "tools", "json"):
        lines += [f"- {name}: `{f}`" for f in r[name]["failures"][:3]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pyengine/demo_model")
    parser.add_argument("--seed", type=int, default=20250607)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--train-corpus", default=None, help="the training JSONL, to tell unseen additions apart")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    model = Greedy(args.model)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    results = {
        "addition": eval_addition(model, rng, args.n, training_additions(args.train_corpus)),
        "tools": eval_tools(model, rng, args.n),
        "json": eval_json(model, rng, args.n),
        "reasoning": eval_reasoning(model, rng, max(20, args.n // 4)),
    }
    results["seconds"] = time.perf_counter() - started
    print(json.dumps(results, indent=2))
    command = f"--model {args.model} --seed {args.seed} --n {args.n}" + \
        (f" --train-corpus {Path(args.train_corpus).name}" if args.train_corpus else "")  # no local path
    Path(args.out).write_text(report(command, results), encoding="utf-8")


if __name__ == "__main__":
    main()
