"""Forward pass speed on SmolLM2-135M's shapes (random weights), against the memory roofline.

At batch 1 a decode step must read every weight once, so its floor is
(bytes of weights per token) / (read bandwidth). The bandwidth is measured in the same run
with a large fp32 matrix-vector product, numpy's own best case. When torch and transformers
are installed (dev-only), transformers' fp32 CPU forward on the same shapes runs beside it.

Targets: decode at batch 1 >= 75% of the roofline and >= 1.0x transformers.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RATIOS
from smollm2 import SMOLLM2_135M, build_model, weight_bytes_per_token

from pyengine.model.fast_path import linear
from pyengine.single_sequence import SingleSequence

PROMPT_LEN = 128
RATIOS.extend([
    ("decode batch 1 / roofline", "pyengine decode tok/s", "roofline decode tok/s", 0.75),
    ("decode batch 1 / transformers", "pyengine decode tok/s", "transformers decode tok/s", 1.0),
    ("prefill / transformers", "pyengine prefill tok/s", "transformers prefill tok/s", None),
    ("32-row products: activations on the left / weight on the left", "products x @ W.T s",
     "products W @ x.T s", None),
])


@pytest.fixture(scope="module")
def model():
    return build_model("cpu")


def test_memory_bandwidth(benchmark, record, model):
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((8192, 8192), dtype=np.float32)  # 256 MiB, far beyond cache
    vector = rng.standard_normal(8192, dtype=np.float32)
    benchmark.pedantic(lambda: matrix @ vector, rounds=20, warmup_rounds=2)
    bandwidth = matrix.nbytes / benchmark.stats.stats.median
    record("read bandwidth GB/s", bandwidth / 1e9)
    record("weight MB per decode token", weight_bytes_per_token(model) / 1e6)
    record("roofline decode tok/s", bandwidth / weight_bytes_per_token(model))


def test_prefill(benchmark, record, model):
    prompt = list(range(1, PROMPT_LEN + 1))
    benchmark.pedantic(lambda: SingleSequence(model, num_blocks=16).run(prompt), rounds=5, warmup_rounds=1)
    record("pyengine prefill tok/s", PROMPT_LEN / benchmark.stats.stats.median)


def test_decode_batch1(benchmark, record, model):
    seq = SingleSequence(model, num_blocks=16)
    seq.run(list(range(1, PROMPT_LEN + 1)))
    benchmark.pedantic(lambda: seq.run([5]), rounds=40, warmup_rounds=3)
    record("pyengine decode tok/s", 1 / benchmark.stats.stats.median)


def test_transformers_peer(benchmark, record):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(2)
    fields = {k: v for k, v in SMOLLM2_135M.items() if k not in ("architectures", "torch_dtype")}
    config = transformers.LlamaConfig(**fields)
    hf = transformers.LlamaForCausalLM(config).float().eval()
    ids = torch.arange(1, PROMPT_LEN + 1)[None]
    with torch.no_grad():
        benchmark.pedantic(lambda: hf(ids, use_cache=True), rounds=3, warmup_rounds=1)
        record("transformers prefill tok/s", PROMPT_LEN / benchmark.stats.stats.median)
        past = hf(ids, use_cache=True).past_key_values
        times = []
        import time
        for step in range(20):
            start = time.perf_counter()
            out = hf(torch.tensor([[5]]), past_key_values=past, use_cache=True)
            times.append(time.perf_counter() - start)
            past = out.past_key_values
        record("transformers decode tok/s", 1 / float(np.median(times[2:])))


@pytest.mark.parametrize("order", ["W @ x.T", "x @ W.T"])
def test_product_order_at_32_rows(benchmark, record, model, order):
    """A decode step's projections for 32 rows, in the two operand orders `linear` chooses between.

    Informational, to recheck `linear`'s choice on another machine: every layer's weights in turn
    (they come from memory, as in the engine), the weight on the left (`linear` up to SMALL_BATCH
    rows) or the activations on the left (its form for longer batches).
    """
    rng = np.random.default_rng(0)
    inputs = {n: rng.standard_normal((32, n), dtype=np.float32) for n in (576, 1536)}
    weights = [w for layer in model.layers for w in (layer.qkv_proj, layer.o_proj, layer.gate_up_proj, layer.down_proj)]
    if order == "W @ x.T":
        def run():  # linear itself: 32 rows take this order
            for w in weights:
                linear(inputs[w.shape[1]], w)
    else:
        def run():
            for w in weights:
                inputs[w.shape[1]] @ w.T
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    record(f"products {order} s", benchmark.stats.stats.median)
