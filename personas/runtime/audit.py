"""The audit log a persona's runs write and the anchor that keeps its key and head.

Apart from :mod:`personas.runtime.context`, so that reading the log (``personas audit``) opens it
without importing what running a persona needs (LangChain, LangGraph): the context re-exports both.
A run gets :func:`audit_log`, which refuses (before any call is made) a log that does not hold its
anchored head, and says in a warning when the log's chain does not verify (a row edited, deleted or
swapped below the head: appending cannot hide that, so the run goes on, but not unawares); reading
gets :func:`read_audit_log`, which writes nothing, so a log in a folder this user may not write can
still be shown, exported and verified.
"""

from __future__ import annotations

import logging
import threading

from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.audit_anchor import FileAnchor, VaultAnchor
from personas.kernel.config import Config

__all__ = [
    "another_key",
    "audit_anchor",
    "audit_log",
    "forget_audit_logs",
    "read_audit_log",
    "writable_audit_log",
]

_AUDIT_LOGS: dict[str, AuditLog] = {}
_AUDIT_LOGS_LOCK = threading.Lock()
#: Rows a run checks as it opens the log (the newest; about 0.5 s at most).
RUN_CHECK_ROWS = 50_000
#: Logs whose chain this process has verified (once each: a worker's runs share the check).
_VERIFIED: set[str] = set()
log = logging.getLogger(__name__)


def audit_anchor(config: Config) -> VaultAnchor:
    """Where the audit log's HMAC key and head live: encrypted in the vault (a key kept in
    ``<home>/keys`` by an earlier version is moved into it)."""
    from klaviyo_toolkit.vault import Vault

    return VaultAnchor(Vault(config.path("vault.sqlite")), adopt=FileAnchor(config.home / "keys"))


def audit_log(config: Config) -> AuditLog:
    """The audit log a run writes, anchored: in PostgreSQL when the config has a database URL (shared
    by every worker), else the state folder's SQLite file; one AuditLog (one connection) per log per
    process.

    Raises:
        AuditHeadError: the log does not hold its anchored head (rows cut, an older copy put back,
            the head record damaged): checked on every call, so a run stops before it acts unrecorded.
    """
    audit = writable_audit_log(config)
    audit.check_appendable()
    _warn_if_broken(audit, config.database_url or str(config.path("audit.sqlite")))
    return audit


def _warn_if_broken(audit: AuditLog, key: str) -> None:
    """Verify the chain's newest :data:`RUN_CHECK_ROWS` rows the first time this process appends to
    the log; a break is said in a warning that names the log, the row and what is wrong (the run goes
    on: its rows cannot hide it). Older rows are `personas audit verify`'s: checking every row at every
    run would cost 11 us a row (11 s a run at a million rows)."""
    with _AUDIT_LOGS_LOCK:
        if key in _VERIFIED:
            return
        _VERIFIED.add(key)
    report = audit.verify_recent(RUN_CHECK_ROWS)
    if not report.ok:
        where = f"row {report.broken_at}: " if report.broken_at else ""
        log.warning(
            "warning: the audit log %s does not verify: %s%s. It was changed outside personas; this run's "
            "calls are recorded after it and the break stays where it is. See it with `personas audit verify`, "
            "and restore the log from a backup if the change was not yours",
            audit._where, where, report.reason,
        )


def another_key(audit: AuditLog) -> str | None:
    """Why accepting a loss cannot help ``audit`` (``chained_under_another_key``: the log's key lives in the
    vault, and a vault replaced or made anew keeps another), with what does; None when it can."""
    from klaviyo_toolkit.audit_head import chained_under_another_key

    if not chained_under_another_key(audit):
        return None
    vault = getattr(audit.anchor, "vault", None)
    where = f" the vault {vault.path}" if vault is not None else " its anchor"
    return (
        f"neither the first nor the newest row of the audit log {audit.path or 'in PostgreSQL'} verifies with the "
        f"key{where} "
        "keeps: the log was chained under another key (that vault was replaced, or made anew after its key was "
        "lost) or rewritten whole, and accepting a loss would not make it verify again. Restore the vault (with "
        "its vault key) the log was written with; or, to begin a new log, move the log and its head record "
        f"({getattr(audit.anchor, 'head_path', 'beside the vault')}) aside: its rows stay readable there"
    )


def writable_audit_log(config: Config) -> AuditLog:
    """The audit log as :func:`audit_log` opens it, without the check (to accept a loss, or verify)."""
    key = config.database_url or str(config.path("audit.sqlite"))
    with _AUDIT_LOGS_LOCK:  # runs starting together on threads (a worker) share one log, one lock
        if key not in _AUDIT_LOGS:
            if config.database_url:
                from klaviyo_toolkit.audit_postgres import PostgresAuditLog

                _AUDIT_LOGS[key] = PostgresAuditLog(config.database_url, anchor=audit_anchor(config))
            else:
                _AUDIT_LOGS[key] = AuditLog(config.path("audit.sqlite"), anchor=audit_anchor(config))
        return _AUDIT_LOGS[key]


def forget_audit_logs() -> None:
    """Close every audit log this process keeps open (one per state folder) and forget it: for a
    process done with its state folders (tests make one per test; each log holds four files open)."""
    with _AUDIT_LOGS_LOCK:
        for log_ in _AUDIT_LOGS.values():
            log_.close()
            vault = getattr(log_.anchor, "vault", None)  # audit_anchor's own connection to the vault
            if vault is not None:
                vault.close()
        _AUDIT_LOGS.clear()
        _VERIFIED.clear()


def read_audit_log(config: Config) -> AuditLog | None:
    """The audit log to read (rows, export, verify), opened without writing anything; None when the
    state folder has no log yet (nothing is made)."""
    if config.database_url:
        return writable_audit_log(config)
    path = config.home / "audit.sqlite"
    if not path.is_file():
        return None
    return AuditLog(path, anchor=audit_anchor(config), read_only=True)
