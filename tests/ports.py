"""Ports for the servers tests start, and for ports nothing may answer on: free when picked, and never
one another pytest worker picks.

A port picked with ``bind(("127.0.0.1", 0))`` is free at that moment only. A server started on it binds
it a second later, after its imports; meanwhile a test on another worker can get the same port from
the kernel and start its own server there, and a readiness probe of the port is then answered by the
wrong server (CI, 2026-12-08: a sandbox started without rate limits was probed ready while another
test's sandbox, with its limits on, held the port). Each worker takes ports from a range of its own,
below the kernel's ephemeral range (32768-60999 on Linux, where ``bind(0)`` and outgoing connections
take theirs), so two workers never pick the same port; within a worker, tests run one at a time, and
a port comes round again only after the rest of the range.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

__all__ = ["free_port"]

BASE = 20000
SPAN = 2500  # ports per worker: gw0 20000-22499, gw1 22500-24999, ... gw4 30000-32499
WORKERS = 5  # ranges before they come round again (a sixth worker shares gw0's)


def _worker() -> int:
    digits = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(digits) % WORKERS if digits.isdigit() else 0


_turn = itertools.count(random.randrange(SPAN))  # where this process starts in its range


def free_port() -> int:
    """A port of this worker's range that nothing holds now."""
    low = BASE + _worker() * SPAN
    for _ in range(SPAN):
        port = low + next(_turn) % SPAN
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # held, or closing (TIME_WAIT): the next one
                continue
        return port
    raise RuntimeError(f"no free port in {low}-{low + SPAN - 1} on 127.0.0.1")
