"""Evaluate the exported demo model on held-out prompts and write tools/demo_model/RESULTS.md.

    python tools/demo_model/evaluate.py --model pyengine/demo_model [--previous OLD_MODEL]
        [--seed 20250607] [--n 200] [--train-corpus runs/corpus.jsonl]

Prompts come from corpus.py's generators with a seed other than the training one; the tool rows
draw their tools from the held-out word lists (toolgen.py), so no tool name or key of the evaluation
occurs in training. Greedy decoding with pyengine's offline API (`pyengine.LLM`, every prompt of a
metric in one batch); the forced tool calls use pyengine's grammar engine exactly as the server does
for `tool_choice: "required"`. With `--previous`, the same prompts go to an earlier model and its
figures stand beside the new ones (a prompt longer than a model's context counts as a failure).
Needs only pyengine (and jsonschema, a test dependency, to check forced arguments).

Reported, each against the target the model was trained to meet:
- two-digit addition (>= 95%) and three-digit addition (>= 85%): the last number of the reply is the sum;
- tool calls on held-out tools without constraints: every `<tool_call>` block parses and the calls
  equal the expected ones, name and arguments (>= 85%);
- the same under `tool_choice: "required"` (the grammar): valid calls whose arguments match the
  tool's schema, and right name and arguments (>= 90%);
- vLLM's and OpenAI's docs weather examples: a call to the offered tool with the place copied;
- long prompts (800-1,500 tokens: a long system prompt and up to six tools): right call;
- no tool fits: answered in words (>= 95%); JSON answers that parse (>= 95%); reasoning prompts.
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
import toolgen
from pyengine import LLM, SamplingParams
from pyengine.sampling.nested_params import StructuredOutputsParams
from render import render_conversation

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


class Greedy:
    """Greedy decoding of chat prompts with pyengine; generation stops at <|im_end|> / <|endoftext|>."""

    def __init__(self, path: str):
        self.llm = LLM(model=path)
        self.context = self.llm.llm_engine.max_model_len

    def prompt(self, record: dict) -> str:
        return render_conversation(record, add_generation_prompt=True)

    def complete(self, prompts: list[str], max_tokens: int, structured: list | None = None) -> list[str]:
        """The replies to `prompts`, one batch; `structured` gives each prompt a constraint (or None).
        A prompt that does not fit the model's context gets the reply "" (a failure in every metric)."""
        structured = structured or [None] * len(prompts)
        tokenizer = self.llm.get_tokenizer()
        fits = [i for i, p in enumerate(prompts) if len(tokenizer.encode(p)) + max_tokens <= self.context]
        params = [SamplingParams(temperature=0.0, max_tokens=max_tokens, structured_outputs=structured[i]) for i in fits]
        replies = [""] * len(prompts)
        if fits:
            for i, out in zip(fits, self.llm.generate([prompts[i] for i in fits], params)):
                replies[i] = out.outputs[0].text
        return replies


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


def eval_addition(model: Greedy, rng: random.Random, n: int, seen: set, task: str = "add2") -> dict:
    right = unseen = unseen_right = 0
    failures = []
    batch = records(task, n, rng)
    replies = model.complete([model.prompt({"messages": user_prompt(r["messages"])}) for r in batch], 96)
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


def required_params(tools: list[dict]) -> list:
    """The grammar the server builds for tool_choice "required": every offered tool with its schema."""
    return StructuredOutputsParams(tool_calls=(
        tuple((t["function"]["name"], t["function"].get("parameters")) for t in tools), 1, None))


def check_calls(model: Greedy, cases: list[tuple[dict, list[dict]]], max_tokens: int = 192) -> dict:
    """Free and forced calls for (prompt record, expected calls) pairs: valid and right rates."""
    prompts = [model.prompt(p) for p, _ in cases]
    free = model.complete(prompts, max_tokens)
    forced = model.complete(prompts, max_tokens, [required_params(p["tools"]) for p, _ in cases])
    free_right = forced_valid = forced_right = 0
    failures = []
    for (prompt, expected), reply, forced_reply in zip(cases, free, forced):
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in prompt["tools"]}
        calls = parse_calls(reply)
        right = bool(calls) and calls == expected
        free_right += right
        if not right and len(failures) < 5:
            failures.append(f"{prompt['messages'][-1]['content']!r} -> {reply!r}")
        calls = parse_calls(forced_reply)
        ok = bool(calls) and all(c["name"] in schemas for c in calls)
        ok = ok and all(jsonschema.Draft202012Validator(schemas[c["name"]]).is_valid(c["arguments"]) for c in calls)
        forced_valid += ok
        forced_right += ok and calls == expected
    n = len(cases)
    return {"n": n, "right": free_right / n, "forced_valid": forced_valid / n, "forced_right": forced_right / n,
            "failures": failures}


