"""Engine throughput and prefix-cache TTFT on SmolLM2-135M's shapes (random weights).

- output tokens/s with 1, 8 and 32 concurrent requests of mixed prompt lengths (16 to 127 tokens),
  64 new tokens each: a short chat reply; the time includes every prompt's prefill (each round has
  fresh prompts, so none hits the prefix cache), after one warmup round, on a KV cache whose pages
  are already touched, as a running server's are (see `_touched`);
- time to first token of a request sharing a 1,024-token prefix with an earlier one, with and
  without prefix caching;
- with torch + transformers installed (dev-only): transformers' padded batch `generate` on the
  same prompts;
- one decode step's attention (one layer) for one 2,000-token conversation among 31 short ones,
  as one padded product and as the engine's decode groups (informational, no target);
- a stream of 96 requests whose replies differ in length too (8 to 128 new tokens), at most 32 in
  flight: the engine admits a waiting request as soon as one finishes; transformers runs them as
  three static padded batches of 32, each for as many steps as its longest reply (a static batch
  cannot drop finished rows), and both are credited only the tokens asked for.
- the products-only bound: the same rounds' matrix products alone (every layer's projections and
  the output head, on the model's own weights, for the rows each step has: the prompts' tokens
  in the prefill step, then 63 decode steps of one row per request) and nothing else: the
  engine's tok/s if everything but the products were free. engine / bound says how much of it
  the whole engine reaches, and 8 x (engine at 1) / (bound at 32) is the share of the bound the
  engine at 32 must reach for the 8x target on this machine.
Targets: 32 concurrent >= 8x batch-1 throughput; a prefix hit cuts TTFT >= 5x;
32 concurrent >= 2x transformers' padded batch generate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import RATIOS, RESULTS
from safetensors.numpy import save_file
from smollm2 import SMOLLM2_135M, random_tensors

from pyengine import LLM, SamplingParams
from pyengine.backend.cpu_tuning import keep_freed_memory
from pyengine.model.fast_path import DecodeGroup, batched_decode_attention, decode_groups, linear
from pyengine.model.layers import AttentionInputs

NEW_TOKENS = 64
RATIOS.extend([
    ("engine 32 concurrent / batch 1", "engine tok/s at 32", "engine tok/s at 1", 8.0),
    ("TTFT without / with prefix cache", "TTFT no prefix cache s", "TTFT prefix cache hit s", 5.0),
    ("engine 32 concurrent / transformers batch 32", "engine tok/s at 32", "transformers tok/s at 32", 2.0),
    ("mixed replies: engine / transformers static batches", "engine tok/s mixed replies",
     "transformers tok/s mixed replies", 2.0),
    ("decode attention, one long among short: one product / groups", "attention one product s",
     "attention decode groups s", None),
    ("products only: 32 / 1 (all but products free)", "products-only tok/s at 32", "products-only tok/s at 1", None),
    ("engine at 32 / its products-only bound", "engine tok/s at 32", "products-only tok/s at 32", None),
    ("engine at 1 / its products-only bound", "engine tok/s at 1", "products-only tok/s at 1", None),
])
STREAM, IN_FLIGHT = 96, 32  # the mixed-reply stream: requests, and at most this many at once


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("smollm2-random")
    (path / "config.json").write_text(json.dumps(SMOLLM2_135M))
    save_file(random_tensors(SMOLLM2_135M), str(path / "model.safetensors"))
    return str(path)


def _prompts(count, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 128, size=count)  # mixed lengths
    return [{"prompt_token_ids": rng.integers(1, 49000, size=int(n)).tolist()} for n in lengths]


def _reply_lengths(count, seed=2):
    return np.random.default_rng(seed).integers(8, 129, size=count).tolist()  # 8 to 128 new tokens


def _touched(llm):
    """The engine as a running server has it: every page of its KV cache already touched.

    A fresh cache is untouched memory; the first write to each 4 KB page faults, ~10 us on these
    VMs (755 MB: 1.9 s), and rounds take fresh blocks from the free list in LRU order, so without
    this each round would pay for part of the pool's first touch, a one-time cost of a server.
    """
    kv = llm.llm_engine.kv_cache
    for cache in kv.key_caches + kv.value_caches:
        cache.fill(0)
    return llm


@pytest.mark.parametrize("concurrency", [1, 8, 32])
def test_throughput(benchmark, record, checkpoint, concurrency):
    llm = _touched(LLM(model=checkpoint, skip_tokenizer_init=True, num_kv_blocks=1024, max_num_seqs=64))
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    # Every round gets prompts of its own, so no round finds its prompts in the prefix cache and
    # each pays every prefill; the warmup round pays the allocator's growth.
    prompt_sets = (_prompts(concurrency, seed=seed) for seed in range(100, 110))
    benchmark.pedantic(lambda: llm.generate(next(prompt_sets), params), rounds=3, warmup_rounds=1)
    record(f"engine tok/s at {concurrency}", concurrency * NEW_TOKENS / benchmark.stats.stats.median)


@pytest.mark.parametrize("concurrency", [1, 32])
def test_products_only_bound(benchmark, record, checkpoint, concurrency):
    """test_throughput's rounds with only their matrix products: what the BLAS alone allows."""
    model = LLM(model=checkpoint, skip_tokenizer_init=True, num_kv_blocks=16).llm_engine.model
    keep_freed_memory()  # as the engine runs
    c = model.config
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((128 * concurrency, c.hidden_size), dtype=np.float32)  # >= any step's rows
    inner = rng.standard_normal((128 * concurrency, c.intermediate_size), dtype=np.float32)

    def products(rows):  # one forward's projections, on `rows` tokens
        h, f = hidden[:rows], inner[:rows]
        for layer in model.layers:
            linear(h, layer.qkv_proj), linear(h, layer.o_proj)
            linear(h, layer.gate_up_proj), linear(f, layer.down_proj)
        return h

    def run(prompts):
        model.compute_logits(products(sum(len(p["prompt_token_ids"]) for p in prompts))[:len(prompts)])
        for _ in range(NEW_TOKENS - 1):  # the decode steps: one row per request
            model.compute_logits(products(len(prompts)))

    prompt_sets = (_prompts(concurrency, seed=seed) for seed in range(100, 110))  # test_throughput's
    benchmark.pedantic(lambda: run(next(prompt_sets)), rounds=3, warmup_rounds=1)
    bound = concurrency * NEW_TOKENS / benchmark.stats.stats.median
    record(f"products-only tok/s at {concurrency}", bound)
    if concurrency == 32 and "engine tok/s at 1" in RESULTS:
        record("share of its bound at 32 that 8x needs", 8 * RESULTS["engine tok/s at 1"] / bound)


