"""`pyengine serve`: run the OpenAI-compatible server (Starlette app on uvicorn).

    pyengine serve [MODEL] [--port 8000] [--api-key KEY] [--max-model-len N] ...

MODEL (or `--model MODEL`) is a checkpoint folder or a Hugging Face hub id such as
`HuggingFaceTB/SmolLM2-135M-Instruct`, fetched into the hub cache ($HF_HOME; nothing is fetched
with HF_HUB_OFFLINE=1) and served under its id. Without one, the embedded demo model is served.

Flag names are vLLM's where vLLM has the same knob (`docs/05-server.md` has the table), so a
`vllm serve` command line starts pyengine unchanged (with `pyengine serve` in front):

- flags with a meaning here work (`--dtype`, `--generation-config`, `--gpu-memory-utilization`,
  `--enable-prompt-tokens-details`, `--response-role`, `--root-path`, ...);
- flags for machinery this engine does not have (`--enforce-eager`, `--trust-remote-code`,
  `--tensor-parallel-size 1`, ...) are accepted, and one log line names them as changing nothing;
- a value we cannot honour (`--tensor-parallel-size 2`, `--dtype bfloat16` on the CPU,
  `--quantization awq`, `--max-model-len` past the model's context) stops the start with an
  error that says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyengine import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "pyengine" / "demo_model"
FALLBACK_MODEL = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
API_KEY_ENV = "PYENGINE_API_KEY"
STATS_INTERVAL_S = 5.0  # vLLM's default interval for its stats line
DEMO_MODEL_NAME = "pyengine-demo"  # what clients call the embedded demo model unless told otherwise


def default_model() -> Path:
    """The embedded demo model when it exists, else the tiny Qwen2 test checkpoint."""
    return DEMO_MODEL if (DEMO_MODEL / "config.json").is_file() else FALLBACK_MODEL


# vLLM flags for machinery this engine does not have: accepted, and named in one log line.
# flag -> (values we can honour, or None for any value; why it changes nothing here)
NO_EFFECT_FLAGS: dict[str, tuple[tuple[Any, ...] | None, str]] = {
    "enforce_eager": (None, "there are no CUDA graphs to capture"),
    "trust_remote_code": (None, "models are read by pyengine's own code, never the checkpoint's"),
    "disable_custom_all_reduce": (None, "there is one device"),
    "enable_chunked_prefill": (None, "long prompts are always prefilled in chunks"),
    "swap_space": (None, "there is no CPU swap space for the KV cache"),
    "distributed_executor_backend": (None, "there is one process"),
    "tensor_parallel_size": ((1,), "there is one device"),
    "pipeline_parallel_size": ((1,), "there is one device"),
    "data_parallel_size": ((1,), "there is one engine"),
    "kv_cache_dtype": (("auto",), "the KV cache takes the model's dtype"),
    "load_format": (("auto", "safetensors"), "weights are read from *.safetensors"),
    "tokenizer_mode": (("auto", "hf"), "the tokenizer is read from tokenizer.json"),
    "quantization": ((), "weights are not quantized"),
}
REASONING_PARSERS = ("auto", "think", "deepseek_r1", "qwen3", "none")  # pyengine_server/reasoning.py has the rules
DTYPES = {"cpu": ("auto", "float32", "float"), "cuda": ("auto", "float16", "half")}


def served_model_names(model: str, names: list[str] | None = None) -> list[str]:
    """The names clients use in `model`: `names` when given; else `pyengine-demo` for the embedded
    demo model and, for any other checkpoint, its hub id or its path as given (vLLM's default)."""
    if names:
        return list(names)
    return [DEMO_MODEL_NAME] if Path(model).resolve() == DEMO_MODEL.resolve() else [model]


def build_parser() -> argparse.ArgumentParser:
    from pyengine_server.tool_parsers import tool_parser_names  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pyengine serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    # -- which model: a folder or a hub id (pyengine.model.hub resolves it) --
    add("model_tag", nargs="?", default=None, metavar="MODEL",
        help="checkpoint folder or hub id 'org/name', as `vllm serve MODEL`; the same as --model")
    add("--model", default=None, help="checkpoint folder or hub id 'org/name' (default: the demo model)")
    add("--revision", default=None, help="hub branch, tag or commit of the model (default: main)")
    add("--tokenizer", default=None, help="tokenizer folder or hub id (default: the model's)")
    add("--tokenizer-revision", default=None, help="hub revision of the tokenizer (default: main)")
    add("--download-dir", default=None,
        help="hub cache to download into and read from (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    add("--disable-log-stats", action="store_true",
        help="no periodic stats line (throughput, queues, KV cache use) and no loading progress bar")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000)
    add("--root-path", default="", help="the path prefix a proxy in front of the server adds")
    add("--served-model-name", nargs="+", default=None,
        help=f"names clients use in `model` (default: {DEMO_MODEL_NAME} for the demo model, else the "
             "model path); the first is reported")
    add("--api-key", default=None, help=f"require `Authorization: Bearer KEY` on /v1 (or set {API_KEY_ENV})")
    add("--dtype", default="auto", choices=["auto", "float32", "float", "float16", "half", "bfloat16"],
        help="auto: float32 on the CPU, float16 on cuda (the only ones each runs)")
    add("--max-model-len", type=int, default=None, help="at most the model's context (default: all of it)")
    add("--device", default="cpu", choices=["cpu", "cuda"])
    add("--block-size", type=int, default=16)
    add("--num-kv-blocks", "--num-gpu-blocks-override", type=int, default=None,
        help="KV cache size in blocks (overrides --kv-cache-memory)")
    add("--kv-cache-memory", "--kv-cache-memory-bytes", type=int, default=None, help="KV cache size in bytes")
    add("--gpu-memory-utilization", type=float, default=None,
        help="on --device cuda: the share of the device's memory the KV cache takes (0, 1]")
    add("--max-num-seqs", type=int, default=64)
    add("--max-num-batched-tokens", type=int, default=8192)
    add("--max-logprobs", type=int, default=20)
    add("--enable-prefix-caching", dest="enable_prefix_caching", action="store_true", default=True)
    add("--no-enable-prefix-caching", dest="enable_prefix_caching", action="store_false")
    add("--scheduling-policy", default="fcfs", choices=["fcfs", "priority"])
    add("--seed", type=int, default=0)
    add("--generation-config", default="auto",
        help="sampling defaults: auto (the model's generation_config.json), vllm (none), or a folder")
    add("--override-generation-config", type=_json_object, default=None,
        help='JSON object replacing single defaults, e.g. \'{"temperature": 0.5}\'')
    add("--chat-template", default=None, help="a Jinja template, or a file holding one")
    add("--trust-request-chat-template", action="store_true",
        help="accept `chat_template` from requests (a template is code: off by default)")
    add("--response-role", default="assistant", help="the role of answers after a generation prompt")
    add("--tool-call-parser", default="hermes", choices=[*tool_parser_names(), "none"])
    add("--enable-auto-tool-choice", action="store_true",
        help="accepted for vLLM's command lines: `auto` tool choice is on whenever a parser is")
    add("--reasoning-parser", default="auto", choices=REASONING_PARSERS,
        help="auto: parse <think> blocks when the chat template uses them (think); deepseek_r1 and "
             "qwen3 as vLLM names them")
    add("--return-tokens-as-token-ids", action="store_true")
    add("--enable-prompt-tokens-details", action="store_true",
        help="report usage.prompt_tokens_details.cached_tokens")
    add("--enable-force-include-usage", action="store_true", help="send the usage chunk on every stream")
    add("--max-pending-requests", type=int, default=256, help="requests in flight before answering 503")
    add("--max-n", type=int, default=128, help="largest `n` a request may ask for")
    add("--max-request-body-bytes", type=int, default=4 * 1024 * 1024,
        help="larger request bodies are answered 413 before they are read whole")
    add("--shutdown-timeout", type=float, default=30.0,
        help="on SIGTERM/SIGINT, seconds running streams get to finish before they are ended")
    add("--prepare-timeout", type=float, default=60.0,
        help="seconds one request may spend in preparation (template, tokens, grammar) before a 400")
    add("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add("--uvicorn-log-level", default=None, choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's own log level (default: --log-level)")
    add("--disable-log-requests", dest="log_requests", action="store_false", default=True,
        help="no log line per request")
    add("--enable-log-requests", dest="log_requests", action="store_true")
    for flag in ("enforce_eager", "trust_remote_code", "disable_custom_all_reduce", "enable_chunked_prefill"):
        add("--" + flag.replace("_", "-"), action="store_true", default=None, help=argparse.SUPPRESS)
    add("--swap-space", type=float, default=None, help=argparse.SUPPRESS)
    add("--distributed-executor-backend", default=None, help=argparse.SUPPRESS)
    add("--tensor-parallel-size", "-tp", type=int, default=None, help="1 only (there is one device)")
    add("--pipeline-parallel-size", "-pp", type=int, default=None, help="1 only")
    add("--data-parallel-size", "-dp", type=int, default=None, help="1 only")
    add("--kv-cache-dtype", default=None, help=argparse.SUPPRESS)
    add("--load-format", default=None, help=argparse.SUPPRESS)
    add("--tokenizer-mode", default=None, help=argparse.SUPPRESS)
    add("--quantization", "-q", default=None, help=argparse.SUPPRESS)
    return parser


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def check_vllm_flags(args: argparse.Namespace) -> list[str]:
    """The flags given that change nothing here (for the log line).

    Raises:
        ValueError: a value this engine cannot honour, or two flags that disagree.
    """
    if args.model_tag is not None and args.model is not None and args.model_tag != args.model:
        raise ValueError(f"the model is given twice: {args.model_tag} and --model {args.model}")
    if args.dtype not in DTYPES[args.device]:
        raise ValueError(f"--dtype {args.dtype} cannot run on --device {args.device}; "
                         + "; ".join(f"--device {d} runs {', '.join(v)}" for d, v in DTYPES.items()))
    utilization = args.gpu_memory_utilization
    if utilization is not None and not 0 < utilization <= 1:
        raise ValueError(f"--gpu-memory-utilization must be in (0, 1], got {utilization}")
    inert = []
    for name, (honoured, why) in NO_EFFECT_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if honoured is not None and value not in honoured:
            allowed = f"only {', '.join(map(str, honoured))} is supported" if honoured else "it is not supported"
            raise ValueError(f"{flag} {value}: {allowed} here ({why})")
        inert.append(f"{flag} ({why})")
    if utilization is not None and args.device != "cuda":
        inert.append("--gpu-memory-utilization (the KV cache is sized from host memory on --device cpu)")
    return inert


