"""Write tiny random-weight Hugging Face checkpoints and what `transformers` computes on them.

Dev-only tooling. Run by hand in an environment with torch and transformers (never project deps):

    python tools/make_parity_fixtures.py [--out tests/fixtures/parity] [--only NAME ...]

Every fixture is a folder `tests/fixtures/parity/<name>/` that pyengine loads like any real checkpoint:

    config.json                 written by save_pretrained (some rewritten by hand in the older key style)
    generation_config.json      eos_token_id is an int or a list [<|im_end|>, <|endoftext|>]
    model.safetensors           fp32 unless the fixture is about dtype (bf16 / fp16);
                                `llama-sharded` has model-0000k-of-0000n.safetensors + model.safetensors.index.json
    tokenizer.json              one tiny byte-level BPE (300 tokens) shared by all fixtures
    tokenizer_config.json       eos_token, bos_token null, added_tokens_decoder, ChatML chat_template
    expected.npz                what transformers computed, in fp32 with attn_implementation="eager":
        prompt_ids          int64   [T]     the prompt token ids
        prefill_logits      float32 [T, V]  logits at every prompt position, one forward, no cache
        greedy_ids          int64   [G]     G = 12 tokens of model.generate(do_sample=False), EOS disabled
        decode_logits       float32 [G, V]  the raw logits generate() produced at each step
                                            (output_logits=True); row 0 comes from the prefill (last prompt
                                            position), row i from the KV-cached step that fed greedy_ids[i-1]
        long_prompt_ids, long_prefill_logits, long_greedy_ids, long_decode_logits
                                            the same for a longer prompt (the sliding-window, dynamic-rope,
                                            Gemma, LongRoPE and MoE fixtures)
        cross_prompt_ids, cross_prefill_logits, cross_greedy_ids, cross_decode_logits
                                            phi3-longrope only: a prompt whose decode crosses
                                            original_max_position_embeddings, recorded with the model's
                                            forward and KV cache step by step (MANIFEST longrope_note)

Models: 2 layers, hidden 32, 4 heads / 2 KV heads (GQA), head_dim 8 (explicit head_dim 16 in the rope
fixtures and qwen3), intermediate 64; GPT-2 n_embd 32, 4 heads, n_positions 64. Gemma 2 / 3 and
Qwen3-MoE have 3 layers (local, global, local; MoE, dense, MoE), Phi-3 2 heads / 1 KV head of 16,
Mixtral 4 experts of 32 in each of its 2 layers. Random weights
(std INIT_RANGE), norm weights ~1 + 0.2 N(0,1) and biases 0.1 N(0,1), so every parameter matters.
V is the model's vocab_size, equal to the tokenizer's size (added tokens included).
greedy_ids[i] == argmax(decode_logits[i]) and the top-2 gap at every greedy step is > GAP_MIN,
so an engine that matches to ~1e-4 reproduces the greedy tokens exactly.

`MANIFEST.json` beside the fixture folders lists each fixture: family, what it exercises, the
special token ids, and the torch / transformers versions and date that produced it (a fixture
remade alone with --only records the transformers version that made it).
Rerunning the script reproduces the same weights and expected values (seeded everywhere);
only MANIFEST's date changes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    DynamicCache,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

G = 12  # greedy tokens per prompt
GAP_MIN = 1e-3  # smallest allowed top-1 minus top-2 logit gap at a greedy step
ROUTER_GAP_MIN = 1e-3  # smallest allowed gap between an MoE router's k-th and (k+1)-th expert probability
WIDE_HEADS = {"head_dim": 16}  # explicit head_dim != hidden_size / num_attention_heads
INIT_RANGE = 0.15  # std of random Linear/Embedding weights: big enough that logits are not near-uniform

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOKENIZER_VOCAB = 300  # 256 byte tokens + merges + the 3 special tokens

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TRAINING_TEXT = """\
Once upon a time there was a small engine that read numbers and wrote words. It lived inside a
computer and it liked to count. Every morning it counted the tokens in the prompt, and every
evening it wrote them back, one at a time, in the same order.
The quick brown fox jumps over the lazy dog. The lazy dog did not mind; it was a very patient dog.
A transformer is a stack of layers. Each layer has attention and a feed forward network. Attention
lets every token look at the tokens before it, and the feed forward network thinks about what it saw.
The key and value cache remembers what the model has already computed, so the next token is cheap.
Rotary position embeddings turn each position into an angle, and the angle rotates the queries and
the keys. When the context grows longer than the model was trained on, the angles can be scaled.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
In the middle of the forest there is a river, and in the river there are fish, and the fish are
quick and silver and they never stop moving. The children walk to the river to watch them.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000. Punctuation: hello, world! how are you? fine.
"""

SENTENCE = (
    "The little engine counted the tokens in the prompt and then it wrote a story about the river, "
    "the fish and the children who walked there every morning to watch them swim."
)


# ----------------------------------------------------------------------------- tokenizer


def build_tokenizer() -> Tokenizer:
    """Byte-level BPE trained on TRAINING_TEXT; special tokens are appended after the merges."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB - len(SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    if tok.get_vocab_size(with_added_tokens=True) != TOKENIZER_VOCAB:
        raise SystemExit(f"tokenizer has {tok.get_vocab_size(True)} tokens, wanted {TOKENIZER_VOCAB}")
    return tok


