"""How many steps a model of the demo model's shape needs before it copies by content.

    python tools/demo_model/induction.py --layers 6 --steps 800 [--fixed-offset] [--separator]

A tool call is copying: the name and keys from the tool list, the values from the request. A
transformer copies by content with two attention heads working together (one tags every position
with the token before it, a later one finds the earlier position tagged with the current token and
reads the token there); nothing rewards either head until the other exists, so the loss on copied
tokens stays flat for a while, then falls. This script measures that wait on the cleanest data there
is, with train.py's model and loss: each sequence is 0-30 random filler tokens, a marker, 8-30
tokens drawn uniformly from `--alphabet`, a second marker and the same tokens again; the loss is
taken on the repeat only. Until the model copies, that loss stays at ln(alphabet) (6.79 for 890).

- `--fixed-offset`: no filler, one length, so every repeated token is the token a fixed distance
  back; the model learns that from position alone, in far fewer steps than copying by content.
- `--separator`: a fixed token after every drawn one (as a tokenizer whose spaces are tokens of
  their own gives to text): the token to copy is then two places after the match, not one.

Batches of 32 sequences; AdamW as train.py (peak `--lr` after 50 warmup steps, no decay), seeded.
"""

from __future__ import annotations

import argparse
import math
import random
import time

import torch
from transformers import LlamaForCausalLM

from train import IGNORE, loss_of, model_config

START, REPEAT, SEPARATOR, FIRST = 5, 6, 7, 10  # marker ids; drawn tokens are FIRST .. FIRST + alphabet - 1


def batch(rng: random.Random, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    rows = []
    for _ in range(args.batch):
        n = 20 if args.fixed_offset else rng.randint(8, 30)
        drawn = [FIRST + rng.randrange(args.alphabet) for _ in range(n)]
        if args.separator:
            drawn = [t for token in drawn for t in (token, SEPARATOR)]
        filler = [] if args.fixed_offset else [FIRST + rng.randrange(args.alphabet) for _ in range(rng.randint(0, 30))]
        ids = filler + [START] + drawn + [REPEAT] + drawn
        # position t predicts token t+1: only the positions whose next token is in the repeat count
        labels = [IGNORE] * (len(ids) - len(drawn) - 1) + ids[len(ids) - len(drawn):] + [IGNORE]
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor([l + [IGNORE] * (width - len(l)) for _, l in rows])
    return ids, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=704)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--alphabet", type=int, default=890)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--fixed-offset", action="store_true")
    parser.add_argument("--separator", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="write the weights here at the end, as train.py --init reads them")
    parser.add_argument("--init", default=None, help="start from weights --save wrote (e.g. copying without separators first)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(model_config(2048, args.hidden, args.layers, args.heads, args.kv_heads, args.intermediate, 512))
    if args.init:
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    rng, started, losses = random.Random(args.seed), time.time(), []
    print(f"loss before any copying: ln({args.alphabet}) = {math.log(args.alphabet):.2f}", flush=True)
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        loss = loss_of(model, *batch(rng, args))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0:
            print(f"step {step} loss on the repeat {sum(losses) / len(losses):.3f} {time.time() - started:.0f}s", flush=True)
            losses = []
    if args.save:
        torch.save({"model": model.state_dict(), "step": args.steps}, args.save)


if __name__ == "__main__":
    main()
