"""`pyengine chat` and `pyengine complete`: terminal clients of a running OpenAI-compatible server.

    pyengine chat [--url http://localhost:8000/v1] [--model NAME] [--api-key KEY] [--system-prompt TEXT]
    pyengine complete [--url ...] [--model NAME] [--api-key KEY] [--max-tokens N]

As `vllm chat` and `vllm complete`: each line typed is sent, and the answer is printed as it
streams in. `chat` keeps the conversation (with the system prompt first) and sends all of it
each turn, through `/v1/chat/completions`; a thinking model's reasoning is printed before its
answer, dimmed on a terminal. `complete` sends each line as a raw prompt to `/v1/completions`.
`/quit` (or `/exit`, or end of input) leaves; `-q TEXT` sends one message and exits. Without
`--model` the server's first model (`GET /v1/models`) is used. The key comes from `--api-key`,
else PYENGINE_API_KEY, else OPENAI_API_KEY; none is sent without one.

Only the standard library is used (urllib), so the clients need nothing the server does not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Iterator

DEFAULT_URL = "http://localhost:8000/v1"
QUIT = ("/quit", "/exit")
DIM, RESET = "\033[2m", "\033[0m"


class ClientError(RuntimeError):
    """The server could not be reached, or answered with an error (the message says which)."""


class Connection:
    """The server's base URL (ending in /v1) and the headers every request carries."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 600.0):
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def _open(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=self.headers,
                                         method="GET" if body is None else "POST")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise ClientError(f"{exc.code} from {self.url + path}: {_error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach {self.url + path}: {reason}") from None

    def get(self, path: str) -> Any:
        with self._open(path) as response:
            return json.loads(response.read())

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `body` with `stream: true`; yield each server-sent event's JSON until [DONE]."""
        with self._open(path, {**body, "stream": True}) as response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise ClientError(_error_message(data.encode()))
                yield event

    def first_model(self) -> str:
        models = self.get("/models").get("data") or []
        if not models:
            raise ClientError(f"{self.url}/models lists no model")
        return models[0]["id"]


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip()[:200] or "no details"
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        return str(error["error"].get("message"))
    if isinstance(error, dict) and "detail" in error:
        return json.dumps(error["detail"])[:200]
    return json.dumps(error)[:200]


def chat_turn(connection: Connection, model: str, messages: list[dict[str, str]], out: Any) -> str:
    """Stream one assistant answer to `out`; return its content (reasoning is shown, not kept)."""
    styled = out.isatty()
    content, in_reasoning = [], False
    for event in connection.stream("/chat/completions", {"model": model, "messages": messages}):
        for choice in event.get("choices", []):
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning:
                if not in_reasoning and styled:
                    out.write(DIM)
                in_reasoning = True
                out.write(reasoning)
            if delta.get("content"):
                if in_reasoning:
                    out.write((RESET if styled else "") + "\n")
                    in_reasoning = False
                content.append(delta["content"])
                out.write(delta["content"])
            out.flush()
    if in_reasoning and styled:
        out.write(RESET)
    out.write("\n")
    out.flush()
    return "".join(content)


def complete_once(connection: Connection, model: str, prompt: str, max_tokens: int | None, out: Any) -> str:
    """Stream the completion of `prompt` to `out`; return its text."""
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    text = []
    try:
        for event in connection.stream("/completions", body):
            for choice in event.get("choices", []):
                if choice.get("text"):
                    text.append(choice["text"])
                    out.write(choice["text"])
                    out.flush()
    except ClientError as exc:
        if str(exc).startswith("404 "):
            raise ClientError(f"{exc}: this server has no text completions endpoint "
                              "(a chat-only server: use `pyengine chat`)") from None
        raise
    out.write("\n")
    out.flush()
    return "".join(text)


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"pyengine {command}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the server's API base URL (default: {DEFAULT_URL})")
    parser.add_argument("--model", "--model-name", dest="model", default=None,
                        help="model name to ask for (default: the server's first model)")
    parser.add_argument("--api-key", default=None,
                        help="bearer key (default: $PYENGINE_API_KEY, else $OPENAI_API_KEY)")
    if command == "chat":
        parser.add_argument("--system-prompt", default=None, help="a system message to start the conversation")
    else:
        parser.add_argument("--max-tokens", type=int, default=None, help="tokens per completion (server default)")
    parser.add_argument("-q", "--quick", default=None, metavar="TEXT", help="send TEXT once, print the answer, exit")
    return parser


def main(argv: list[str]) -> int:
    """`pyengine chat ...` or `pyengine complete ...` (argv[0] is the command)."""
    command, rest = argv[0], argv[1:]
    args = build_parser(command).parse_args(rest)
    api_key = args.api_key or os.environ.get("PYENGINE_API_KEY") or os.environ.get("OPENAI_API_KEY")
    connection = Connection(args.url, api_key)
    out = sys.stdout
    try:
        model = args.model or connection.first_model()
        messages = [{"role": "system", "content": args.system_prompt}] if getattr(args, "system_prompt", None) else []
        if command == "chat" and sys.stdin.isatty() and args.quick is None:
            out.write(f"Chatting with {model} at {connection.url} (/quit to leave)\n")
        while True:
            if args.quick is not None:
                line = args.quick
            else:
                try:
                    line = input("> ")
                except EOFError:
                    out.write("\n")
                    return 0
            if line.strip() in QUIT:
                return 0
            if not line.strip():
                continue
            try:
                if command == "chat":
                    messages.append({"role": "user", "content": line})
                    answer = chat_turn(connection, model, messages, out)
                    messages.append({"role": "assistant", "content": answer})
                else:
                    complete_once(connection, model, line, args.max_tokens, out)
            except ClientError as exc:
                if command == "chat":
                    messages.pop()  # the turn did not happen
                print(f"pyengine {command}: error: {exc}", file=sys.stderr)
                if args.quick is not None:
                    return 1
            if args.quick is not None:
                return 0
    except ClientError as exc:
        print(f"pyengine {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        out.write("\n")
        return 130
