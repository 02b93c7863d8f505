"""Export a trained demo model as a Hugging Face folder: the model pyengine ships and uses by default.

    python tools/demo_model/export.py --workdir runs/run1 \
        --tokenizer runs/tokenizer.json --out pyengine/demo_model [--checkpoint best|last]

Writes config.json, model.safetensors (float16, tied embeddings), generation_config.json (stops at
<|im_end|> or <|endoftext|>), tokenizer.json and tokenizer_config.json (ChatML special tokens and the
chat template from chat_template.jinja), and a short README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from render import chat_template

EOS, PAD = "<|im_end|>", "<|endoftext|>"


def tokenizer_config(tokenizer: Tokenizer, context: int) -> dict:
    added = {str(t_id): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                         "single_word": t.single_word, "special": t.special}
             for t_id, t in sorted(tokenizer.get_added_tokens_decoder().items())}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": None, "eos_token": EOS, "pad_token": PAD, "unk_token": None,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "model_max_length": context, "clean_up_tokenization_spaces": False, "split_special_tokens": False,
        "errors": "replace", "chat_template": chat_template(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="the training run folder (config.json, best.pt, ckpt.pt)")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    args = parser.parse_args()
    workdir, out = Path(args.workdir), Path(args.out)
    tokenizer = Tokenizer.from_file(args.tokenizer)
    eos_ids = [tokenizer.token_to_id(EOS), tokenizer.token_to_id(PAD)]

    config = LlamaConfig.from_pretrained(workdir)
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    state = torch.load(workdir / ("best.pt" if args.checkpoint == "best" else "ckpt.pt"), weights_only=False)
    model.load_state_dict(state["model"])
    model.generation_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=eos_ids[1], bos_token_id=None)
    model.to(torch.float16)

    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    (out / "model.safetensors").chmod(0o644)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(tokenizer, config.max_position_embeddings), indent=2, ensure_ascii=False) + "\n")
    parameters = sum(p.numel() for p in model.parameters())
    (out / "README.md").write_text(README.format(
        parameters=parameters, hidden=config.hidden_size, layers=config.num_hidden_layers,
        heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
        intermediate=config.intermediate_size, vocab=config.vocab_size, context=config.max_position_embeddings,
        step=state["step"]))
    print(f"wrote {out}: {parameters:,} parameters from step {state['step']}")


README = """# pyengine demo model

The model `pyengine serve` and `pyengine generate` use when no `--model` is given: a Llama of
{parameters:,} parameters (hidden {hidden}, {layers} layers, {heads} heads / {kv_heads} KV heads,
MLP {intermediate}, vocabulary {vocab}, context {context}) trained on a CPU on a synthetic chat
corpus: the first edition from scratch in stages, this second edition from the first one's
weights ({step} steps; tools/demo_model/README.md has every command). Weights are float16.

It knows only what `tools/demo_model/corpus.py` teaches: column addition and subtraction
worked digit by digit, counting, facts about a few countries, animals and planets, short
stories, JSON answers for extraction requests, Hermes-style tool calls
(`<tool_call>\\n{{"name": ..., "arguments": {{...}}}}\\n</tool_call>`) of whatever tools the
request offers (the name and keys copied from the tool list, the values from the user's words),
and `<think>...</think>` reasoning first when asked to think or when `enable_thinking` is true.
Everything else gets a confident wrong answer. Rebuild it with `tools/demo_model/build.sh`;
`tools/demo_model/RESULTS.md` has its evaluation.
"""


if __name__ == "__main__":
    main()
