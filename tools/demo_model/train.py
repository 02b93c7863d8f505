"""Train the demo model: a few-million-parameter Llama on the synthetic chat corpus, on one CPU core.

Dev-only (torch + transformers, never project dependencies):

    OMP_NUM_THREADS=1 python tools/demo_model/train.py --corpus runs/corpus.jsonl \
        --tokenizer runs/tokenizer.json --workdir runs --steps 3000

- The model is `LlamaForCausalLM` built from a `LlamaConfig` (see `model_config`), trained in fp32.
- The loss is taken on assistant tokens (their text and the closing <|im_end|>); prompts, tool
  lists and tool results weigh `--prompt-weight` each (0: context only). A small weight there gives
  the model far more to learn from than the short replies alone, and most of it is copying: a
  request restates the names and keys of the tool list above it, a result the arguments of its call.
- Batches hold conversations of similar length, right-padded (causal attention never looks at the
  padding that follows a sequence, so no attention mask is needed); about `--batch-tokens` each.
- `--length-schedule 512:0.3,1024:0.6` trains short conversations first: up to 30% of the steps only
  those of at most 512 tokens, up to 60% at most 1,024, then all up to `--context`. Short batches
  are cheaper, so the skills every conversation needs form before the long ones cost their time.
- AdamW with linear warmup and a cosine decay to 10% of the peak learning rate.
- `workdir/ckpt.pt` is written every `--save-every` steps and at the end; rerunning the same
  command resumes from it. `workdir/best.pt` keeps the weights with the lowest held-out loss.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import os
import random
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from render import assistant_char_spans, render_conversation

IGNORE = -1_000_000  # below every "-1 - token" context label


def model_config(vocab_size: int, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int,
                 context: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=intermediate, max_position_embeddings=context,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
        bos_token_id=None, eos_token_id=2, pad_token_id=0, attention_bias=False, mlp_bias=False,
        initializer_range=0.02)


def encode_corpus(corpus: str, tokenizer: Tokenizer, max_len: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, target labels) per conversation; a label is negative (-1 - token) outside assistant
    text, so the loss can weigh it as context."""
    with open(corpus, encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    examples = []
    for chunk in range(0, len(records), 1000):  # a thousand at a time: the encodings' offsets take memory
        texts = [render_conversation(record) for record in records[chunk:chunk + 1000]]
        for record, text, enc in zip(records[chunk:chunk + 1000], texts, tokenizer.encode_batch(texts)):
            if len(enc.ids) > max_len:
                continue
            spans = assistant_char_spans(text, record.get("enable_thinking"))
            starts = [s for s, _ in spans]
            trained = [(i := bisect.bisect_right(starts, start) - 1) >= 0 and start < spans[i][1] for start, _ in enc.offsets]
            # position t predicts token t+1: the label of position t is token t+1 when that one is trained
            labels = [enc.ids[t + 1] if trained[t + 1] else -1 - enc.ids[t + 1] for t in range(len(enc.ids) - 1)] + [IGNORE]
            examples.append((enc.ids, labels))
    return examples


def cached_examples(workdir: Path, corpus: str, tokenizer_path: str, tokenizer: Tokenizer, max_len: int) -> list:
    """encode_corpus's result, kept in workdir/examples.pt for a resumed run (encoding takes minutes);
    it is used only for the same corpus and tokenizer bytes and the same context."""
    digest = hashlib.sha256(Path(tokenizer_path).read_bytes())
    with open(corpus, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    key, cache = f"{digest.hexdigest()}:{max_len}", workdir / "examples.pt"
    if cache.exists():
        stored = torch.load(cache, weights_only=False)
        if stored["key"] == key:
            return stored["examples"]
    examples = encode_corpus(corpus, tokenizer, max_len)
    torch.save({"key": key, "examples": examples}, cache)
    return examples


def make_batches(examples: list, batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices of examples grouped by similar length, about batch_tokens (padded) per batch, shuffled."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), rng.random()))
    batches, current, longest = [], [], 0
    for i in order:
        longest_next = max(longest, len(examples[i][0]))
        if current and longest_next * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest_next = [], len(examples[i][0])
        current.append(i)
        longest = longest_next
    batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: list, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(examples[i][0]) for i in indices)
    ids = torch.zeros(len(indices), width, dtype=torch.long)  # pad with <|endoftext|> (0)
    labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
    for row, i in enumerate(indices):
        x, y = examples[i]
        ids[row, :len(x)] = torch.tensor(x)
        labels[row, :len(y)] = torch.tensor(y)
    return ids, labels


def loss_of(model, ids: torch.Tensor, labels: torch.Tensor, prompt_weight: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over assistant tokens, plus context tokens at `prompt_weight` each."""
    logits = model(input_ids=ids).logits.flatten(0, 1)  # [B*T, V]
    labels = labels.flatten()
    assistant = labels >= 0
    context = (labels < 0) & (labels != IGNORE)
    weights = assistant.float() + prompt_weight * context.float()
    targets = torch.where(assistant, labels, torch.where(context, -1 - labels, 0))
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return (losses * weights).sum() / weights.sum().clamp(min=1e-6)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def length_phases(schedule: str, steps: int, context: int) -> list[tuple[int, int]]:
    """(first step after the phase, longest conversation) per phase, from "LEN:FRACTION,..."."""
    phases = []
    for part in filter(None, schedule.split(",")):
        longest, fraction = part.split(":")
        phases.append((round(float(fraction) * steps), int(longest)))
    return phases + [(steps, context)]


def phase_of(phases: list[tuple[int, int]], step: int) -> int:
    return next(i for i, (until, _) in enumerate(phases) if step < until or i == len(phases) - 1)


@torch.no_grad()
def held_out_loss(model, examples: list, batches: list) -> float:
    model.eval()
    losses = [loss_of(model, *collate(examples, b)).item() for b in batches]
    model.train()
    return sum(losses) / len(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=704)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt-weight", type=float, default=0.0,
                        help="loss weight of each context token (prompt, tool list, results); assistant tokens weigh 1")
    parser.add_argument("--length-schedule", default="",
                        help="LEN:FRACTION,... train on conversations of at most LEN tokens until that fraction of the steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", default=None, help="start from these weights (a best.pt/ckpt.pt or an exported model folder), e.g. to fine-tune "
                        "an earlier run on a revised corpus; the optimizer and schedule start fresh")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer.from_file(args.tokenizer)
    config = model_config(tokenizer.get_vocab_size(), args.hidden, args.layers, args.heads, args.kv_heads,
                          args.intermediate, args.context)
    model = LlamaForCausalLM(config)
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}", flush=True)
    examples = cached_examples(workdir, args.corpus, args.tokenizer, tokenizer, args.context)
    rng = random.Random(args.seed)
    held_out, examples = examples[:300], examples[300:]
    eval_batches = make_batches(held_out, args.batch_tokens, random.Random(1))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95))

    phases = length_phases(args.length_schedule, args.steps, args.context)
    step, epoch, position, phase, best, ckpt = 0, 0, 0, 0, float("inf"), workdir / "ckpt.pt"
    if args.init and not ckpt.exists():
        if Path(args.init).is_dir():  # an exported model folder (safetensors), e.g. the shipped demo model
            state = LlamaForCausalLM.from_pretrained(args.init, dtype=torch.float32).state_dict()
        else:
            state = torch.load(args.init, weights_only=False)["model"]
        model.load_state_dict(state)
        print(f"initialised from {args.init}", flush=True)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, position, best = state["step"], state["epoch"], state["position"], state["best"]
        phase = state.get("phase", 0)
        print(f"resumed at step {step} (epoch {epoch}, batch {position})", flush=True)
    config.save_pretrained(workdir)

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "epoch": epoch, "position": position, "phase": phase, "best": best, "args": vars(args)},
                   str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    model.train()
    started, tokens, losses = time.time(), 0, []
    while step < args.steps:
        if phase_of(phases, step) != phase:  # a longer phase starts its own epochs
            phase, epoch, position = phase_of(phases, step), 0, 0
        until, longest = phases[phase]
        pool = [e for e in examples if len(e[0]) <= longest]
        batches = make_batches(pool, args.batch_tokens, random.Random(args.seed * 1000 + phase * 100 + epoch))
        print(f"step {step}: phase {phase} ({len(pool)} conversations of at most {longest} tokens), "
              f"epoch {epoch} at batch {position} of {len(batches)}", flush=True)
        while position < len(batches) and step < until:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
            ids, labels = collate(pool, batches[position])
            loss = loss_of(model, ids, labels, args.prompt_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step, position = step + 1, position + 1
            tokens += ids.numel()
            losses.append(loss.item())
            if step % 10 == 0:
                elapsed = time.time() - started
                print(f"step {step} epoch {epoch} loss {sum(losses) / len(losses):.4f} "
                      f"lr {optimizer.param_groups[0]['lr']:.2e} {tokens / elapsed:.0f} tok/s {elapsed:.0f}s", flush=True)
                losses = []
            if step % args.eval_every == 0 or step == args.steps:
                value = held_out_loss(model, held_out, eval_batches)
                print(f"step {step} held-out loss {value:.4f}", flush=True)
                if value < best:
                    best = value
                    torch.save({"model": model.state_dict(), "step": step, "loss": value}, workdir / "best.pt")
            if step % args.save_every == 0 or step == args.steps:
                save(ckpt)
        if position >= len(batches):
            epoch, position = epoch + 1, 0
    print(f"done: {step} steps, best held-out loss {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
