"""`pyengine serve`: run the OpenAI-compatible server (Starlette app on uvicorn).

    pyengine serve --model PATH [--port 8000] [--api-key KEY] [--max-model-len N] ...

Flag names are vLLM's where vLLM has the same knob (`docs/05-server.md` has the table), so a
command line moves to `vllm serve` with few changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "pyengine" / "demo_model"
FALLBACK_MODEL = ROOT / "tests" / "fixtures" / "parity" / "qwen2"
API_KEY_ENV = "PYENGINE_API_KEY"


def default_model() -> Path:
    """The embedded demo model when it exists, else the tiny Qwen2 test checkpoint."""
    return DEMO_MODEL if (DEMO_MODEL / "config.json").is_file() else FALLBACK_MODEL


def build_parser() -> argparse.ArgumentParser:
    from server.tool_parsers import tool_parser_names  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pyengine serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", default=None, help="Hugging Face checkpoint folder (default: the demo model)")
    add("--tokenizer", default=None, help="tokenizer folder (default: --model)")
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
    add("--reasoning-parser", default="auto", choices=["auto", "think", "none"],
        help="auto: parse <think> blocks when the chat template uses them")
    add("--return-tokens-as-token-ids", action="store_true")
    add("--max-pending-requests", type=int, default=256, help="requests in flight before answering 503")
    add("--max-n", type=int, default=128, help="largest `n` a request may ask for")
    add("--max-request-body-bytes", type=int, default=4 * 1024 * 1024,
        help="larger request bodies are answered 413 before they are read whole")
    add("--shutdown-timeout", type=float, default=30.0,
        help="on SIGTERM/SIGINT, seconds running streams get to finish before they are ended")
    add("--prepare-timeout", type=float, default=60.0,
        help="seconds one request may spend in preparation (template, tokens, grammar) before a 400")
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
    """The `pyengine` console script: `serve` runs here, other commands go to pyengine's CLI."""
    import sys  # noqa: PLC0415

    from pyengine import cli  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main(argv[1:])
    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pyengine import EngineConfig  # noqa: PLC0415
    from pyengine.async_engine import AsyncEngine  # noqa: PLC0415
    from server.app import build_app  # noqa: PLC0415
    from server.http_server import GracefulServer, uvicorn_config  # noqa: PLC0415
    from server.serving_chat import ServingConfig  # noqa: PLC0415

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    model = str(args.model or default_model())
    config = EngineConfig(
        model=model, tokenizer=args.tokenizer, device=args.device, max_model_len=args.max_model_len,
        block_size=args.block_size, num_kv_blocks=args.num_kv_blocks, kv_cache_memory=args.kv_cache_memory,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
        max_logprobs=args.max_logprobs, enable_prefix_caching=args.enable_prefix_caching,
        scheduling_policy=args.scheduling_policy, seed=args.seed,
    )
    serving = ServingConfig(
        served_model_names=args.served_model_name or [model],
        chat_template=load_chat_template(args.chat_template),
        trust_request_chat_template=args.trust_request_chat_template,
        tool_call_parser=None if args.tool_call_parser == "none" else args.tool_call_parser,
        reasoning_parser=args.reasoning_parser, max_n=args.max_n,
        max_pending_requests=args.max_pending_requests,
        return_tokens_as_token_ids=args.return_tokens_as_token_ids,
        max_request_body_bytes=args.max_request_body_bytes, prepare_timeout=args.prepare_timeout,
    )
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    app = build_app(AsyncEngine(config), serving, api_key=api_key)
    server = GracefulServer(uvicorn_config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           shutdown_timeout=args.shutdown_timeout))
    server.run()  # returns after a graceful shutdown; uvicorn then re-raises the signal it caught
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT outside uvicorn's own handling (loading, or re-raised after shutdown): exit 0."""
    raise SystemExit(0)
