"""pyengine's HTTP server: vLLM's OpenAI-compatible `POST /v1/chat/completions` (and
`POST /v1/completions`) on Starlette.

Start reading at `app.py` (routes) and `serving_chat.py` (one request, start to finish;
`serving_completion.py` is the text completions route on the same machinery);
`docs/05-server.md` walks through it with curl and the `openai` client. This package uses only
pyengine's public API: the names `pyengine` exports (tests/test_architecture.py). It installs
under a name of its own, `pyengine_server`, so a `server.py` on a user's path cannot shadow it.
"""
