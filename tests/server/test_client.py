"""`pyengine chat` and `pyengine complete`, run in a pseudo-terminal against a real server."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from typing import Any, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from pyengine_server.background import BackgroundServer

from .conftest import ROOT, serve

DEMO = ROOT / "pyengine" / "demo_model"

ENV = {k: v for k, v in os.environ.items() if k not in ("PYENGINE_API_KEY", "OPENAI_API_KEY")}


class Terminal:
    """A command on a pseudo-terminal: what it prints is read, what a user types is written."""

    def __init__(self, command: list[str]):
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=ENV, close_fds=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, text: str, timeout: float = 60, count: int = 1) -> str:
        """Read what the command prints until `text` has appeared `count` times in all."""
        deadline = time.monotonic() + timeout
        while self.screen.count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} never appeared; screen: {self.screen!r}"
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096).decode("utf-8", "replace")
                except OSError:  # the command exited and closed the terminal
                    assert self.screen.count(text) >= count, f"{text!r} never appeared; screen: {self.screen!r}"
        return self.screen

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=20)
        finally:
            os.close(self.master)


def client(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyengine_server", *args]


def recorded_bodies(running, monkeypatch) -> list[dict[str, Any]]:
    """The chat request bodies the server receives (and the Authorization headers)."""
    chat = running.app.state.server.chat
    create, seen = chat.create, []

    async def recording(body, http_request):
        # the handler receives the raw body (it is decoded on a worker thread)
        seen.append({"body": json.loads(body), "auth": http_request.headers.get("authorization")})
        return await create(body, http_request)

    monkeypatch.setattr(chat, "create", recording)
    return seen


def test_chat_streams_answers_keeps_the_conversation_and_quits(monkeypatch):
    """The demo model (a chat model writing plain text) behind a key, its name found by the client."""
    with BackgroundServer.start(str(DEMO), served_model_name="demo", api_key="secret", num_kv_blocks=64) as running:
        seen = recorded_bodies(running, monkeypatch)
        term = Terminal(client("chat", "--url", f"{running.url}/v1", "--api-key", "secret",
                               "--system-prompt", "Be brief."))
        term.read_until(f"Chatting with demo at {running.url}/v1 (/quit to leave)")
        term.read_until("> ")
        term.type("Hello")
        term.read_until("\r\n> ", count=2)  # the answer, then the next prompt
        term.type("And again")
        term.read_until("\r\n> ", count=3)
        term.type("/quit")
        assert term.close() == 0
    first, second = (s["body"] for s in seen)
    assert all(s["auth"] == "Bearer secret" for s in seen)
    assert first["model"] == "demo" and first["stream"] is True  # the server's first model
    assert first["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert second["messages"][:2] == first["messages"] and second["messages"][3] == {"role": "user",
                                                                                    "content": "And again"}
    reply = second["messages"][2]
    assert reply["role"] == "assistant" and reply["content"]
    # the reply the client kept is what it printed, between the typed line and the next prompt
    printed = term.screen.split("> Hello\r\n", 1)[1].split("\r\n> And again", 1)[0]
    assert printed == reply["content"].replace("\n", "\r\n")


def test_chat_quick_message_and_a_wrong_key_is_one_line(monkeypatch):
    with serve(api_key="secret") as running:
        term = Terminal(client("chat", "--url", f"{running.url}/v1", "--api-key", "wrong", "--model", "alias",
                               "-q", "hi"))
        screen = term.read_until("error")
        assert term.close() == 1
        assert "pyengine chat: error: 401 from" in screen and "valid API key" in screen
        assert "Traceback" not in screen


def test_chat_ends_at_end_of_input_and_reports_an_unreachable_server():
    term = Terminal(client("chat", "--url", "http://127.0.0.1:9/v1", "--model", "m"))
    term.read_until("> ")
    term.type("hello")
    term.read_until("cannot reach http://127.0.0.1:9/v1/chat/completions")
    term.read_until("> ", count=2)  # the conversation goes on
    os.write(term.master, b"\x04")  # Ctrl-D
    assert term.close() == 0


@contextlib.contextmanager
def completions_server(with_completions: bool = True) -> Iterator[tuple[str, list]]:
    """A stand-in server that records the bodies it gets: /v1/completions streams three words,
    or (without it) there is no such route, as on a chat-only server."""
    import socket
    import threading

    import uvicorn

    seen: list = []

    async def completions(request: Request):
        body = await request.json()
        seen.append(body)

        async def events():
            for word in ["upon", " a", " time"]:
                chunk = {"object": "text_completion", "model": body["model"],
                         "choices": [{"index": 0, "text": word, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])] if with_completions else [])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", seen
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_complete_streams_each_prompt_raw():
    with completions_server() as (url, seen):
        term = Terminal(client("complete", "--url", url, "--model", "m", "--max-tokens", "3"))
        term.read_until("> ")
        term.type("Once")
        term.read_until("upon a time\r\n> ")
        term.type("/quit")
        assert term.close() == 0
    assert seen == [{"model": "m", "prompt": "Once", "max_tokens": 3, "stream": True}]


def test_complete_against_a_chat_only_server_says_so():
    with completions_server(with_completions=False) as (url, _):
        term = Terminal(client("complete", "--url", url, "--model", "m", "-q", "Once"))
        screen = term.read_until("use `pyengine chat`")
        assert term.close() == 1
    assert "pyengine complete: error: 404 from" in screen and "Traceback" not in screen


def test_complete_gets_its_answers_from_a_pyengine_server(monkeypatch):
    """The demo model, greedy (its generation defaults overridden), its name found by the client:
    what `pyengine complete` prints is the server's completion of the typed line."""
    serving = {"override_generation_config": {"temperature": 0}}
    with BackgroundServer.start(str(DEMO), served_model_name="demo", api_key="secret", num_kv_blocks=64,
                                serving=serving) as running:
        completion = running.app.state.server.completion
        create, seen = completion.create, []

        async def recording(body, http_request):
            seen.append(json.loads(body))
            return await create(body, http_request)

        monkeypatch.setattr(completion, "create", recording)
        term = Terminal(client("complete", "--url", f"{running.url}/v1", "--api-key", "secret", "--max-tokens", "8"))
        term.read_until("> ")
        term.type("2 + 3 =")
        term.read_until("\r\n> ")  # the answer, then the next prompt
        term.type("/quit")
        assert term.close() == 0
        whole = httpx.post(f"{running.url}/v1/completions", headers={"Authorization": "Bearer secret"},
                           json={"model": "demo", "prompt": "2 + 3 =", "max_tokens": 8}, timeout=60).json()
    assert seen[0] == {"model": "demo", "prompt": "2 + 3 =", "max_tokens": 8, "stream": True}
    answer = whole["choices"][0]["text"]
    assert answer.strip()
    printed = term.screen.split("> 2 + 3 =\r\n", 1)[1].rsplit("\r\n> ", 1)[0]
    assert printed == answer.replace("\n", "\r\n")