@pytest.mark.parametrize("caching", [False, True])
def test_ttft_shared_prefix(benchmark, record, checkpoint, caching):
    llm = _touched(LLM(model=checkpoint, skip_tokenizer_init=True, num_kv_blocks=512,
                       enable_prefix_caching=caching, max_num_batched_tokens=4096))
    rng = np.random.default_rng(1)
    prefix = rng.integers(1, 49000, size=1024).tolist()
    one = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
    llm.generate({"prompt_token_ids": prefix + [7, 8, 9]}, one)  # the earlier request
    suffixes = iter(rng.integers(1, 49000, size=(100, 16)).tolist())
    benchmark.pedantic(lambda: llm.generate({"prompt_token_ids": prefix + next(suffixes)}, one),
                       rounds=3, warmup_rounds=0)
    record(f"TTFT {'prefix cache hit' if caching else 'no prefix cache'} s", benchmark.stats.stats.median)


def _transformers_model():
    """transformers' Llama on SmolLM2-135M's shapes (random weights), fp32, 2 threads, and torch."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(2)
    fields = {k: v for k, v in SMOLLM2_135M.items() if k not in ("architectures", "torch_dtype")}
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields)).float().eval(), torch


def _padded_generate(model, torch, prompts, new_tokens):
    """One static batch: left-padded to its longest prompt, exactly `new_tokens` steps for every row."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])  # left padding
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)


def test_transformers_padded_batch(benchmark, record):
    model, torch = _transformers_model()
    # the engine's prompts: a warmup round on the first set, then one measured round on the next
    prompt_sets = ([p["prompt_token_ids"] for p in _prompts(32, seed=seed)] for seed in range(100, 110))
    benchmark.pedantic(lambda: _padded_generate(model, torch, next(prompt_sets), NEW_TOKENS),
                       rounds=1, warmup_rounds=1)
    record("transformers tok/s at 32", 32 * NEW_TOKENS / benchmark.stats.stats.median)


def test_throughput_mixed_replies(benchmark, record, checkpoint):
    llm = _touched(LLM(model=checkpoint, skip_tokenizer_init=True, num_kv_blocks=1024, max_num_seqs=IN_FLIGHT))
    prompts, lengths = _prompts(STREAM, seed=3), _reply_lengths(STREAM)
    params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in lengths]

    def run():
        outputs = llm.generate(prompts, params)
        assert [len(o.outputs[0].token_ids) for o in outputs] == lengths

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    record("engine tok/s mixed replies", sum(lengths) / benchmark.stats.stats.median)


def test_transformers_static_batches_mixed_replies(benchmark, record):
    model, torch = _transformers_model()
    prompts = [p["prompt_token_ids"] for p in _prompts(STREAM, seed=3)]
    lengths = _reply_lengths(STREAM)

    def run():
        for start in range(0, STREAM, IN_FLIGHT):  # arrival order, 32 at a time
            end = start + IN_FLIGHT  # each batch runs until its longest reply
            _padded_generate(model, torch, prompts[start:end], max(lengths[start:end]))

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    record("transformers tok/s mixed replies", sum(lengths) / benchmark.stats.stats.median)


@pytest.mark.parametrize("grouping", ["one product", "decode groups"])
def test_decode_attention_one_long_among_short(benchmark, record, grouping):
    keep_freed_memory()  # as the engine runs (fresh temporaries would page-fault)
    heads, kv_heads, head_dim, block = 9, 3, 64, 16  # SmolLM2-135M's attention
    rng = np.random.default_rng(0)
    caches = [rng.standard_normal((1024, block, kv_heads, head_dim), dtype=np.float32) for _ in range(2)]
    lens = [2000] + rng.integers(80, 192, size=31).tolist()
    free = iter(rng.permutation(1024).tolist())
    tables = [[next(free) for _ in range(-(-n // block))] for n in lens]
    if grouping == "decode groups":
        groups = decode_groups(tables, lens, np.asarray)
    else:
        padded = np.zeros((len(lens), max(map(len, tables))), dtype=np.int64)
        for row, table in enumerate(tables):
            padded[row, :len(table)] = table
        groups = (DecodeGroup(rows=None, tables=padded, lens=np.array(lens)),)
    attn = AttentionInputs(positions=np.array(lens) - 1, slot_mapping=np.zeros(len(lens), np.int64),
                           block_tables=tuple(map(np.array, tables)), query_start_loc=tuple(range(len(lens) + 1)),
                           context_lens=tuple(lens), decode_groups=groups)
    q = rng.standard_normal((len(lens), heads, head_dim), dtype=np.float32)
    benchmark.pedantic(lambda: batched_decode_attention(q, *caches, attn, head_dim ** -0.5),
                       rounds=30, warmup_rounds=3)
    record(f"attention {grouping} s", benchmark.stats.stats.median)
