#!/usr/bin/env python3
"""An OpenAI-compatible proxy in front of llama-server that turns JSON-as-text tool calls into ``tool_calls``.

Small Qwen2.5-Coder models, asked to call a tool, mostly write the call as text (bare JSON, a fenced
```json block, or copied ``{{...}}``) rather than in the ``<tool_call>`` tags llama-server parses,
so the call arrives as ``content``. For ``/v1/chat/completions`` requests that offer ``tools``, this
proxy finds such a call naming an offered tool and returns it as a proper ``tool_calls`` entry, for
plain and for streamed (``stream: true``) responses alike. Everything else passes through as sent:
the served model name, the response ``id`` and ``usage`` are never touched, so a recording keeps
them. What it changed it says: every response has the header ``X-Toolcall-Proxy``; a non-streamed
one ``X-Toolcall-Proxy-Rewrote: N``; and a response whose calls were rewritten gets
``system_fingerprint`` ``<upstream's>+toolcall-proxy`` (on the chunk that carries them when streamed).
While llama-server is still reading a long prompt, or the proxy holds back a long answer that may
be a call, a streamed response is kept alive with SSE comments, so a client's read timeout
(LangChain's 60 s) does not cut a slow CPU off.

    python3 scripts/local_model_proxy.py --upstream http://127.0.0.1:8080 --port 8090

Stdlib only; started by ``scripts/local_model.py start``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import queue
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG = "+toolcall-proxy"
HEADER = "X-Toolcall-Proxy"
VERSION = "toolcall-proxy/1"

#: Where a call may sit in the text: llama.cpp's own tags (unparsed), a fenced block, or the whole text.
_BLOBS = (
    re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S),
    re.compile(r"```[a-zA-Z]*\s*(.*?)\s*```", re.S),
)
#: A text that starts like this may be a call: hold it back (when streaming) until it is complete.
_MAYBE_CALL = ("{", "[", "`", "<")


def offered_tools(request: dict[str, Any]) -> set[str]:
    """Names of the functions the request offers, or none when it forbids calls."""
    if request.get("tool_choice") == "none":
        return set()
    return {str(t.get("function", {}).get("name")) for t in request.get("tools") or [] if isinstance(t, dict)}


def _decode(blob: str) -> Any:
    try:
        return json.loads(blob)
    except ValueError:
        pass
    # Small models often close one brace too many: take the first JSON value if only closers follow it.
    try:
        value, end = json.JSONDecoder().raw_decode(blob)
        if not blob[end:].strip(" \n\t}]"):
            return value
    except ValueError:
        pass
    # Qwen2.5's template shows the format as {{"name": ..., "arguments": ...}}; small models copy the braces.
    if blob.startswith("{{") and blob.endswith("}}"):
        try:
            return json.loads(blob[1:-1])
        except ValueError:
            return None
    return None


def _as_calls(value: Any, names: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, arguments)]`` if ``value`` is one call or a list of calls to offered tools, else ``[]``."""
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return []
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name, args = item.get("name"), item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            args = _decode(args) if args.strip() else {}
        if name not in names or not isinstance(args, dict):
            return []
        calls.append((str(name), args))
    return calls


def find_calls(text: str | None, names: set[str], seed: str) -> list[dict[str, Any]]:
    """The tool calls written in ``text`` as OpenAI ``tool_calls`` entries (``[]`` when there are none).

    Ids are derived from ``seed`` (the conversation so far) and the call, so the same answer to the
    same conversation gets the same ids: recordings stay stable.
    """
    stripped = (text or "").strip()
    if not stripped or not names:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    for blob in [b for pattern in _BLOBS for b in pattern.findall(stripped)] or [stripped]:
        for call in _as_calls(_decode(blob.strip()), names):
            if call not in found:
                found.append(call)
    out = []
    for index, (name, args) in enumerate(found):
        arguments = json.dumps(args, ensure_ascii=False)
        digest = hashlib.sha256(f"{seed}|{index}|{name}|{arguments}".encode()).hexdigest()[:24]
        out.append({"id": f"call_{digest}", "type": "function", "function": {"name": name, "arguments": arguments}})
    return out


