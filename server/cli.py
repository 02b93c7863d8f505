"""`pyengine serve`: run the OpenAI-compatible server (Starlette app on uvicorn).

    pyengine serve [MODEL] [--port 8000] [--api-key KEY] [--max-model-len N] ...

MODEL (or `--model MODEL`) is a checkpoint folder or a Hugging Face hub id such as
`HuggingFaceTB/SmolLM2-135M-Instruct`, fetched into the hub cache ($HF_HOME; nothing is fetched
with HF_HUB_OFFLINE=1). Without one, the embedded demo model is served.

Flag names are vLLM's where vLLM has the same knob (`docs/05-server.md` has the table), so a
command line moves to `vllm serve` with few changes.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyengine.async_engine import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "pyengine" / "demo_model"
FALLBACK_MODEL = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
API_KEY_ENV = "PYENGINE_API_KEY"
STATS_INTERVAL_S = 5.0  # vLLM's default interval for its stats line


def default_model() -> Path:
    """The embedded demo model when it exists, else the tiny Qwen2 test checkpoint."""
    return DEMO_MODEL if (DEMO_MODEL / "config.json").is_file() else FALLBACK_MODEL


def build_parser() -> argparse.ArgumentParser:
    from server.tool_parsers import tool_parser_names  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pyengine serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    # -- which model: a folder or a hub id (pyengine.model.hub resolves it) --
    add("model_tag", nargs="?", default=None, metavar="MODEL",
        help="checkpoint folder or hub id (as `vllm serve MODEL`); the same as --model")
    add("--model", default=None, help="checkpoint folder or hub id 'org/name' (default: the demo model)")
    add("--revision", default=None, help="hub branch, tag or commit of the model (default: main)")
    add("--tokenizer", default=None, help="tokenizer folder or hub id (default: the model's)")
    add("--tokenizer-revision", default=None, help="hub revision of --tokenizer (default: main)")
    add("--download-dir", default=None,
        help="hub cache to download into and read from (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    add("--disable-log-stats", action="store_true",
        help="no periodic stats line (throughput, queue, KV cache use) while serving")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000)
    add("--served-model-name", nargs="+", default=None,
        help="names clients use in `model` (default: the model path); the first is reported")
    add("--api-key", default=None, help=f"require `Authorization: Bearer KEY` on /v1 (or set {API_KEY_ENV})")
    add("--max-model-len", type=int, default=None)
    add("--device", default="cpu", choices=["cpu", "cuda"])
    add("--block-size", type=int, default=16)
    add("--num-kv-blocks", type=int, default=None, help="KV cache size in blocks (overrides --kv-cache-memory)")
    add("--kv-cache-memory", type=int, default=None, help="KV cache size in bytes")
    add("--max-num-seqs", type=int, default=64)
    add("--max-num-batched-tokens", type=int, default=8192)
    add("--max-logprobs", type=int, default=20)
    add("--no-enable-prefix-caching", dest="enable_prefix_caching", action="store_false")
    add("--scheduling-policy", default="fcfs", choices=["fcfs", "priority"])
    add("--seed", type=int, default=0)
    add("--chat-template", default=None, help="a Jinja template, or a file holding one")
    add("--trust-request-chat-template", action="store_true",
        help="accept `chat_template` from requests (a template is code: off by default)")
    add("--tool-call-parser", default="hermes", choices=[*tool_parser_names(), "none"])
    add("--reasoning-parser", default="auto", choices=["auto", "think", "deepseek_r1", "qwen3", "none"],
        help="auto: parse <think> blocks when the chat template uses them (server/reasoning.py has the rules)")
    add("--return-tokens-as-token-ids", action="store_true")
    add("--max-pending-requests", type=int, default=256, help="requests in flight before answering 503")
    add("--max-n", type=int, default=128, help="largest `n` a request may ask for")
    add("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


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

    from pyengine import cli  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main(argv[1:])
    if argv[:1] in (["chat"], ["complete"]):  # terminal clients of a running server
        from server import client  # noqa: PLC0415

        return client.main(argv)
    return cli.main(argv)


def resolve_model_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, str | None, str]:
    """(model folder, tokenizer folder or None, default served name) from MODEL/--model/--tokenizer.

    A hub id is fetched (or found offline) in the hub cache and served under its id, as vLLM
    does; a folder is served under the name given on the command line. A model that cannot be
    found exits with a one-line error, never a traceback.
    """
    from pyengine.model.hub import ModelNotFoundError, is_local, resolve_model  # noqa: PLC0415

    if args.model_tag and args.model and args.model_tag != args.model:
        parser.error(f"MODEL {args.model_tag!r} and --model {args.model!r} disagree: give one")
    name = args.model_tag or args.model
    if name is None:
        return str(default_model()), args.tokenizer, str(default_model())
    try:
        model = resolve_model(name, revision=args.revision, download_dir=args.download_dir)
        # --tokenizer-revision alone picks another revision of the model's own tokenizer
        tokenizer_name = args.tokenizer or (name if args.tokenizer_revision and not is_local(name) else None)
        tokenizer = None if tokenizer_name is None else resolve_model(
            tokenizer_name, revision=args.tokenizer_revision, download_dir=args.download_dir)
    except ModelNotFoundError as exc:
        parser.exit(2, f"pyengine serve: error: {exc}\n")
    return str(model), None if tokenizer is None else str(tokenizer), name if not is_local(name) else str(name)


def capacity_summary(engine: AsyncEngine, name: str) -> str:
    """The startup line vLLM users look for: the model, and how many tokens and requests fit."""
    core = engine.engine
    blocks = core.blocks.num_blocks
    tokens = blocks * core.blocks.block_size
    mc = core.model.config
    return (f"Serving {name} ({mc.architecture}, {core.model.dtype}): KV cache of {tokens:,} tokens "
            f"({blocks:,} blocks of {core.blocks.block_size}); maximum concurrency for "
            f"{core.max_model_len:,} tokens per request: {tokens / core.max_model_len:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model, tokenizer, served_name = resolve_model_args(parser, args)
    import uvicorn  # noqa: PLC0415  (keeps `--help` fast)

    from pyengine import EngineConfig  # noqa: PLC0415
    from pyengine.async_engine import AsyncEngine  # noqa: PLC0415
    from server.app import build_app  # noqa: PLC0415
    from server.serving_chat import ServingConfig  # noqa: PLC0415

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = EngineConfig(
        model=model, tokenizer=tokenizer, device=args.device, max_model_len=args.max_model_len,
        block_size=args.block_size, num_kv_blocks=args.num_kv_blocks, kv_cache_memory=args.kv_cache_memory,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
        max_logprobs=args.max_logprobs, enable_prefix_caching=args.enable_prefix_caching,
        scheduling_policy=args.scheduling_policy, seed=args.seed,
    )
    serving = ServingConfig(
        served_model_names=args.served_model_name or [served_name],
        chat_template=load_chat_template(args.chat_template),
        trust_request_chat_template=args.trust_request_chat_template,
        tool_call_parser=None if args.tool_call_parser == "none" else args.tool_call_parser,
        reasoning_parser=args.reasoning_parser, max_n=args.max_n,
        max_pending_requests=args.max_pending_requests,
        return_tokens_as_token_ids=args.return_tokens_as_token_ids,
    )
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.disable_log_stats:  # quiet: no loading progress bar either
        logging.getLogger("pyengine.model.loader").setLevel(logging.WARNING)
    engine = AsyncEngine(config)
    logging.getLogger("server").info("%s", capacity_summary(engine, served_name))
    app = build_app(engine, serving, api_key=api_key,
                    log_stats_interval=None if args.disable_log_stats else STATS_INTERVAL_S)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
