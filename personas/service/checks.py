"""What ``personas serve`` and ``personas worker`` need before they open anything, checked without
the service's imports (LangChain, LangGraph, the checkpointers: about a second): a mistaken option,
a missing secret or database URL, or an extra not installed is one line and exit 2 at once."""

from __future__ import annotations

from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem

from .extras import METRICS, POSTGRES, SCHEDULES, SERVE, require

__all__ = ["CATCH_UP", "check_catch_up", "check_serve", "check_worker"]

#: What a schedule does with the slots it missed while nothing ran (``schedule.py``).
CATCH_UP = ("latest", "all", "none")


def check_catch_up(value: str) -> str:
    """``value`` when it is one of :data:`CATCH_UP`; else a UsageProblem naming them."""
    if value not in CATCH_UP:
        raise UsageProblem(f"--catch-up {value!r}: use one of {', '.join(CATCH_UP)}")
    return value


def check_serve(config: Config, *, catch_up: str = "latest") -> None:
    """What ``personas serve`` needs before it opens or prints anything: its options, the webhook
    secret, and the ``[server]`` extra's parts it uses; a UsageProblem (one line) otherwise."""
    check_catch_up(catch_up)
    if not config.webhook_secret:
        raise UsageProblem(
            "KLAVIYO_WEBHOOK_SECRET is not set: it is the secret_key of your Klaviyo webhook, which signs "
            "every delivery; set it before `personas serve`"
        )
    require("personas serve", *SERVE, *(POSTGRES if config.database_url else ()))


def check_worker(config: Config, *, catch_up: str = "latest", metrics_port: int | None = None) -> None:
    """What ``personas worker`` needs before it opens anything (see :func:`check_serve`)."""
    check_catch_up(catch_up)
    if not config.database_url:
        raise UsageProblem(
            "personas worker needs PERSONAS_DATABASE_URL (PostgreSQL holds the shared queue); on one machine "
            "without it, `personas serve` runs the work itself"
        )
    require("personas worker", *POSTGRES, *SCHEDULES, *(METRICS if metrics_port else ()))
