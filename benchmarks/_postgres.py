"""A throwaway PostgreSQL server for a benchmark: initdb in a temporary folder, loopback only.

``PERSONAS_BENCH_DATABASE_URL`` (or ``PERSONAS_TEST_DATABASE_URL``, which CI exports) names an
existing server instead. The server keeps PostgreSQL's defaults that matter for durability
(``fsync=on``, ``synchronous_commit=on``): a checkpoint is on disk when its commit returns, as in
production. Running as root, the server runs as the ``postgres`` user (initdb refuses root).

Example::

    with throwaway_postgres() as url:      # None when no PostgreSQL is installed (reason printed)
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = ["throwaway_postgres"]


def _bindir() -> str | None:
    for candidate in [os.environ.get("PG_BINDIR", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if candidate and os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """Yield a connection URL to a fresh local server (stopped and deleted after), or None."""
    given = os.environ.get("PERSONAS_BENCH_DATABASE_URL") or os.environ.get("PERSONAS_TEST_DATABASE_URL")
    if given:
        yield given
        return
    bindir = _bindir()
    if bindir is None:
        print("PostgreSQL: no initdb found (apt-get install postgresql, or set PERSONAS_BENCH_DATABASE_URL)")
        yield None
        return
    folder = tempfile.mkdtemp(prefix="bench-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(folder, "data")
    port = _free_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        server = subprocess.Popen(
            [*as_user, f"{bindir}/postgres", "-D", data, "-p", str(port), "-k", folder,
             "-c", "listen_addresses=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while subprocess.run([f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the throwaway PostgreSQL server did not start")
            time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)
