"""Who holds a run on SQLite, and whether it is still there: an owner and a lease per run.

On SQLite every process that works on a ``$PERSONAS_HOME`` (``personas serve``, ``personas watch``,
``personas runs retry``) runs the runs it queued itself, and several may share a home (a watcher
beside the server, a second server started by mistake). So a queued or running run records its
owner: ``worker`` (``host:pid``) and ``owner`` (the owner's token: the process's start time and a
random part, new for each store a process opens), and a ``lease``: the time until which the owner
holds it, renewed by a heartbeat (``RunStore``) every ``LEASE / 4`` seconds. Another process takes
a run over only when its owner is gone (:func:`gone_reason`):

- no owner is recorded (a run from before owners, or one its owner let go when it stopped);
- the lease ran out (an owner on another machine, or one that stopped its heartbeat);
- the owner's process has ended on this machine (its pid is not running, or runs a process that
  started at another time: the pid was given to someone else, as a restarted container's pid 1 is).

An owner that was only starved (no heartbeat for longer than the lease) may wake after its run was
taken over: its updates (``RunStore.finish``, ``renew``) are conditional on the run's owner still
being its token, so it records nothing over the new owner's result and logs one line saying so.

Example::

    me = Owner.here()
    reason = gone_reason(run.worker, run.owner, run.lease, now=time.time(), me=me)
    if reason: ...    # "its process vm:4242 has ended": the run may be taken over
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LEASE", "Owner", "gone_reason", "process_started"]

#: Seconds an owner holds its runs without a heartbeat (it sends one every LEASE / 4).
LEASE = 60.0


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it is running
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Owner:
    """This process as the owner of runs: ``worker`` (``host:pid``) and a ``token`` of its own."""

    worker: str
    token: str

    @classmethod
    def here(cls) -> Owner:
        pid = os.getpid()
        started = process_started(pid) or "0"
        return cls(f"{socket.gethostname()}:{pid}", f"{started}.{uuid.uuid4().hex[:12]}")


def gone_reason(worker: str | None, token: str | None, lease: float | None, *, now: float, me: Owner) -> str | None:
    """Why the owner of a run (``worker``, ``token``, ``lease``) is gone, in a few words; None while it
    holds the run (see the module docstring)."""
    if not token:
        return "no process holds it"
    if token == me.token:
        return None
    if lease is None or lease < now:
        late = f" for {now - lease + LEASE:.0f} s" if lease is not None else ""
        return f"its process {worker or '?'} sent no heartbeat{late}"
    host, _, pid_text = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None  # another machine: its lease tells
    pid = int(pid_text)
    if not _running(pid):
        return f"its process {worker} has ended"
    started, now_started = token.partition(".")[0], process_started(pid)
    if now_started is not None and started not in ("0", now_started):
        return f"its process {worker} has ended (the pid now belongs to another process)"
    return None
