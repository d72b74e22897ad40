"""A TCP relay to the test PostgreSQL that cuts its connections at a chosen point of the conversation.

What a network drop or a database restart does to a client, at the exact moment a test needs: before
a statement reaches the server (the server then rolls the transaction back), or after the server
ran it, its answer never reaching the client (a ``COMMIT`` that was made, though the client cannot
know). Real sockets, a real server; only the wire is cut.

Example::

    with CuttingRelay(pg_url) as relay:
        log = PostgresAuditLog(relay.url)
        relay.cut_after(b"COMMIT")   # the next COMMIT is made, its answer lost, the connection closed
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = ["CuttingRelay"]


class CuttingRelay:
    """Relays 127.0.0.1:<port> to the database of ``url``; :meth:`cut_before` / :meth:`cut_after` arm one cut."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self.url = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{port}", query="sslmode=disable"))
        self._lock = threading.Lock()
        self._before: bytes | None = None
        self._after: bytes | None = None
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_before(self, marker: bytes) -> None:
        """The next message holding ``marker`` never reaches the server: both ends are closed instead."""
        with self._lock:
            self._before = marker

    def cut_after(self, marker: bytes) -> None:
        """The next message holding ``marker`` reaches the server; its answer is dropped and both ends closed."""
        with self._lock:
            self._after = marker

    def close(self) -> None:
        self._listener.close()

    def __enter__(self) -> CuttingRelay:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self._target)
            dropping = threading.Event()
            threading.Thread(target=self._up, args=(client, server, dropping), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, dropping), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        """Client to server, cutting where armed."""
        while data := _recv(client):
            with self._lock:
                before = self._before is not None and self._before in data
                after = self._after is not None and self._after in data
                if before:
                    self._before = None
                if after:
                    self._after = None
                    dropping.set()  # before the server can answer
                if before or after:
                    self.cuts += 1
            if before:
                break
            with contextlib.suppress(OSError):
                server.sendall(data)
        if not dropping.is_set():
            _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, dropping: threading.Event) -> None:
        """Server to client; once dropping, the server's next answer is read and thrown away."""
        while data := _recv(server):
            if dropping.is_set():
                break
            with contextlib.suppress(OSError):
                client.sendall(data)
        _close(client, server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
