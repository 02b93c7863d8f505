"""Probe a training checkpoint for copying: made-up words said back, values looked up, held-out tool calls.

    python tools/demo_model/probe.py --checkpoint runs/ed2/ckpt.pt --tokenizer runs/tokenizer.json [--n 40]

A quick check while a run trains (torch and transformers, greedy decoding, one prompt at a time),
before an export and `evaluate.py`: the drills come from corpus.py's generators with another seed, the
tool calls from the held-out word lists (toolgen.py). Reported as exact matches:
- copy tokens: the share of the drills' reply tokens that are the most likely next token given the
  right reply so far (teacher forcing): it rises before whole replies come out right;
- copy: the reply is exactly the words the user asked to have said back;
- recall: the reply holds the value of the key asked for;
- tool name: the first call's name is the expected tool's (copied from the tool list);
- tool call: every call's name and arguments are the expected ones.
"""

from __future__ import annotations

import argparse
import json
import random
import re

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

import corpus
from render import render_conversation

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def load(checkpoint: str) -> LlamaForCausalLM:
    """The model of a train.py checkpoint (its config.json sits beside it)."""
    state = torch.load(checkpoint, weights_only=False)
    folder = checkpoint.rsplit("/", 1)[0] if "/" in checkpoint else "."
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(folder))
    model.load_state_dict(state["model"])
    print(f"{checkpoint}: step {state['step']}", flush=True)
    return model.eval()


@torch.no_grad()
def reply(model, tokenizer: Tokenizer, record: dict, max_new: int) -> str:
    """The greedy reply to the conversation up to its first assistant message."""
    messages = record["messages"]
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    prompt = render_conversation({"messages": messages[:first], "tools": record.get("tools")}, add_generation_prompt=True)
    ids = tokenizer.encode(prompt).ids
    if len(ids) + max_new > model.config.max_position_embeddings:
        return ""
    out = model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=[2, 0],
                         pad_token_id=0, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True).strip()


@torch.no_grad()
def copied_tokens(model, tokenizer: Tokenizer, record: dict) -> tuple[int, int]:
    """(reply tokens predicted right, reply tokens) with the right reply fed in."""
    prompt = tokenizer.encode(render_conversation({"messages": record["messages"][:1]}, add_generation_prompt=True)).ids
    full = tokenizer.encode(render_conversation(record)).ids
    if full[:len(prompt)] != prompt:
        return 0, 0
    predicted = model(input_ids=torch.tensor([full])).logits[0].argmax(-1)
    reply = torch.tensor(full[len(prompt):])
    return int((predicted[len(prompt) - 1:-1] == reply).sum()), len(reply)


def calls_of(text: str) -> list | None:
    try:
        return [json.loads(block) for block in TOOL_CALL.findall(text)]
    except json.JSONDecodeError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", type=int, default=3, help="print this many replies of each kind")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load(args.checkpoint), Tokenizer.from_file(args.tokenizer)
    rng = random.Random(args.seed)
    scores: dict[str, list[bool]] = {"copy": [], "recall": [], "tool name": [], "tool call": []}
    right, total = 0, 0
    for kind in ("copy", "recall"):
        for i in range(args.n):
            messages = corpus.TASKS[kind][0](rng, False)
            expected = messages[1]["content"]
            if kind == "copy":
                counts = copied_tokens(model, tokenizer, {"messages": messages})
                right, total = right + counts[0], total + counts[1]
            got = reply(model, tokenizer, {"messages": messages}, 80)
            scores[kind].append(got == expected if kind == "copy" else expected.split(" is ")[-1].rstrip(".") in got)
            if i < args.show:
                print(f"{kind}: {messages[0]['content'][-60:]!r} -> {got[:80]!r}", flush=True)
    shown = 0
    while len(scores["tool call"]) < args.n:
        messages, offered = corpus.task_tools(rng, False, split="held_out")
        if not messages[1].get("tool_calls"):
            continue  # a request no offered tool serves
        expected = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in messages[1]["tool_calls"]]
        got = reply(model, tokenizer, {"messages": messages, "tools": offered}, 160)
        calls = calls_of(got) or []
        scores["tool name"].append(bool(calls) and isinstance(calls[0], dict) and calls[0].get("name") == expected[0]["name"])
        scores["tool call"].append(calls == expected)
        if shown < args.show:
            print(f"tool: want {json.dumps(expected[0])[:80]} got {got[:100]!r}", flush=True)
            shown += 1
    print(f"copy tokens {100 * right / max(total, 1):.0f}%  " +
          "  ".join(f"{k} {100 * sum(v) / len(v):.0f}%" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()
