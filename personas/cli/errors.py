"""One line per error: what went wrong and what to do, with the exit code (shared by every command and the REPL)."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from klaviyo_toolkit.state_files import StateFile, StateFileError
from personas.kernel.errors import UsageProblem
from personas.kernel.state_files import ACCEPT_LOSS, STATE_FILES, SYNC_PLAN

from .common import config

__all__ = ["STATE_FILES", "UsageProblem", "error_line", "home_line", "state_file_line"]


def _base_url(exc: BaseException) -> str:
    """The Klaviyo base URL a failed call went to (its request's, else the configured one)."""
    import httpx

    cause = exc.__cause__
    try:
        request = cause.request if isinstance(cause, httpx.HTTPError) else None
    except RuntimeError:  # an httpx error raised without a request
        request = None
    if request is not None:
        return f"{request.url.scheme}://{request.url.netloc.decode()}"
    return config().klaviyo_base_url


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """What went wrong and what to do, in one line, with the exit code; None for an unexpected error.

    Shared by the commands and the REPL, so an error reads the same everywhere.
    """
    from klaviyo_toolkit.errors import (
        AuthenticationError,
        ConnectionUnusableError,
        InvalidArgumentError,
        KlaviyoAPIError,
        PermissionDeniedError,
        RateLimitError,
        RateLimitWaitError,
        ScopeDeniedError,
        ServerError,
        ToolkitUsageError,
        TransportError,
    )
    # A CassetteError exists only once its module is loaded; importing it here would load LangChain
    # for every error a light command reports (a wrong --persona of `personas runs`, say).
    cassette = sys.modules.get("personas.kernel.cassette")
    cassette_errors: tuple[type[BaseException], ...] = (cassette.CassetteError,) if cassette is not None else ()

    cause = getattr(exc, "cause", None)  # a state file's error, when the folder is what is wrong
    if isinstance(cause, OSError) and (said := folder_line(cause)) is not None:
        return said
    if (said := state_file_line(exc)) is not None:
        return said
    if (said := home_line(exc)) is not None:
        return said
    if isinstance(exc, (UsageProblem, ToolkitUsageError, InvalidArgumentError, ConnectionUnusableError)):
        return str(exc), int(getattr(exc, "exit_code", 2))
    store = sys.modules.get("klaviyo_sandbox._store")  # loaded only by a command that opened a sandbox
    if store is not None and isinstance(exc, store.StateInUse):
        return f"{exc}; nothing was started", 2
    operation = getattr(exc, "operation_id", None)
    op = f" ({operation})" if operation else ""
    if getattr(exc, "maybe_applied", False):  # not "try again": a write sent again could be applied twice
        return str(exc), 1  # the client's message says it may have been applied and to read it back first
    if isinstance(exc, TransportError):
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return f"cannot reach {_base_url(exc)}{op}: {why}; check KLAVIYO_BASE_URL and your network", 1
    if isinstance(exc, AuthenticationError) and str(operation or "").startswith("oauth."):
        return (
            f"Klaviyo's OAuth token endpoint refused this app's client credentials (401){op}: "
            f"{exc.detail or exc.code or exc.title or 'invalid_client'}; check KLAVIYO_CLIENT_ID and "
            "KLAVIYO_CLIENT_SECRET (the stored connection was left as it is)"
        ), 1
    if isinstance(exc, AuthenticationError):
        base = config().klaviyo_base_url
        where = f" (sent to KLAVIYO_BASE_URL={base})"
        return (
            f"Klaviyo rejected the API key (401){op}; check KLAVIYO_API_KEY{where}, or, on a stored connection, "
            "`personas auth status` (it now needs `personas auth login NAME`)"
        ), 1
    if isinstance(exc, PermissionDeniedError):
        return (
            f"Klaviyo refused the call (403){op}: {exc.detail or exc.title or 'missing scope'}; "
            "use a key with the scopes the persona lists (`personas list`)"
        ), 1
    if isinstance(exc, RateLimitError):
        wait = f"wait {exc.retry_after:.0f} s and " if exc.retry_after else ""
        return f"Klaviyo rate-limited the call (429){op}; {wait}try again", 1
    if isinstance(exc, ServerError):
        rid = f", request {exc.request_id}" if exc.request_id else ""
        return f"Klaviyo failed with HTTP {exc.status}{op}{rid}; try again later", 1
    if isinstance(exc, (KlaviyoAPIError, *cassette_errors, ScopeDeniedError, RateLimitWaitError)):
        # these messages say what happened and what to do already; a cassette that is missing or does not
        # load is the user's file to fix, before anything ran (exit_code 2, ``UnusableCassette``)
        return str(exc), int(getattr(exc, "exit_code", 1))
    return _model_error(exc)


def state_file_line(exc: BaseException) -> tuple[str, int] | None:
    """A state file's trouble in one line: its path, what is wrong, the fix; None for other errors.

    For an audit log that does not hold its anchored head, how to look and how to accept the loss; for
    a StateFileError, or a SQLite error any code met on a file of ``$PERSONAS_HOME`` (found from the
    connection it was raised on), the file's :data:`STATE_FILES` entry says it.
    """
    from klaviyo_toolkit.audit_head import AuditHeadError

    if isinstance(exc, AuditHeadError):
        return (
            f"nothing was written to the audit log {exc.log}: {exc.problem.reason}. Appending would anchor the "
            "head over this and hide it, so every run is refused and the evidence left as it is. See it with "
            "`personas audit verify`; restore the log (or its head record) from a backup, or, to go on without "
            f"the missing rows, accept the loss explicitly: {ACCEPT_LOSS} (a row records it)"
        ), 1
    if isinstance(exc, StateFileError):
        known = _state_file(exc.path)
        again = known.error(exc.path, exc.cause) if known is not None and exc.cause is not None else None
        return str(again or exc), 1
    if not isinstance(exc, sqlite3.Error):
        return None
    path = _database_of(exc.__traceback__)
    if path is None:
        return None
    said = (_state_file(path) or StateFile("the SQLite file", if_moved="what it holds is lost")).error(path, exc)
    return (str(said), 1) if said is not None else None


def home_line(exc: BaseException) -> tuple[str, int] | None:
    """An OSError on the state folder (``PERSONAS_HOME``) or a file in it, said with the variable and
    the fix; None for any other error.

    Making the folder or its first files fails in Python's words (``FileExistsError``, ``Permission
    denied: '.../vault.key.tmp'``), which name neither PERSONAS_HOME nor what to do; a known state
    file's trouble is said by its :data:`STATE_FILES` entry, as for SQLite's errors.
    """
    if not isinstance(exc, OSError) or exc.filename is None or isinstance(exc.filename, int):
        return None
    home = Path(os.path.abspath(config().home))
    path = Path(os.path.abspath(os.fsdecode(exc.filename)))
    inside = path == home or home in path.parents
    if not inside and path not in home.parents:
        return None
    var = f"PERSONAS_HOME={home}"
    fix = "point PERSONAS_HOME at a folder this user may read and write (it is made if missing)"
    if (said := folder_line(exc)) is not None:
        return said
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        known = _state_file(path) if path != home else None
        if known is not None and (said := known.error(path, exc)) is not None:
            return str(said), 1
        return f"{var}: {path} cannot be used ({exc.strerror}){_owner(path)}; fix its permissions, or {fix}", 1
    if exc.errno == errno.ENOSPC:
        return f"{var}: the disk holding it is full ({path}); free space on it, or {fix}", 1
    return f"{var}: {path} cannot be used ({exc.strerror or exc}); check it and its permissions, or {fix}", 1


def folder_line(exc: OSError) -> tuple[str, int] | None:
    """The state folder itself unusable (a file in its place, or not this user's to read and write),
    said with PERSONAS_HOME and the fix; None when the folder is fine (a file in it may not be).
    Checked first for a state file's error too: the file is not what to fix then."""
    if exc.filename is None or isinstance(exc.filename, int):
        return None
    home = Path(os.path.abspath(config().home))
    path = Path(os.path.abspath(os.fsdecode(exc.filename)))
    inside = path == home or home in path.parents
    var = f"PERSONAS_HOME={home}"
    fix = "point PERSONAS_HOME at a folder this user may read and write (it is made if missing)"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and (path == home or (not inside and path in home.parents)):
        blocker = next((p for p in (home, *home.parents) if os.path.lexists(p) and not os.path.isdir(p)), path)
        return f"{var} cannot be used as the state folder: {blocker} is a file, not a folder; {fix}", 1
    denied = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and (inside or path in home.parents)
    if denied and os.path.isdir(home) and not os.access(home, os.R_OK | os.W_OK | os.X_OK):
        return (
            f"{var} cannot be used as the state folder: {exc.strerror} on {path}; this user "
            f"(uid {os.geteuid()}) may not read and write it{_owner(home)}. Give this user access (as its "
            f"owner: chmod u+rwx {home}), or {fix}"
        ), 1
    return None


def _owner(path: Path) -> str:
    """`` (owner uid U, mode M)`` of ``path``, or nothing when it cannot be looked at."""
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f" (owner uid {info.st_uid}, mode {info.st_mode & 0o777:o})"


def _state_file(path: Path) -> StateFile | None:
    if path.name in STATE_FILES:
        return STATE_FILES[path.name]
    return SYNC_PLAN if path.parent.name == "sync" and path.suffix == ".sqlite" else None


def _database_of(tb: TracebackType | None) -> Path | None:
    """The file of the SQLite connection an error was raised on: the innermost frame that holds one
    (as a local, a cursor's, or in an object's attributes, as a checkpointer holds it), asked for its
    main database's file. Only stored attributes are looked at: no property of our own or others' is run."""
    frames: list[dict[str, Any]] = []
    while tb is not None:
        frames.append(tb.tb_frame.f_locals)
        tb = tb.tb_next
    for scope in reversed(frames):
        for value in scope.values():
            for candidate in _connections(value):
                try:
                    rows = candidate.execute("PRAGMA database_list").fetchall()
                except sqlite3.Error:
                    continue
                main = next((row[2] for row in rows if row[1] == "main"), "")
                if main:
                    return Path(main)
    return None


def _connections(value: Any) -> list[sqlite3.Connection]:
    if isinstance(value, sqlite3.Connection):
        return [value]
    if isinstance(value, sqlite3.Cursor):
        return [value.connection]
    try:
        attributes = vars(value)
    except TypeError:  # no __dict__
        return []
    return [v for v in attributes.values() if isinstance(v, sqlite3.Connection)]


def _model_error(exc: BaseException) -> tuple[str, int] | None:
    """The model endpoint failing (the openai client's errors, told apart by name: no import here).

    langchain-openai re-raises them as its own subclasses (``OpenAIConnectionError`` is an
    ``openai.APIConnectionError``), so the nearest class of the openai package is the one named."""
    known = next((c for c in type(exc).__mro__ if c.__module__.split(".")[0] == "openai"), None)
    if known is None:
        return None
    from klaviyo_toolkit.redact import redact_text

    name = known.__name__
    where = f"the model at {config().openai_base}"
    status = getattr(exc, "status_code", None)
    detail = redact_text((str(exc).strip().splitlines() or [""])[0])[:200]
    if name in ("APIConnectionError", "APITimeoutError"):
        return f"cannot reach {where} ({detail}); check OPENAI_BASE_URL and that the server is up", 1
    if status == 401:
        return f"{where} rejected OPENAI_API_KEY (401: {detail}); check the key", 1
    if status == 404:
        return f"{where} has no such model or path (404: {detail}); check PERSONAS_MODEL and OPENAI_BASE_URL", 1
    if status == 429:
        return f"{where} is rate-limiting or out of quota (429: {detail}); wait, or check the account", 1
    return f"{where} failed ({name}{f' {status}' if status else ''}: {detail}); try again, or check its logs", 1
