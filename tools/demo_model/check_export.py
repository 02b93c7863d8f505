"""Check an exported demo model: transformers and pyengine agree, and pyengine is fast enough.

    OMP_NUM_THREADS=1 python tools/demo_model/check_export.py [--model pyengine/demo_model]

Run with torch and transformers installed, from the repository root (it imports pyengine from the checkout). Prints:
- the greedy reply of transformers for one chat prompt;
- max |logits difference| between transformers (fp16 weights upcast to fp32) and pyengine's
  numpy forward pass, over the prompt (prefill) and 32 greedy decode steps;
- pyengine's load time and batch-1 greedy decode speed (tokens/s), one thread.

With `--save-expected tests/fixtures/demo_model_expected.npz` it also writes what transformers
computed (prompt ids, greedy ids, the first 8 decode steps' logits), which
tests/model/test_demo_model.py checks pyengine against on every run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyengine.backend import get_backend  # noqa: E402
from pyengine.model import load_model  # noqa: E402
from pyengine.single_sequence import SingleSequence  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is 47 + 38?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pyengine/demo_model")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--save-expected", default=None, help="write transformers' results here (.npz)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    hf = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)

    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=args.steps, min_new_tokens=args.steps,
                          output_logits=True, return_dict_in_generate=True, pad_token_id=0)
        greedy = out.sequences[0, len(ids):].tolist()
        hf_prefill = hf(torch.tensor([ids])).logits[0].numpy()  # [T, V]
    hf_decode = torch.stack(out.logits)[:, 0].numpy()  # [steps, V]
    print("transformers reply:", repr(tokenizer.decode(greedy, skip_special_tokens=False)))
    if args.save_expected:
        np.savez_compressed(args.save_expected, prompt_ids=np.array(ids, dtype=np.int64),
                            greedy_ids=np.array(greedy, dtype=np.int64), decode_logits=hf_decode[:8].astype(np.float32))

    started = time.perf_counter()
    model = load_model(args.model, get_backend("cpu"))
    load_s = time.perf_counter() - started
    seq = SingleSequence(model, num_blocks=64, block_size=16)
    prefill = np.asarray(seq.run(ids))  # [T, V]
    decode = [prefill[-1]]
    for token in greedy[:-1]:
        decode.append(np.asarray(seq.run([token]))[0])
    print(f"max |logits diff| prefill {np.abs(prefill - hf_prefill).max():.2e}, "
          f"decode {np.abs(np.stack(decode) - hf_decode).max():.2e} over {len(greedy)} steps")

    seq = SingleSequence(model, num_blocks=64, block_size=16)
    logits = seq.run(ids)
    started, n = time.perf_counter(), 200
    for _ in range(n):
        logits = seq.run([int(np.argmax(logits[-1]))])
    print(f"pyengine: load {load_s:.2f} s, greedy decode {n / (time.perf_counter() - started):.0f} tokens/s at batch 1")


if __name__ == "__main__":
    main()
