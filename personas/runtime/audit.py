"""The audit log a persona's runs write and the anchor that keeps its key and head.

Apart from :mod:`personas.runtime.context`, so that reading the log (``personas audit``) opens it
without importing what running a persona needs (LangChain, LangGraph): the context re-exports both.
A run gets :func:`audit_log`, which refuses (before any call is made) a log that does not hold its
anchored head; reading gets :func:`read_audit_log`, which writes nothing, so a log in a folder this
user may not write can still be shown, exported and verified.
"""

from __future__ import annotations

import threading

from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.audit_anchor import FileAnchor, VaultAnchor
from personas.kernel.config import Config

__all__ = ["audit_anchor", "audit_log", "read_audit_log", "writable_audit_log"]

_AUDIT_LOGS: dict[str, AuditLog] = {}
_AUDIT_LOGS_LOCK = threading.Lock()


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
    log = writable_audit_log(config)
    log.check_appendable()
    return log


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


def read_audit_log(config: Config) -> AuditLog | None:
    """The audit log to read (rows, export, verify), opened without writing anything; None when the
    state folder has no log yet (nothing is made)."""
    if config.database_url:
        return writable_audit_log(config)
    path = config.home / "audit.sqlite"
    if not path.is_file():
        return None
    return AuditLog(path, anchor=audit_anchor(config), read_only=True)
