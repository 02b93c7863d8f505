"""Probe a training checkpoint for copying: made-up words said back, values looked up, held-out tool calls.

    python tools/demo_model/probe.py --checkpoint runs/edition2/ckpt.pt --tokenizer runs/tokenizer.json [--n 30]

A quick check while a run trains (torch and transformers, one conversation at a time), before an
export and `evaluate.py`. The drills come from corpus.py's generators with another seed, the tool
calls from the held-out word lists (toolgen.py). Each reply is scored by teacher forcing: the model
reads the prompt and the right reply, and at each reply token its most likely next token is right
or not. Reported per kind (copy: made-up words said back; recall: a value looked up by its key;
tools: a call of a held-out tool, name and arguments):
- tokens: the share of reply tokens right, which rises long before whole replies do;
- whole: the share of replies with every token right, which is exactly the share greedy decoding
  writes right (greedy picks the most likely token at each step, from the right reply so far).
`--show K` prints the greedy replies to the first K prompts of each kind.
"""

from __future__ import annotations

import argparse
import random

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

import corpus
from render import render_conversation

IM_END = 2


def load(checkpoint: str) -> tuple[LlamaForCausalLM, int]:
    """The model of a train.py checkpoint (its config.json sits beside it) and its step."""
    state = torch.load(checkpoint, weights_only=False)
    folder = checkpoint.rsplit("/", 1)[0] if "/" in checkpoint else "."
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(folder))
    model.load_state_dict(state["model"])
    return model.eval(), state["step"]


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
def teacher_forced(model, tokenizer: Tokenizer, record: dict) -> tuple[int, int]:
    """(reply tokens predicted right, reply tokens) for the first assistant message, the right reply fed in;
    the reply ends at its <|im_end|>, where generation stops."""
    messages = record["messages"]
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    tools = record.get("tools")
    prompt = tokenizer.encode(render_conversation({"messages": messages[:first], "tools": tools}, add_generation_prompt=True)).ids
    full = tokenizer.encode(render_conversation({"messages": messages[:first + 1], "tools": tools})).ids
    if full[:len(prompt)] != prompt or len(full) > model.config.max_position_embeddings:
        return 0, 0
    end = full.index(IM_END, len(prompt)) + 1
    predicted = model(input_ids=torch.tensor([full[:end]])).logits[0].argmax(-1)
    reply = torch.tensor(full[len(prompt):end])
    return int((predicted[len(prompt) - 1:-1] == reply).sum()), len(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", type=int, default=0, help="print the greedy replies to this many prompts of each kind")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (model, step), tokenizer = load(args.checkpoint), Tokenizer.from_file(args.tokenizer)
    rng = random.Random(args.seed)
    report = []
    for kind in ("copy", "recall", "tools"):
        right = total = whole = n = 0
        while n < args.n:
            if kind == "tools":
                messages, offered = corpus.task_tools(rng, False, split="held_out")
                if not messages[1].get("tool_calls"):
                    continue  # a request no offered tool serves
                record = {"messages": messages, "tools": offered}
            else:
                record = {"messages": corpus.TASKS[kind][0](rng, False)}
            counts = teacher_forced(model, tokenizer, record)
            if not counts[1]:
                continue  # longer than the model's context
            right, total, whole, n = right + counts[0], total + counts[1], whole + (counts[0] == counts[1]), n + 1
            if n <= args.show:
                print(f"{kind}: {record['messages'][0]['content'][-60:]!r} -> {reply(model, tokenizer, record, 160)[:100]!r}", flush=True)
        report.append(f"{kind} tokens {100 * right / total:.1f}% whole {100 * whole / n:.0f}%")
    print(f"step {step}: " + "; ".join(report), flush=True)


if __name__ == "__main__":
    main()