def conversation_seed(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    return hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()


def tagged(fingerprint: Any) -> str:
    base = str(fingerprint or "")
    return base if base.endswith(TAG) else base + TAG


def rewrite_completion(request: dict[str, Any], response: dict[str, Any]) -> int:
    """Turn written calls in a non-streamed completion into ``tool_calls`` in place; how many choices changed."""
    names, seed, changed = offered_tools(request), conversation_seed(request), 0
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        if message.get("tool_calls"):
            continue
        calls = find_calls(message.get("content"), names, seed)
        if calls:
            message["tool_calls"] = calls
            if str(message.get("content") or "").lstrip().startswith(_MAYBE_CALL):
                message["content"] = None  # the text was the call; prose around a fenced call is kept
            choice["finish_reason"] = "tool_calls"
            changed += 1
    if changed:
        response["system_fingerprint"] = tagged(response.get("system_fingerprint"))
    return changed


class StreamRewriter:
    """Rewrites a streamed completion chunk by chunk, with the same rules as ``rewrite_completion``.

    Text streams through as it comes, unless it starts like a call (``{``, ``[``, a fence, a tag):
    then it is held until the end and sent either as ``tool_calls`` or, if it was no call, as text.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self.names, self.seed = offered_tools(request), conversation_seed(request)
        self.text = ""
        self.held: list[dict[str, Any]] = []
        self.mode = "undecided"  # -> "pass" | "hold"
        self.native = False
        self.rewrote = 0

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send now for one chunk from upstream."""
        choices = chunk.get("choices") or []
        if len(choices) != 1 or not self.names:
            if self.rewrote and "system_fingerprint" in chunk:  # the usage chunk after the finish
                chunk = {**chunk, "system_fingerprint": tagged(chunk["system_fingerprint"])}
            return [chunk]
        choice = choices[0]
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            self.native = True
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            self.text += piece
            if self.mode == "undecided" and self.text.strip():
                self.mode = "hold" if self.text.lstrip().startswith(_MAYBE_CALL) and not self.native else "pass"
        if choice.get("finish_reason") is not None:
            return self._finish(chunk)
        if self.mode == "pass" or (self.mode == "undecided" and not piece):
            out, self.held = [*self.held, chunk], []
            return out
        self.held.append(chunk)
        return []

    def close(self) -> list[dict[str, Any]]:
        """What is still held when the stream ended without a finish: sent as it came."""
        out, self.held = self.held, []
        return out

    def _finish(self, last: dict[str, Any]) -> list[dict[str, Any]]:
        held, self.held = self.held, []  # all of it is decided now: nothing may follow [DONE] from close()
        calls = [] if self.native else find_calls(self.text, self.names, self.seed)
        if not calls:
            return [*held, last]
        self.rewrote = len(calls)
        choice = last["choices"][0]
        head = {k: v for k, v in last.items() if k not in ("choices", "usage", "timings")}
        head["system_fingerprint"] = tagged(last.get("system_fingerprint"))
        out = []
        if self.mode == "hold":
            # the held text was the call: send the role only (as OpenAI does), then the calls
            out.append({**head, "choices": [{"index": choice.get("index", 0), "finish_reason": None,
                                             "delta": {"role": "assistant", "content": None}}]})
        deltas = [{"index": i, **c} for i, c in enumerate(calls)]
        out.append({**head, "choices": [{"index": choice.get("index", 0), "finish_reason": None,
                                         "delta": {"tool_calls": deltas}}]})
        end_delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "content"}
        out.append({**last, "system_fingerprint": head["system_fingerprint"],
                    "choices": [{**choice, "delta": end_delta, "finish_reason": "tool_calls"}]})
        return out


def sse_events(response: http.client.HTTPResponse) -> Iterator[str]:
    """The ``data:`` payloads (and other lines, as they are) of a server-sent event stream."""
    while line := response.readline():
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if text:
            yield text


