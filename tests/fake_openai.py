"""A small OpenAI-compatible chat endpoint on a local port, for tests that need a "live" model.

It is a fake of a third-party service (like the sandbox is of Klaviyo), not a mock of our code.
Every answer carries what a real endpoint returns about it: the model that served it (``model``,
which may differ from the one asked for), a response id unique per answer, and token usage.
Modes:

- ``reject``: every request gets a 401 whose message quotes the API key it was sent, as some
  servers do (the worst case for leaking a key into state, checkpoints and reports);
- ``echo``: every request is answered with a text that quotes the key, streamed when asked;
- ``script``: each request is answered by ``script(body, n)`` (``n`` counts requests from 0), which
  returns ``{"content": "...", "tool_calls": [{"name": ..., "args": {...}}]}``; streamed when asked.

``requests`` keeps every request (path, JSON body, key) for a test to check what was sent.

Example::

    with FakeOpenAI(mode="script", script=lambda body, n: {"content": "hi"}) as server:
        env["OPENAI_BASE_URL"] = server.base_url
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[dict[str, Any], int], dict[str, Any]]


class FakeOpenAI:
    def __init__(self, mode: str = "echo", model: str = "fake-served-model", script: Script | None = None) -> None:
        self.mode = mode
        self.model = model
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("authorization", "")
                key = auth.split(" ", 1)[1] if " " in auth else auth
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append({"path": self.path, "body": body, "key": key})
                if outer.mode == "reject":
                    self._json(401, {"error": {"message": f"Incorrect API key provided: {key}. Check it.",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
                    return
                if outer.mode == "script":
                    assert outer.script is not None, "script mode needs a script"
                    answer = outer.script(body, n)
                else:
                    answer = {"content": f"I was called with the key {key} and have nothing else to say."}
                self._answer(body, answer, f"chatcmpl-fake-{n + 1}")

            def _answer(self, body: dict[str, Any], answer: dict[str, Any], rid: str) -> None:
                text = answer.get("content") or ""
                calls = [{"id": f"call_{rid}_{i}", "type": "function",
                          "function": {"name": c["name"], "arguments": json.dumps(c.get("args", {}))}}
                         for i, c in enumerate(answer.get("tool_calls") or [])]
                finish = "tool_calls" if calls else "stop"
                usage = {"prompt_tokens": 10 + len(json.dumps(body)) // 4, "completion_tokens": 5 + len(text) // 4,
                         "total_tokens": 0}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    pieces = [text[:20], text[20:]] if text else []
                    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": p} for p in pieces]
                    if calls:
                        indexed = [dict(c, index=i) for i, c in enumerate(calls)]
                        deltas.append({"role": "assistant", "tool_calls": indexed})
                    for delta in deltas:
                        chunk = {"id": rid, "object": "chat.completion.chunk", "created": 0, "model": outer.model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    end = {"id": rid, "object": "chat.completion.chunk", "created": 0, "model": outer.model,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage}
                    self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                    return
                message: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    message["tool_calls"] = calls
                self._json(200, {"id": rid, "object": "chat.completion", "created": 0, "model": outer.model,
                                 "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                                 "usage": usage})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
