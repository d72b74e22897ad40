"""What the ``[server]`` extra adds, and the one line that says how to install it when it is missing.

The service's commands need different parts of it: ``personas runs`` and ``personas watch`` on SQLite
need none (metrics are then a recorder that keeps nothing); ``personas serve`` needs Starlette and
uvicorn (also in ``[sandbox]``), and without croniter it runs no schedules, without prometheus-client
its ``/metrics`` answers 503 (it says so when it starts: :func:`serve_gaps`);
PostgreSQL (``PERSONAS_DATABASE_URL``, ``personas worker``) needs procrastinate, psycopg, psycopg-pool
and langgraph-checkpoint-postgres. A command checks what it needs before it prints or opens anything::

    require("personas serve", *SERVE)   # UsageProblem: "personas serve needs the [server] extra ..."
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

from personas.kernel.errors import UsageProblem

__all__ = [
    "METRICS", "POSTGRES", "SCHEDULES", "SERVE", "install_command", "missing", "missing_extra", "require", "serve_gaps",
]

#: module -> the distribution (in the ``[server]`` extra) that provides it
DISTRIBUTIONS = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "croniter": "croniter",
    "prometheus_client": "prometheus-client",
    "procrastinate": "procrastinate",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg-pool",
    "langgraph.checkpoint.postgres": "langgraph-checkpoint-postgres",
}
SCHEDULES = ("croniter",)
METRICS = ("prometheus_client",)
#: ``personas serve``: the app and its server (schedules and /metrics are optional: :func:`serve_gaps`).
SERVE = ("starlette", "uvicorn")
#: ``PERSONAS_DATABASE_URL``: the run store, checkpoints and the queue on PostgreSQL.
POSTGRES = ("procrastinate", "psycopg", "psycopg_pool", "langgraph.checkpoint.postgres")


def missing(*modules: str) -> list[str]:
    """The distributions of ``modules`` that cannot be imported (an import that fails counts as missing)."""
    out = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(DISTRIBUTIONS.get(name, name))
    return out


def install_command(extra: str = "server") -> str:
    """How to install ``extra`` here: into this clone's environment (editable), else from the registry."""
    root = Path(__file__).resolve().parents[2]
    if not ((root / "pyproject.toml").is_file() and (root / "dev.py").is_file()):
        return f"pip install 'klaviyo-personas[{extra}]'"
    pip = Path(sys.prefix) / "bin" / "pip"
    if Path(sys.prefix).resolve() == (root / ".venv").resolve() and Path(os.getcwd()).resolve() == root:
        return f".venv/bin/pip install -e '.[{extra}]'"
    return f"{shlex.quote(str(pip))} install -e {shlex.quote(f'{root}[{extra}]')}"


def missing_extra(what: str, *modules: str) -> str:
    """The one line for ``what`` when ``modules`` are missing (see :func:`require`)."""
    names = missing(*modules) or [DISTRIBUTIONS.get(m, m) for m in modules]
    return (
        f"{what} needs the [server] extra ({', '.join(names)} {'is' if len(names) == 1 else 'are'} not "
        f"installed): {install_command()}"
    )


def require(what: str, *modules: str) -> None:
    """Raise a one-line UsageProblem naming the extra and its install command if a module is missing."""
    if missing(*modules):
        raise UsageProblem(missing_extra(what, *modules))


def serve_gaps(scheduled: bool) -> list[str]:
    """What ``personas serve`` will not do here for want of the extra, one line each (empty: nothing).

    ``scheduled``: whether a persona has a cron schedule (without one, croniter is not missed).
    """
    gaps = []
    if missing(*METRICS):
        gaps.append("/metrics answers 503 (prometheus-client is not installed)")
    if scheduled and missing(*SCHEDULES):
        gaps.append("schedules do not run (croniter is not installed)")
    if gaps:
        gaps.append(f"install the [server] extra for them: {install_command()}")
    return gaps