def tokenizer_config(tok: Tokenizer) -> dict:
    decoder = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 128,
        "chat_template": CHAT_TEMPLATE,
    }


# ----------------------------------------------------------------------------- models


def llama_kwargs(ids: dict, **over) -> dict:
    """The tiny Llama-family shape every llama/mistral/qwen fixture starts from.

    hidden 32 = 4 heads x head_dim 8 (2 KV heads: GQA). Fixtures that pass WIDE_HEADS use an explicit
    head_dim 16 (attention width 64 != hidden 32, as in Qwen3 or Mistral-Nemo) so rope has 8 frequencies.
    Sizes are this small to keep all fixtures under ~3 MB of git.
    """
    kw = dict(
        vocab_size=TOKENIZER_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        initializer_range=INIT_RANGE,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=None,
        rope_theta=10000.0,
    )
    kw.update(over)
    return kw


def gemma_kwargs(ids: dict, **over) -> dict:
    """The tiny Gemma 2 / Gemma 3 shape: hidden 32, 4 heads / 2 KV heads of 16, 3 layers, sliding window 8."""
    kw = dict(
        vocab_size=TOKENIZER_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        initializer_range=INIT_RANGE,
        hidden_activation="gelu_pytorch_tanh",
        sliding_window=8,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    kw.update(over)
    return kw


def randomize_norms_and_biases(model: torch.nn.Module, seed: int, norm_center: float = 1.0) -> None:
    """Init sets norm weights to 1 and biases to 0; give them random values so they matter.

    Gemma's RMSNorm scales by (1 + weight) and initialises weight to 0: its norms get `norm_center` 0.
    """
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 2)
            is_norm = any(k in name for k in ("norm", "ln_")) and p.ndim == 1
            if is_norm and leaf[-1] == "weight":
                p.copy_(norm_center + 0.2 * torch.randn(p.shape, generator=gen))
            elif leaf[-1] == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def build_model(spec: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = spec["config_cls"](**spec["config"])
    model = spec["model_cls"]._from_config(config, attn_implementation="eager", dtype=torch.float32)
    randomize_norms_and_biases(model, seed, spec.get("norm_center", 1.0))
    return model.eval()


def load_model(spec: dict, path: Path) -> torch.nn.Module:
    """Load the saved checkpoint back and compute in fp32 (bf16/fp16 weights are upcast exactly)."""
    model = spec["model_cls"].from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    model = model.float().eval()
    # Generation config with no EOS, so generate() never stops early (a None in a passed config
    # would be filled back in from model.generation_config, so replace that instead).
    model.generation_config = GenerationConfig(do_sample=False, pad_token_id=spec["pad_id"])
    return model


# ----------------------------------------------------------------------------- transformers' outputs


@torch.no_grad()
def run_prompt(model: torch.nn.Module, prompt: list[int]) -> dict:
    ids = torch.tensor([prompt], dtype=torch.long)
    prefill = model(ids, use_cache=False).logits[0].float()  # [T, V]
    out = model.generate(
        ids,
        do_sample=False,
        max_new_tokens=G,
        min_new_tokens=G,
        output_logits=True,
        return_dict_in_generate=True,
    )
    greedy = out.sequences[0, len(prompt) :]  # [G]
    decode = torch.stack([step[0] for step in out.logits]).float()  # [G, V]
    if greedy.shape[0] != G:
        raise SystemExit(f"generate stopped after {greedy.shape[0]} tokens")
    if not torch.equal(decode.argmax(-1), greedy):
        raise SystemExit("greedy ids are not the argmax of the raw logits (a processor changed them)")
    return {
        "prompt_ids": np.asarray(prompt, dtype=np.int64),
        "prefill_logits": prefill.numpy().astype(np.float32),
        "greedy_ids": greedy.numpy().astype(np.int64),
        "decode_logits": decode.numpy().astype(np.float32),
    }


@torch.no_grad()
def run_prompt_cached_steps(model: torch.nn.Module, prompt: list[int]) -> dict:
    """run_prompt's arrays from the model's own forward with a DynamicCache, one greedy token a step.

    The same as generate() except where generate() differs by design: Phi-3's generate drops the
    cache and recomputes the whole sequence once it outgrows original_max_position_embeddings.
    """
    ids = torch.tensor([prompt], dtype=torch.long)
    prefill = model(ids, use_cache=False).logits[0].float()  # [T, V]
    cache = DynamicCache(config=model.config)
    logits = model(ids, cache=cache, use_cache=True).logits[0, -1].float()
    greedy, decode = [], []
    for step in range(G):
        decode.append(logits)
        greedy.append(int(logits.argmax()))
        position = torch.tensor([[len(prompt) + step]])
        logits = model(torch.tensor([[greedy[-1]]]), cache=cache, use_cache=True, position_ids=position).logits[0, -1]
    return {
        "prompt_ids": np.asarray(prompt, dtype=np.int64),
        "prefill_logits": prefill.numpy().astype(np.float32),
        "greedy_ids": np.asarray(greedy, dtype=np.int64),
        "decode_logits": torch.stack(decode).numpy().astype(np.float32),
    }


def min_top2_gap(logits: np.ndarray) -> float:
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return float((top2[:, 1] - top2[:, 0]).min())


@torch.no_grad()
def routing(model: torch.nn.Module, seq: np.ndarray) -> tuple[float, np.ndarray] | None:
    """For a mixture-of-experts model, over a no-cache forward of `seq`: the smallest gap between the k-th
    and (k+1)-th router probability of any token in any MoE layer (how clear the top-k choice is), and how
    many times each expert was chosen. None for a dense model."""
    records = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: records.append((out[0], mod.top_k)))
             for m in model.modules() if type(m).__name__.endswith("TopKRouter")]
    if not hooks:
        return None
    try:
        model(torch.tensor(seq[None]), use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    gap, counts = 1.0, 0
    for logits, k in records:
        probs = torch.softmax(logits.float(), dim=-1)  # [T, E]
        ranked = torch.sort(probs, dim=-1, descending=True).values
        gap = min(gap, float((ranked[:, k - 1] - ranked[:, k]).min()))
        chosen = torch.topk(probs, k, dim=-1).indices.flatten().numpy()
        counts = counts + np.bincount(chosen, minlength=probs.shape[-1])
    return gap, counts


@torch.no_grad()
def full_forward_logits(model: torch.nn.Module, prompt: np.ndarray, greedy: np.ndarray) -> np.ndarray:
    """No-cache forward over prompt + greedy[:-1]: logits that predicted each greedy token. [G, V]"""
    seq = np.concatenate([prompt, greedy[:-1]])
    logits = model(torch.tensor(seq[None]), use_cache=False).logits[0]
    return logits[len(prompt) - 1 :].numpy()


# ----------------------------------------------------------------------------- fixtures


def fixture_specs(ids: dict) -> list[dict]:
    im_end, eot = ids["<|im_end|>"], ids["<|endoftext|>"]
    eos_list = [im_end, eot]
    old = "old"  # rewrite config.json in the older key style (rope_theta / rope_scaling / torch_dtype)
    L = dict(config_cls=LlamaConfig, model_cls=LlamaForCausalLM, family="llama", pad_id=eot)
    specs = [
        dict(
            L,
            name="llama",
            what="LlamaForCausalLM, default rope, untied lm_head, config in the older key style "
            "(rope_theta, rope_scaling: null, torch_dtype, no head_dim key: derive hidden/heads)",
            config=llama_kwargs(ids),
            keys=old,
        ),
        dict(
            L,
            name="llama-tied-newkeys",
            what="tie_word_embeddings=true (no lm_head.weight in the file), config in the newer key style "
            "(rope_parameters, dtype); generation_config eos_token_id is a list",
            config=llama_kwargs(ids, tie_word_embeddings=True, rope_theta=50000.0),
            gen_eos=eos_list,
        ),
        dict(
            L,
            name="llama3-rope",
            what="rope_type llama3: factor 8, low_freq_factor 1, high_freq_factor 4, "
            "original_max_position_embeddings 16, rope_theta 500000 (older key style: rope_scaling)",
            config=llama_kwargs(
                ids,
                **WIDE_HEADS,
                rope_theta=500000.0,
                rope_scaling=dict(
                    rope_type="llama3",
                    factor=8.0,
                    low_freq_factor=1.0,
                    high_freq_factor=4.0,
                    original_max_position_embeddings=16,
                ),
            ),
            keys=old,
        ),
        dict(
            L,
            name="llama-linear-rope",
            what="rope_type linear, factor 2 (older key style: rope_scaling with 'type' and 'rope_type')",
            config=llama_kwargs(ids, **WIDE_HEADS, rope_scaling=dict(rope_type="linear", factor=2.0)),
            keys=old,
        ),
        dict(
            L,
            name="llama-dynamic-rope",
            what="rope_type dynamic (NTK), factor 2, max_position_embeddings 16; prompt 10 tokens "
            "(decode crosses 16), long prompt 30 tokens (prefill already past 16). See MANIFEST note.",
            config=llama_kwargs(
                ids, **WIDE_HEADS, max_position_embeddings=16, rope_scaling=dict(rope_type="dynamic", factor=2.0)
            ),
            keys=old,
            prompt_len=10,
            long_len=30,
        ),
        dict(
            L,
            name="llama-yarn-rope",
            what="rope_type yarn, factor 4, original_max_position_embeddings 32, max_position_embeddings 128 "
            "(attention_factor defaults to 0.1*ln(4)+1, truncate defaults to true)",
            config=llama_kwargs(
                ids,
                **WIDE_HEADS,
                rope_parameters=dict(
                    rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32
                ),
            ),
        ),
        dict(
            name="mistral-sliding-window",
            family="mistral",
            config_cls=MistralConfig,
            model_cls=MistralForCausalLM,
            pad_id=eot,
            what="MistralForCausalLM with sliding_window 8 (token i attends j iff 0 <= i - j < 8); "
            "prompt 6 tokens, long prompt 24 tokens, greedy continues to 36",
            config=llama_kwargs(ids, sliding_window=8),
            prompt_len=6,
            long_len=24,
        ),
        dict(
            name="qwen2",
            family="qwen2",
            config_cls=Qwen2Config,
            model_cls=Qwen2ForCausalLM,
            pad_id=eot,
            what="Qwen2ForCausalLM: q/k/v biases (random, non-zero), tied embeddings, ChatML prompt with "
            "special tokens; config eos <|endoftext|>, generation_config eos [<|im_end|>, <|endoftext|>]",
            config=llama_kwargs(ids, tie_word_embeddings=True, eos_token_id=eot, use_sliding_window=False),
            gen_eos=eos_list,
            chat_prompt=True,
        ),
        dict(
            name="qwen3",
            family="qwen3",
            config_cls=Qwen3Config,
            model_cls=Qwen3ForCausalLM,
            pad_id=eot,
            what="Qwen3ForCausalLM: per-head q_norm/k_norm RMSNorm (random weights around 1), explicit "
            "head_dim 16 (4 x 16 != hidden 32), tied embeddings, ChatML prompt; generation_config eos is a list",
            config=llama_kwargs(
                ids, **WIDE_HEADS, tie_word_embeddings=True, eos_token_id=eot, use_sliding_window=False
            ),
            gen_eos=eos_list,
            chat_prompt=True,
        ),
        dict(
            name="gpt2",
            family="gpt2",
            config_cls=GPT2Config,
            model_cls=GPT2LMHeadModel,
            pad_id=eot,
            what="GPT2LMHeadModel: learned positions (n_positions 64), LayerNorm with random weights/biases, "
            "Conv1D weights stored [in, out], fused c_attn, gelu_new (tanh approximation), tied lm_head",
            config=dict(
                vocab_size=TOKENIZER_VOCAB,
                n_embd=32,
                n_layer=2,
                n_head=4,
                n_positions=64,
                n_inner=None,  # 4 * n_embd
                activation_function="gelu_new",
                layer_norm_epsilon=1e-5,
                initializer_range=INIT_RANGE,
                bos_token_id=eot,
                eos_token_id=eot,
            ),
        ),
        dict(
            L,
            name="llama-bf16",
            what="llama with bfloat16 weights (config dtype bfloat16); expected values computed in fp32 "
            "from the bf16-rounded weights",
            config=llama_kwargs(ids),
            save_dtype=torch.bfloat16,
        ),
        dict(
            L,
            name="llama-fp16",
            what="llama with float16 weights (config dtype float16); expected values computed in fp32 "
            "from the fp16-rounded weights",
            config=llama_kwargs(ids),
            save_dtype=torch.float16,
        ),
        dict(
            L,
            name="llama-sharded",
            what="llama saved in 2 safetensors shards with model.safetensors.index.json",
            config=llama_kwargs(ids),
            max_shard_size="100KB",
        ),
        dict(
            name="gemma2",
            family="gemma",
            config_cls=Gemma2Config,
            model_cls=Gemma2ForCausalLM,
            pad_id=eot,
            norm_center=0.0,
            what="Gemma2ForCausalLM: 3 layers sliding (window 8), full, sliding (layer_types as save_pretrained "
            "writes them); sandwich norms scaling by (1 + weight); embeddings * sqrt(32); query_pre_attn_scalar 24 "
            "(scale 24**-0.5 with head_dim 16); attn_logit_softcapping 2 and final_logit_softcapping 4 (small, so "
            "they bend this model's scores); gelu_pytorch_tanh; tied embeddings; prompt 6 tokens, long prompt 24",
            config=gemma_kwargs(ids, attn_logit_softcapping=2.0, final_logit_softcapping=4.0, query_pre_attn_scalar=24,
                                rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
            prompt_len=6,
            long_len=24,
        ),
        dict(
            name="gemma3",
            family="gemma",
            config_cls=Gemma3TextConfig,
            model_cls=Gemma3ForCausalLM,
            pad_id=eot,
            norm_center=0.0,
            what="Gemma3ForCausalLM (text only): sliding_window_pattern 2, so 3 layers sliding (window 8), full, "
            "sliding; local rope theta 10000 (rope_local_base_freq), global rope theta 1e6 with linear scaling "
            "factor 2; q_norm/k_norm scaling by (1 + weight); query_pre_attn_scalar 32; no soft-capping; config in "
            "the older Hub key style (rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern, "
            "torch_dtype, no layer_types); prompt 6 tokens, long prompt 24",
            config=gemma_kwargs(ids, query_pre_attn_scalar=32, sliding_window_pattern=2, rope_theta=1e6,
                                rope_local_base_freq=1e4, rope_scaling=dict(rope_type="linear", factor=2.0),
                                final_logit_softcapping=None, attn_logit_softcapping=None),
            keys="gemma3-old",
            prompt_len=6,
            long_len=24,
        ),
        dict(
            name="phi3-longrope",
            family="phi3",
            config_cls=Phi3Config,
            model_cls=Phi3ForCausalLM,
            pad_id=eot,
            what="Phi3ForCausalLM: fused qkv_proj and gate_up_proj tensors; 2 heads / 1 KV head of 16; LongRoPE with "
            "8 short and 8 long factors, original_max_position_embeddings 16, max_position_embeddings 64 (factor 4, "
            "attention factor sqrt(1 + ln 4 / ln 16)); config in the Hub's key style (rope_scaling type longrope, "
            "top-level original_max_position_embeddings); prompt 4 tokens (4 + 12 <= 16: short factors throughout), "
            "long prompt 30 tokens (long factors throughout), crossing prompt 10 tokens (decode crosses 16; "
            "recorded step by step with transformers' KV cache, see MANIFEST longrope_note).",
            config=dict(
                vocab_size=TOKENIZER_VOCAB,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                max_position_embeddings=64,
                original_max_position_embeddings=16,
                rms_norm_eps=1e-5,
                initializer_range=INIT_RANGE,
                tie_word_embeddings=False,
                bos_token_id=None,
                eos_token_id=im_end,
                pad_token_id=eot,
                rope_parameters=dict(
                    rope_type="longrope",
                    rope_theta=10000.0,
                    short_factor=[1.0, 1.02, 1.05, 1.1, 1.2, 1.4, 1.7, 2.0],
                    long_factor=[1.0, 1.3, 1.8, 2.6, 3.7, 5.0, 6.5, 8.0],
                    original_max_position_embeddings=16,
                ),
            ),
            keys="phi3-old",
            prompt_len=4,
            long_len=30,
            cross_len=10,
        ),
        dict(
            name="phi3-partial-rotary",
            family="phi3",
            config_cls=Phi3Config,
            model_cls=Phi3ForCausalLM,
            pad_id=eot,
            what="Phi3ForCausalLM shaped like Phi-4-mini: partial_rotary_factor 0.5 (top-level key), so only the "
            "first 8 of each head's 16 features rotate (4 short and 4 long LongRoPE factors) and the rest pass "
            "through; tied embeddings; prompt 4 tokens (short factors), long prompt 30 (long factors)",
            config=dict(
                vocab_size=TOKENIZER_VOCAB,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                max_position_embeddings=64,
                original_max_position_embeddings=16,
                rms_norm_eps=1e-5,
                initializer_range=INIT_RANGE,
                tie_word_embeddings=True,
                bos_token_id=None,
                eos_token_id=im_end,
                pad_token_id=eot,
                partial_rotary_factor=0.5,
                rope_parameters=dict(
                    rope_type="longrope",
                    rope_theta=10000.0,
                    short_factor=[1.0, 1.1, 1.3, 1.6],
                    long_factor=[1.0, 2.0, 4.0, 8.0],
                    original_max_position_embeddings=16,
                    partial_rotary_factor=0.5,
                ),
            ),
            keys="phi3-old",
            prompt_len=4,
            long_len=30,
        ),
        dict(
            name="qwen3-moe",
            family="moe",
            config_cls=Qwen3MoeConfig,
            model_cls=Qwen3MoeForCausalLM,
            pad_id=eot,
            what="Qwen3MoeForCausalLM: 3 layers, layers 0 and 2 mixture-of-experts (8 experts of moe_intermediate_size "
            "16, top-2, norm_topk_prob true), layer 1 dense (mlp_only_layers [1], intermediate 64); per-head q/k "
            "norms; experts stored one tensor per expert as on the Hub; the fixture is kept only when every routing "
            "choice is clear (top-2 vs third probability gap > ROUTER_GAP_MIN), see checks; prompt 16, long 24",
            config=llama_kwargs(ids, **WIDE_HEADS, num_hidden_layers=3, num_experts=8, num_experts_per_tok=2,
                                moe_intermediate_size=16, norm_topk_prob=True, mlp_only_layers=[1],
                                decoder_sparse_step=1, use_sliding_window=False),
            long_len=24,
        ),
        dict(
            name="mixtral",
            family="moe",
            config_cls=MixtralConfig,
            model_cls=MixtralForCausalLM,
            pad_id=eot,
            what="MixtralForCausalLM: 2 layers of 4 experts (intermediate_size 32 each), top-2, always "
            "renormalised; experts stored as block_sparse_moe.experts.{e}.w1 / w3 / w2 as on the Hub; every "
            "routing choice clear (gap > ROUTER_GAP_MIN); prompt 16, long 24",
            config=llama_kwargs(ids, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                                sliding_window=None, rope_theta=1e6),
            long_len=24,
        ),
    ]
    for i, s in enumerate(specs):
        s.setdefault("seed", 1234 + 17 * i)
    return specs


def rewrite_config_old_keys(path: Path) -> None:
    """save_pretrained writes rope_parameters/dtype; rewrite to rope_theta/rope_scaling/torch_dtype."""
    cfg = json.loads((path / "config.json").read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type") == "default":
        cfg["rope_scaling"] = None
    else:
        if rope.get("rope_type") == "linear":
            rope["type"] = "linear"  # very old checkpoints used "type"; keep both like many Hub files
        cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg.get("head_dim") == cfg["hidden_size"] // cfg["num_attention_heads"]:
        del cfg["head_dim"]  # older Llama configs derive it
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def rewrite_gemma3_old_keys(path: Path) -> None:
    """The key style of Gemma 3 configs on the Hub: one rope_theta for global layers, rope_local_base_freq for
    sliding ones, rope_scaling for the global rope only, sliding_window_pattern instead of layer_types."""
    cfg = json.loads((path / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    full, local = dict(rope["full_attention"]), rope["sliding_attention"]
    cfg["rope_theta"] = full.pop("rope_theta")
    cfg["rope_local_base_freq"] = local["rope_theta"]
    cfg["rope_scaling"] = None if full.get("rope_type") == "default" else full
    pattern = 2
    layer_types = cfg.pop("layer_types")
    if layer_types != ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(len(layer_types))]:
        raise SystemExit(f"gemma3 layer_types {layer_types} do not follow sliding_window_pattern {pattern}")
    cfg["sliding_window_pattern"] = pattern
    cfg.pop("_sliding_window_pattern", None)  # transformers' private copy of the pattern
    cfg["torch_dtype"] = cfg.pop("dtype")
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def rewrite_phi3_old_keys(path: Path) -> None:
    """The key style of Phi-3 configs on the Hub: rope_scaling {type: longrope, short_factor, long_factor},
    rope_theta and original_max_position_embeddings at the top level."""
    cfg = json.loads((path / "config.json").read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["original_max_position_embeddings"] = rope.pop("original_max_position_embeddings")
    partial = rope.pop("partial_rotary_factor", 1.0)
    if partial != 1.0:
        cfg["partial_rotary_factor"] = partial  # top level, as in Phi-4-mini's config
    cfg["rope_scaling"] = {"type": rope.pop("rope_type"), **rope}
    cfg["torch_dtype"] = cfg.pop("dtype")
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def make_prompts(tok: Tokenizer) -> dict:
    sentence = tok.encode(SENTENCE).ids
    chat = (
        "<|im_start|>system\nYou count tokens.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"
    )
    return {"sentence": sentence, "chat": tok.encode(chat).ids}


def save_checkpoint(spec: dict, model: torch.nn.Module, path: Path, tok: Tokenizer) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    if "save_dtype" in spec:
        model = model.to(spec["save_dtype"])
    kwargs = {"max_shard_size": spec["max_shard_size"]} if "max_shard_size" in spec else {}
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=spec.get("gen_eos", model.config.eos_token_id), pad_token_id=spec["pad_id"]
    )
    model.save_pretrained(path, **kwargs)
    if spec.get("keys") == "old":
        rewrite_config_old_keys(path)
    elif spec.get("keys") == "gemma3-old":
        rewrite_gemma3_old_keys(path)
    elif spec.get("keys") == "phi3-old":
        rewrite_phi3_old_keys(path)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tok), indent=2) + "\n")
    if "max_shard_size" in spec and not (path / "model.safetensors.index.json").exists():
        raise SystemExit("sharding produced a single file; lower max_shard_size")


def make_fixture(spec: dict, out: Path, tok: Tokenizer, prompts: dict) -> dict:
    path = out / spec["name"]
    base = prompts["chat"] if spec.get("chat_prompt") else prompts["sentence"]
    short = base[: spec.get("prompt_len", 16)]
    runs = {"": short}
    if "long_len" in spec:
        long = (prompts["sentence"] * 3)[: spec["long_len"]]
        runs["long_"] = long
    if "cross_len" in spec:
        runs["cross_"] = base[: spec["cross_len"]]

    for attempt in range(20):
        seed = spec["seed"] + 101 * attempt
        save_checkpoint(spec, build_model(spec, seed), path, tok)
        expected, gaps, router_gaps = {}, [], []
        for prefix, prompt in runs.items():
            model = load_model(spec, path)  # fresh instance per prompt: dynamic rope keeps state
            res = run_prompt_cached_steps(model, prompt) if prefix == "cross_" else run_prompt(model, prompt)
            gaps.append(min_top2_gap(res["decode_logits"]))
            expected.update({prefix + k: v for k, v in res.items()})
            routed = routing(model, np.concatenate([res["prompt_ids"], res["greedy_ids"]]))
            if routed is not None:
                router_gaps.append(routed[0])
        if min(gaps) > GAP_MIN and min(router_gaps, default=1.0) > ROUTER_GAP_MIN:
            break
        print(f"  {spec['name']}: seed {seed} top-2 gap {min(gaps):.2e} or router gap "
              f"{min(router_gaps, default=1.0):.2e} too small, retrying")
    else:
        raise SystemExit(f"{spec['name']}: no seed gave well separated greedy tokens")

    notes = check_fixture(spec, path, expected)
    np.savez_compressed(path / "expected.npz", **expected)
    return {
        "name": spec["name"],
        "family": spec["family"],
        "architecture": spec["model_cls"].__name__,
        "exercises": spec["what"],
        "seed": seed,
        "files": sorted(p.name for p in path.iterdir()),
        "arrays": {k: f"{v.dtype}{list(v.shape)}" for k, v in expected.items()},
        "min_top2_gap": round(min(gaps), 4),
        "checks": notes,
        "transformers": transformers.__version__,
    }


def check_fixture(spec: dict, path: Path, expected: dict) -> list[str]:
    """Cross-checks that make sure the fixture records the behaviour it claims to."""
    notes = []
    model = load_model(spec, path)
    for prefix in [p for p in ("", "long_", "cross_") if p + "prompt_ids" in expected]:
        full = full_forward_logits(model, expected[prefix + "prompt_ids"], expected[prefix + "greedy_ids"])
        diff = float(np.abs(full - expected[prefix + "decode_logits"]).max())
        pre = float(np.abs(expected[prefix + "prefill_logits"][-1] - expected[prefix + "decode_logits"][0]).max())
        notes.append(
            f"{prefix or 'short_'}: max|cached decode - no-cache forward| = {diff:.2e}; "
            f"max|prefill_logits[-1] - decode_logits[0]| = {pre:.2e}"
        )
        if spec["name"] not in ("llama-dynamic-rope", "phi3-longrope") and diff > 1e-4:
            raise SystemExit(f"{spec['name']}: cached decode disagrees with a no-cache forward ({diff})")

    if spec["name"] == "mistral-sliding-window":
        # The window must really be applied: a wider window changes long prefill and decode logits
        # but not the short prompt (6 tokens < window 8).
        wide_model = MistralForCausalLM.from_pretrained(path, attn_implementation="eager", sliding_window=4096)
        wide_model.eval()
        with torch.no_grad():
            long_ids = torch.tensor(expected["long_prompt_ids"][None])
            wide_long = wide_model(long_ids, use_cache=False).logits[0].numpy()
            short_ids = torch.tensor(expected["prompt_ids"][None])
            wide_short = wide_model(short_ids, use_cache=False).logits[0].numpy()
        d_long = np.abs(wide_long - expected["long_prefill_logits"])
        d_short = float(np.abs(wide_short - expected["prefill_logits"]).max())
        first_diff = int(np.nonzero(d_long.max(-1) > 1e-5)[0][0])
        assert d_long.max() > 1e-2, "sliding_window=8 did not change the long prefill logits"
        assert d_short < 1e-5, "window changed logits for a prompt shorter than the window"
        assert first_diff == 8, f"window first matters at position {first_diff}, expected 8"
        wide_decode = full_forward_logits(wide_model, expected["long_prompt_ids"], expected["long_greedy_ids"])
        assert np.abs(wide_decode - expected["long_decode_logits"]).max() > 1e-2, "window not applied in decode"
        notes.append(
            f"window 8 vs 4096: long prefill logits differ by {d_long.max():.2e}, first at position "
            f"{first_diff} (so i attends j iff i - j < 8); short prompt identical ({d_short:.1e})"
        )
    if spec["family"] == "gemma":
        notes += check_gemma(spec, path, expected)
    routed = routing(model, np.concatenate([expected["prompt_ids"], expected["greedy_ids"]]))
    if routed is not None:
        gap, counts = routed
        if (counts == 0).any():
            raise SystemExit(f"{spec['name']}: some experts are never chosen: {counts.tolist()}")
        notes.append(f"routing of prompt + greedy tokens: smallest k-th vs (k+1)-th router probability gap "
                     f"{gap:.2e}; times each expert was chosen {counts.tolist()}")
    return notes


@torch.no_grad()
def prefill_with(spec: dict, path: Path, expected: dict, prefix: str, **override) -> np.ndarray:
    """Prefill logits of a prompt with config values overridden (to show a feature changes the output)."""
    model = spec["model_cls"].from_pretrained(path, attn_implementation="eager", dtype=torch.float32, **override)
    return model.eval()(torch.tensor(expected[prefix + "prompt_ids"][None]), use_cache=False).logits[0].numpy()


def check_gemma(spec: dict, path: Path, expected: dict) -> list[str]:
    """The window and the soft-caps must really act on this fixture's outputs."""
    wide_long = prefill_with(spec, path, expected, "long_", sliding_window=4096)
    wide_short = prefill_with(spec, path, expected, "", sliding_window=4096)
    d_long = np.abs(wide_long - expected["long_prefill_logits"])
    d_short = float(np.abs(wide_short - expected["prefill_logits"]).max())
    first_diff = int(np.nonzero(d_long.max(-1) > 1e-5)[0][0])
    if d_long.max() < 1e-2 or d_short > 1e-5 or first_diff != 8:
        raise SystemExit(f"{spec['name']}: the sliding window does not act as expected "
                         f"({d_long.max()}, {d_short}, first at {first_diff})")
    notes = [f"window 8 vs 4096: long prefill logits differ by {d_long.max():.2e}, first at position "
             f"{first_diff}; short prompt identical ({d_short:.1e})"]
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if spec["config"].get(key) is None:
            continue
        uncapped = prefill_with(spec, path, expected, "long_", **{key: None})
        diff = float(np.abs(uncapped - expected["long_prefill_logits"]).max())
        if diff < 1e-2:
            raise SystemExit(f"{spec['name']}: {key} barely changes the logits ({diff})")
        notes.append(f"{key} {spec['config'][key]} vs none: long prefill logits differ by {diff:.2e}")
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/parity")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make; MANIFEST keeps the others")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    tok = build_tokenizer()
    if build_tokenizer().to_str() != tok.to_str():
        raise SystemExit("tokenizer training is not deterministic")
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    prompts = make_prompts(tok)

    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() and args.only else {}
    done = {f["name"]: f for f in old.get("fixtures", [])}
    for spec in fixture_specs(ids):
        if args.only and spec["name"] not in args.only:
            continue
        print(f"making {spec['name']}")
        done[spec["name"]] = make_fixture(spec, args.out, tok, prompts)

    manifest = {
        "generator": "tools/make_parity_fixtures.py (format described in its module docstring)",
        # a run with --only keeps the full run's date and versions; each fixture records its transformers
        "date": old.get("date", datetime.date.today().isoformat()),
        "transformers": old.get("transformers", transformers.__version__),
        "torch": old.get("torch", torch.__version__),
        "compute": "fp32, attn_implementation=eager, CPU, batch 1",
        "greedy_tokens": G,
        "vocab_size": TOKENIZER_VOCAB,
        "special_token_ids": ids,
        "dynamic_rope_note": DYNAMIC_NOTE,
        "longrope_note": LONGROPE_NOTE,
        "fixtures": [done[s["name"]] for s in fixture_specs(ids) if s["name"] in done],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


DYNAMIC_NOTE = (
    "transformers' dynamic NTK rope is stateful: at each forward, seq_len = max(position_ids) + 1; if "
    "seq_len > the largest seq_len seen so far (starting at max_position_embeddings) inv_freq is recomputed "
    "with base' = base * (factor * seq_len / max_pos - (factor - 1)) ** (dim / (dim - 2)) and used for "
    "every token of that forward; keys already in the KV cache are never re-rotated. So a prefill of T > "
    "max_pos tokens uses seq_len T for all T positions, and each decode step at position p >= max_pos uses "
    "seq_len p + 1 for its own q/k only. Cached decode therefore differs from a no-cache forward over the "
    "same tokens (see checks)."
)

LONGROPE_NOTE = (
    "transformers' LongRoPE picks its factors per forward: seq_len = max(position_ids) + 1; if seq_len > "
    "original_max_position_embeddings every token of that forward is rotated with long_factor, otherwise with "
    "short_factor; keys already in the KV cache are not re-rotated by the model. Phi-3's generate() goes further: "
    "when a sequence first outgrows original_max_position_embeddings it drops the KV cache and recomputes the "
    "whole sequence with the long factors. phi3-longrope's short prompt (4 + 12 tokens) never crosses and its long "
    "prompt (30) starts past it, so generate() records both; the crossing prompt (10 tokens, decode crosses 16) "
    "is recorded with the model's forward and a DynamicCache one step at a time, without generate()'s recompute "
    "(cross_* arrays). vLLM instead uses the long factors for every token whenever max_model_len > "
    "original_max_position_embeddings."
)


if __name__ == "__main__":
    main()