def kv_cache_bytes_for_utilization(utilization: float) -> int:
    """`--gpu-memory-utilization` on cuda: that share of the device's total memory, in bytes."""
    import cupy  # noqa: PLC0415  (only on --device cuda)

    free, total = cupy.cuda.runtime.memGetInfo()
    budget = int(total * utilization)
    if budget > free:
        raise ValueError(f"--gpu-memory-utilization {utilization}: {budget} bytes for the KV cache, but only "
                         f"{free} of the device's {total} bytes are free")
    return budget


def load_chat_template(value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return value


def entry(argv: list[str] | None = None) -> int:
    """The `pyengine` console script: `serve`, `chat` and `complete` run here, other commands go to
    pyengine's CLI."""
    import sys  # noqa: PLC0415

    from pyengine import generate_cli as cli  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main(argv[1:])
    if argv[:1] in (["chat"], ["complete"]):  # terminal clients of a running server
        from pyengine_server import client  # noqa: PLC0415

        return client.main(argv)
    return cli.main(argv)


def resolve_model_args(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """(model folder, tokenizer folder or None, the model's name) from MODEL/--model/--tokenizer.

    A hub id is fetched (or found offline) in the hub cache, and its name is the id, as vLLM
    serves it; a folder's name is its path as given.

    Raises:
        ModelNotFoundError: (an OSError) neither a folder nor a hub id that could be found; the
            message is one line naming the id and the cache.
    """
    from pyengine import resolve_checkpoint  # noqa: PLC0415

    name = args.model_tag or args.model
    if name is None:
        return str(default_model()), args.tokenizer, str(default_model())
    # --tokenizer-revision alone picks another revision of the model's own tokenizer
    model, tokenizer = resolve_checkpoint(name, args.tokenizer, revision=args.revision,
                                          tokenizer_revision=args.tokenizer_revision, download_dir=args.download_dir)
    return str(model), None if tokenizer is None else str(tokenizer), str(name)


def capacity_summary(engine: AsyncEngine, name: str) -> str:
    """The startup line vLLM users look for: the model, and how many tokens and requests fit."""
    info = engine.model_info
    tokens = info.num_kv_blocks * info.block_size
    return (f"Serving {name} ({info.architecture}, {info.dtype}): KV cache of {tokens:,} tokens "
            f"({info.num_kv_blocks:,} blocks of {info.block_size}); maximum concurrency for "
            f"{info.max_model_len:,} tokens per request: {tokens / info.max_model_len:.2f}x")


def configs(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """The parsed command line -> (EngineConfig, ServingConfig, the flags that change nothing here).

    Raises:
        ValueError: a value this engine cannot honour (see `check_vllm_flags`).
    """
    from pyengine import EngineConfig  # noqa: PLC0415
    from pyengine_server.serving_chat import ServingConfig  # noqa: PLC0415

    inert = check_vllm_flags(args)
    kv_cache_memory = args.kv_cache_memory
    if args.device == "cuda" and args.gpu_memory_utilization is not None and kv_cache_memory is None:
        kv_cache_memory = kv_cache_bytes_for_utilization(args.gpu_memory_utilization)
    model, tokenizer, name = resolve_model_args(args)
    engine = EngineConfig(
        model=model, tokenizer=tokenizer, device=args.device, max_model_len=args.max_model_len,
        block_size=args.block_size, num_kv_blocks=args.num_kv_blocks, kv_cache_memory=kv_cache_memory,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
        max_logprobs=args.max_logprobs, enable_prefix_caching=args.enable_prefix_caching,
        scheduling_policy=args.scheduling_policy, seed=args.seed,
    )
    serving = ServingConfig(
        served_model_names=served_model_names(name, args.served_model_name),
        chat_template=load_chat_template(args.chat_template),
        trust_request_chat_template=args.trust_request_chat_template,
        tool_call_parser=None if args.tool_call_parser == "none" else args.tool_call_parser,
        reasoning_parser=args.reasoning_parser,
        max_n=args.max_n, max_pending_requests=args.max_pending_requests,
        return_tokens_as_token_ids=args.return_tokens_as_token_ids, response_role=args.response_role,
        generation_config=args.generation_config, override_generation_config=args.override_generation_config,
        enable_prompt_tokens_details=args.enable_prompt_tokens_details,
        enable_force_include_usage=args.enable_force_include_usage, log_requests=args.log_requests,
        max_request_body_bytes=args.max_request_body_bytes, prepare_timeout=args.prepare_timeout,
    )
    return engine, serving, inert


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pyengine import AsyncEngine  # noqa: PLC0415  (keeps `--help` fast)
    from pyengine_server.app import build_app  # noqa: PLC0415
    from pyengine_server.http_server import GracefulServer, uvicorn_config  # noqa: PLC0415

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        engine_config, serving, inert = configs(args)
        if inert:
            logging.getLogger("pyengine_server").info("accepted for vLLM compatibility, changing nothing here: %s",
                                             "; ".join(inert))
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        if args.disable_log_stats:  # quiet: no loading progress bar either
            logging.getLogger("pyengine.model.loader").setLevel(logging.WARNING)
        engine = AsyncEngine(engine_config)
        logging.getLogger("pyengine_server").info("%s", capacity_summary(engine, serving.served_model_names[0]))
        app = build_app(engine, serving, api_key=api_key,
                        log_stats_interval=None if args.disable_log_stats else STATS_INTERVAL_S)
    except (ValueError, OSError) as exc:  # a setting or a model we cannot serve: say which, no traceback
        parser.exit(2, f"pyengine serve: error: {exc}\n")
    server = GracefulServer(uvicorn_config(app, host=args.host, port=args.port, root_path=args.root_path,
                                           log_level=args.uvicorn_log_level or args.log_level,
                                           shutdown_timeout=args.shutdown_timeout))
    server.run()  # returns after a graceful shutdown; uvicorn then re-raises the signal it caught
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT outside uvicorn's own handling (loading, or re-raised after shutdown): exit 0."""
    raise SystemExit(0)