def eval_tools(model: Greedy, rng: random.Random, n: int) -> dict:
    """n held-out tool conversations that need a call, plus n/4 where no offered tool fits."""
    needing, no_tool = [], []
    while len(needing) < n or len(no_tool) < n // 4:
        messages, tools = corpus.task_tools(rng, False, split="held_out")
        expected = expected_calls(messages)
        prompt = {"messages": user_prompt(messages), "tools": tools}
        if expected is not None and len(needing) < n:
            needing.append((prompt, expected))
        elif expected is None and len(no_tool) < n // 4:  # no offered tool fits: the right answer has no call
            no_tool.append(prompt)
    result = check_calls(model, needing)
    unneeded = model.complete([model.prompt(p) for p in no_tool], 96)
    result["no_tool_n"] = len(no_tool)
    result["no_tool_right"] = sum(bool(r) and "<tool_call>" not in r for r in unneeded) / len(no_tool)
    return result


# vLLM's tool-calling docs (get_weather, both parameters required) and OpenAI's function-calling guide
# (get_current_weather, unit optional), each with the question those docs ask.
DOCS_EXAMPLES = [
    (toolgen.function("get_weather", "Get the current weather in a given location", {
        "location": {"type": "string", "description": "City and state, e.g., 'San Francisco, CA'"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["location", "unit"]),
     "What's the weather like in San Francisco?", "San Francisco"),
    (toolgen.function("get_current_weather", "Get the current weather in a given location", {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["location"]),
     "What's the weather like in Boston today?", "Boston"),
]


def eval_docs_weather(model: Greedy) -> dict:
    """Each docs example answered with one call of the offered tool, the place copied from the question."""
    rows = []
    for tool, question, place in DOCS_EXAMPLES:
        prompt = model.prompt({"messages": [user(question)], "tools": [tool]})
        for reply in (model.complete([prompt], 96)[0], model.complete([prompt], 96, [required_params([tool])])[0]):
            calls = parse_calls(reply) or []
            ok = len(calls) == 1 and calls[0]["name"] == tool["function"]["name"] and \
                place in str(calls[0]["arguments"].get("location", ""))
            rows.append({"question": question, "reply": reply, "ok": ok})
    return {"n": len(rows), "right": sum(r["ok"] for r in rows) / len(rows), "rows": rows}


def eval_long(model: Greedy, rng: random.Random, n: int) -> dict:
    """Tool requests behind a long system prompt and six long tool descriptions: 800-1,500 tokens."""
    tokenizer = model.llm.get_tokenizer()
    cases = []
    while len(cases) < n:
        world = toolgen.World(rng, "held_out")
        tools = {}
        while len(tools) < 6:
            t = world.tool(long=True)
            tools.setdefault(t["function"]["name"], t)
        tool = rng.choice(list(tools.values()))
        ask, arguments = toolgen.request(world, tool)
        record = {"messages": [{"role": "system", "content": corpus.long_system_prompt(rng)}, user(ask)],
                  "tools": list(tools.values())}
        if 800 <= len(tokenizer.encode(model.prompt(record))) <= 1500:
            cases.append((record, [{"name": tool["function"]["name"], "arguments": arguments}]))
    return check_calls(model, cases)


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


def eval_enable_thinking(model: Greedy, rng: random.Random, n: int) -> dict:
    """Two-digit additions with chat_template_kwargs enable_thinking true (the prompt opens a block:
    the reply reasons, closes it, answers) and false (an empty closed block: the reply is the answer)."""
    batch = records("add2", n, rng)
    out = {"n": n}
    for switch in (True, False):
        prompts = [render_conversation({"messages": user_prompt(r["messages"])}, add_generation_prompt=True,
                                       enable_thinking=switch) for r in batch]
        right = shaped = 0
        for record, reply in zip(batch, model.complete(prompts, 96)):
            a, b = (int(x) for x in re.findall(r"\d+", record["messages"][0]["content"]))
            right += last_int(reply.split("</think>")[-1]) == a + b
            shaped += ("</think>" in reply and "<think>" not in reply) if switch else "think>" not in reply
        out[f"{str(switch).lower()}_right"], out[f"{str(switch).lower()}_shaped"] = right / n, shaped / n
    return out


def training_additions(path: str | None) -> set:
    """(a, b) of every addition asked in the training corpus."""
    seen = set()
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                for m in json.loads(line)["messages"]:
                    if m["role"] == "user" and isinstance(m["content"], str):
                        found = re.findall(r"(\d+) ?(?:\+|plus|and) ?(\d+)", m["content"])
                        seen.update((int(a), int(b)) for a, b in found)
    return seen


def evaluate(path: str, seed: int, n: int, seen: set) -> dict:
    """Every metric for one model; the prompts depend only on the seed, so two models get the same."""
    model, rng = Greedy(path), random.Random(seed)
    started = time.perf_counter()
    results = {
        "context": model.context,
        "addition": eval_addition(model, rng, n, seen),
        "addition3": eval_addition(model, rng, n, seen, task="add3"),
        "tools": eval_tools(model, rng, n),
        "docs": eval_docs_weather(model),
        "long": eval_long(model, rng, max(20, n // 4)),
        "json": eval_json(model, rng, n),
        "reasoning": eval_reasoning(model, rng, max(20, n // 4)),
        "thinking_switch": eval_enable_thinking(model, rng, max(20, n // 4)),
    }
    results["seconds"] = time.perf_counter() - started
    return results


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report(command: str, r: dict, previous: dict | None) -> str:
    def rows(r: dict) -> list[tuple[str, str, str]]:
        add, add3, tools, docs, long, js, rs, sw = (r[k] for k in ("addition", "addition3", "tools", "docs", "long",
                                                                   "json", "reasoning", "thinking_switch"))
        return [
            ("two-digit addition, greedy (last number = a + b)", f"{pct(add['accuracy'])} of {add['n']}", ">= 95%"),
            ("  ... on problems absent from the training corpus", f"{pct(add['unseen_accuracy'])} of {add['unseen_n']}", ""),
            ("three-digit addition", f"{pct(add3['accuracy'])} of {add3['n']}", ">= 85%"),
            ("held-out tools, no constraints: right tool and arguments", f"{pct(tools['right'])} of {tools['n']}", ">= 85%"),
            ("held-out tools, tool_choice required (grammar): valid, arguments match the schema", pct(tools["forced_valid"]), "100%"),
            ("held-out tools, tool_choice required (grammar): right tool and arguments", pct(tools["forced_right"]), ">= 90%"),
            ("docs weather examples (vLLM, OpenAI; free and required): offered tool, place copied",
             f"{pct(docs['right'])} of {docs['n']}", "100%"),
            ("prompts of 800-1,500 tokens (six tools): right tool and arguments", f"{pct(long['right'])} of {long['n']}", ""),
            ("  ... under tool_choice required", pct(long["forced_right"]), ""),
            ("no tool fits: answered in words", f"{pct(tools['no_tool_right'])} of {tools['no_tool_n']}", ">= 95%"),
            ("JSON answers that parse", f"{pct(js['parse_rate'])} of {js['n']}", ">= 95%"),
            ("  ... equal to the expected object", pct(js["exact"]), ""),
            ("reasoning prompt: reply opens with <think>...</think>", f"{pct(rs['think_rate'])} of {rs['n']}", ""),
            ("reasoning prompt: right sum after thinking", pct(rs["accuracy"]), ""),
            ("enable_thinking true (block opened in the prompt): reasons, closes it, right sum",
             f"{pct(sw['true_shaped'])}, {pct(sw['true_right'])} of {sw['n']}", ""),
            ("enable_thinking false (empty block in the prompt): answers without a block, right sum",
             f"{pct(sw['false_shaped'])}, {pct(sw['false_right'])}", ""),
        ]
    lines = ["# Demo model evaluation", "",
             f"`python tools/demo_model/evaluate.py {command}`: held-out prompts from corpus.py's generators "
             "with another seed than training's (0) and tools named from held-out word lists, greedy decoding "
             "with pyengine (`LLM.generate`); the tool_choice required rows constrain the output with pyengine's "
             f"grammar engine, as the server does. Prompts are rendered with this folder's chat template "
             "(`render.py`), which has the `enable_thinking` switch. "
             f"{r['seconds']:.0f} s for the evaluation of the model on a {os.cpu_count()}-core CPU.", ""]
    if previous:
        lines += [f"The previous column is the first edition (context {previous['context']} tokens) on the same "
                  "prompts; a prompt longer than its context counts as a failure.", "",
                  "| metric | this model | previous model | target |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {b} | {p} | {c} |" for (a, b, c), (_, p, _) in zip(rows(r), rows(previous))]
    else:
        lines += ["| metric | result | target |", "| --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(r)]
    lines += ["", "Sample failures:", ""]
    for name in ("addition", "addition3", "tools", "long", "json"):
        lines += [f"- {name}: `{f}`" for f in r[name]["failures"][:3]]
    return "\n".join(lines) + "\n"


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pyengine/demo_model")
    parser.add_argument("--previous", default=None, help="an earlier model to evaluate on the same prompts")
    parser.add_argument("--seed", type=int, default=20250607)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--train-corpus", default=None, help="the training JSONL, to tell unseen additions apart")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    seen = training_additions(args.train_corpus)
    results = evaluate(args.model, args.seed, args.n, seen)
    previous = evaluate(args.previous, args.seed, args.n, seen) if args.previous else None
    print(json.dumps({"model": results, "previous": previous}, indent=2))
    command = f"--model {args.model} --seed {args.seed} --n {args.n}" + \
        (" --previous PREVIOUS" if args.previous else "") + \
        (f" --train-corpus {Path(args.train_corpus).name}" if args.train_corpus else "")  # no local path
    Path(args.out).write_text(report(command, results, previous), encoding="utf-8")


if __name__ == "__main__":
    main()
