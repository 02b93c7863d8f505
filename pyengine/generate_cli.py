"""Command line: `pyengine generate --model PATH --prompt TEXT`.

`generate` prints the completion of each prompt; its flags mirror SamplingParams and
EngineConfig fields. The `pyengine` console script starts in `pyengine_server/cli.py`, which handles
`pyengine serve` itself and hands every other command to `main` here, so the engine never
imports the server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_MODEL = Path(__file__).resolve().parent / "demo_model"  # the embedded demo model, the default


USAGE = """\
pyengine: a small LLM inference engine with vLLM's API.

  pyengine serve                                  an OpenAI-compatible server on 127.0.0.1:8000
  pyengine generate --prompt "What is 23 + 45?"   complete prompts offline and print them

Without --model both use the small chat model the package ships; point --model at a Hugging
Face checkpoint folder (config.json, *.safetensors, tokenizer.json) for real text. Each command
has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyengine", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate text offline and print it")
    gen.add_argument("--model", default=None, help="checkpoint folder or hub id 'org/name' (read from the hub "
                                                   "cache; default: the embedded demo model)")
    gen.add_argument("--revision", default=None, help="hub branch, tag or commit of --model")
    gen.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    gen.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                     help="wrap each prompt as a user chat message (default: on for the embedded demo "
                          "model, a chat model; off for --model)")
    gen.add_argument("--max-tokens", type=int, default=128,
                     help="most tokens to generate per prompt (default: 128, room for the demo model's answers)")
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default="cpu", choices=["cpu", "cuda", "fake"])
    commands.add_parser("serve", add_help=False,
                        help="run the OpenAI-compatible HTTP server (see `pyengine serve --help`)")
    commands.add_parser("chat", add_help=False, help="chat with a running server in the terminal")
    commands.add_parser("complete", add_help=False, help="complete prompts with a running server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "chat", "complete"):  # reached only through `python -m pyengine.generate_cli`
        print(f"pyengine: `{args.command}` is provided by the server package: run the `pyengine` command",
              file=sys.stderr)
        return 2
    from pyengine import LLM, SamplingParams  # noqa: PLC0415  (keeps `--help` fast)
    from pyengine.model.hub import resolve_model  # noqa: PLC0415

    if args.model is None and not (DEMO_MODEL / "config.json").is_file():
        print("pyengine: error: this installation has no embedded demo model; pass --model PATH", file=sys.stderr)
        return 2
    try:
        model = str(resolve_model(args.model, revision=args.revision)) if args.model else str(DEMO_MODEL)
        start = time.perf_counter()
        llm = LLM(model=model, device=args.device)
        loaded = time.perf_counter()
        params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                max_tokens=args.max_tokens, seed=args.seed)
        chat = args.chat if args.chat is not None else args.model is None
        prompts = args.prompt or (["Tell me a short story."] if chat else ["Once upon a time"])
        if chat:
            outputs = llm.chat([[{"role": "user", "content": p}] for p in prompts], params)
        else:
            outputs = llm.generate(prompts, params)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"pyengine: error: {exc}", file=sys.stderr)
        return 2
    done = time.perf_counter()
    num_tokens = 0
    for prompt, output in zip(prompts, outputs):
        completion = output.outputs[0]
        num_tokens += len(completion.token_ids)
        print(f"prompt: {prompt!r}\ncompletion: {completion.text!r}  [finish_reason={completion.finish_reason}]")
    print(f"({num_tokens} tokens in {done - loaded:.2f} s; model loaded in {loaded - start:.2f} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