class Proxy(BaseHTTPRequestHandler):
    """Forwards every request to ``server.upstream``; rewrites chat completions that offer tools."""

    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it `format`
        sys.stdout.write(f"{self.log_date_time_string()} {format % args}\n")
        sys.stdout.flush()

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        self._opened = False  # one handler serves every request of a kept-alive connection
        self._last_sent = time.monotonic()
        try:
            self._proxy()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout, Ctrl-C): not ours
            self.log_message("client went away during %s %s", self.command, self.path)
            self.close_connection = True

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request: dict[str, Any] | None = None
        if self.command == "POST" and self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
            try:
                parsed = json.loads(raw or b"null")
                request = parsed if isinstance(parsed, dict) else None
            except ValueError:
                request = None
        skip = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        upstream = urllib.parse.urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port or 80, timeout=3600)
        streamed = request is not None and bool(request.get("stream"))
        try:
            reply, failure = self._await(conn, raw, headers, keep_alive=streamed)
            if failure is not None or reply is None:
                message = f"llama-server at {self.server.upstream} is unreachable: {failure}"
                if self._opened:  # 200 and SSE already sent: the error goes as an event, as OpenAI sends one
                    self._event({"error": {"message": message, "type": "proxy_error"}})
                    self._end()
                else:
                    self._send(502, json.dumps({"error": {"message": message, "type": "proxy_error"}}).encode())
                return
            if self._opened and reply.status != 200:
                body = reply.read().decode("utf-8", errors="replace")
                try:
                    error = json.loads(body).get("error") or {"message": body}
                except (ValueError, AttributeError):
                    error = {"message": body}
                self._event({"error": error})
                self._end()
                return
            if reply.status == 200 and request is not None and request.get("tools"):
                if streamed:
                    self._stream(request, reply)
                else:
                    body = json.loads(reply.read())
                    rewrote = rewrite_completion(request, body)
                    self._send(200, json.dumps(body).encode(), {f"{HEADER}-Rewrote": str(rewrote)})
                return
            self._relay(reply)
        finally:
            conn.close()

    _opened = False  # whether a 200 event stream was started before llama-server answered

    def _await(
        self, conn: http.client.HTTPConnection, raw: bytes, headers: dict[str, str], *, keep_alive: bool
    ) -> tuple[http.client.HTTPResponse | None, str | None]:
        """Send the request upstream and wait for its response head.

        llama-server says nothing until it has read the whole prompt, which on a busy CPU can take
        longer than a client's read timeout (LangChain's is 60 s). For a streamed request the proxy
        therefore opens the event stream at once and sends an SSE comment (``: waiting``, ignored by
        clients) every ``keep_alive_every`` seconds until llama-server answers.
        """
        done: queue.Queue[tuple[http.client.HTTPResponse | None, str | None]] = queue.Queue()

        def call() -> None:
            try:
                conn.request(self.command, self.path, body=raw or None, headers=headers)
                done.put((conn.getresponse(), None))
            except OSError as e:
                done.put((None, str(e)))

        threading.Thread(target=call, daemon=True).start()
        while True:
            try:
                return done.get(timeout=self.server.keep_alive_every if keep_alive else None)
            except queue.Empty:
                if not self._opened:
                    self._start_chunked(200, "text/event-stream")
                    self._opened = True
                self._chunk(b": waiting for llama-server to read the prompt\n\n")

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(HEADER, VERSION)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _start_chunked(self, status: int, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header(HEADER, VERSION)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            self._last_sent = time.monotonic()

    def _relay(self, reply: http.client.HTTPResponse) -> None:
        """Pass a response through unchanged (streams too), as it arrives."""
        if not self._opened:
            self._start_chunked(reply.status, reply.getheader("Content-Type", "application/json"))
        while data := reply.read1(65536):
            self._chunk(data)
        self.wfile.write(b"0\r\n\r\n")

    def _stream(self, request: dict[str, Any], reply: http.client.HTTPResponse) -> None:
        rewriter = StreamRewriter(request)
        if not self._opened:
            self._start_chunked(200, "text/event-stream")
        for line in sse_events(reply):
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                self._chunk(f"{line}\n\n".encode())
                continue
            try:
                chunk = json.loads(line[5:])
            except ValueError:
                self._chunk(f"{line}\n\n".encode())
                continue
            for out in rewriter.feed(chunk):
                self._chunk(f"data: {json.dumps(out)}\n\n".encode())
            if time.monotonic() - self._last_sent > self.server.keep_alive_every:  # a long held call
                self._chunk(b": holding back text that may be a tool call\n\n")
        for out in rewriter.close():
            self._chunk(f"data: {json.dumps(out)}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        if rewriter.rewrote:
            self.log_message("rewrote %d streamed tool call(s)", rewriter.rewrote)


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, upstream: str, host: str = "127.0.0.1", keep_alive_every: float = 10.0) -> None:
        super().__init__((host, port), Proxy)
        self.upstream = upstream.rstrip("/")
        self.keep_alive_every = keep_alive_every


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="llama-server's base, e.g. http://127.0.0.1:8080")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one, printed)")
    parser.add_argument("--weights-sha256", default="", help="logged at start, for the record")
    parser.add_argument("--keep-alive", type=float, default=10.0,
                        help="seconds between SSE keep-alive comments while llama-server reads a prompt (default 10)")
    args = parser.parse_args(argv)
    server = ProxyServer(args.port, args.upstream, keep_alive_every=args.keep_alive)
    print(f"{VERSION} on http://127.0.0.1:{server.server_address[1]} -> {server.upstream}"
          f" (weights sha256 {args.weights_sha256 or 'not given'})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
