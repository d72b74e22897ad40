"""A small OpenAI-compatible chat endpoint on a local port, for tests that need a "live" model.

It is a fake of a third-party service (like the sandbox is of Klaviyo), not a mock of our code.
Modes:

- ``reject``: every request gets a 401 whose message quotes the API key it was sent, as some
  servers do (the worst case for leaking a key into state, checkpoints and reports);
- ``echo``: every request is answered with a text that quotes the key, streamed when asked.

Example::

    with FakeOpenAI(mode="echo") as server:
        env["OPENAI_BASE_URL"] = server.base_url
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, mode: str = "echo", model: str = "fake-served-model") -> None:
        self.mode = mode
        self.model = model
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("authorization", "")
                key = auth.split(" ", 1)[1] if " " in auth else auth
                outer.requests.append({"path": self.path, "body": body, "key": key})
                if outer.mode == "reject":
                    self._json(401, {"error": {"message": f"Incorrect API key provided: {key}. Check it.",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
                    return
                text = f"I was called with the key {key} and have nothing else to say."
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    for piece in (text[:20], text[20:]):
                        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                 "model": outer.model,
                                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                              "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    end = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": outer.model,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                    return
                self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": outer.model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22}})

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
