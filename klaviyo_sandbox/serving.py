"""Serve an ASGI app (a sandbox's ``app``, or any other) on a loopback port in a background thread.

One way to do it for tests, benchmarks and embedding: the socket is bound before the server starts
(no race for a "free" port), the call waits until uvicorn accepts connections, and leaving the block
stops the server. ``personas sandbox serve`` is the command-line equivalent, in the foreground.
Leaving the block gives requests still in flight (a client killed while its call was answered
slowly, a fault's ``delay``) ``shutdown_timeout`` seconds, then cancels them: uvicorn would wait for
them without end, so the block's end took the thread join's 10 s whenever a test left one behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

__all__ = ["serve_app"]


@contextlib.contextmanager
def serve_app(
    app: Any,
    *,
    port: int = 0,
    lifespan: Literal["auto", "on", "off"] = "auto",
    start_timeout: float = 20.0,
    shutdown_timeout: int = 2,
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (``port`` 0: a free one) until the block ends; yields its base URL."""
    import uvicorn

    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says
    # TCP; otherwise every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="error", lifespan=lifespan, access_log=False, timeout_graceful_shutdown=shutdown_timeout
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"serve-{bound}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"nothing started on 127.0.0.1:{bound}")
            time.sleep(0.005)
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
