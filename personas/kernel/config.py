"""The one settings object: where state lives, which Klaviyo and which model, resolved once.

The CLI (or ``build_context`` when code gives none) reads the environment once into a
:class:`Config` and passes it down; nothing below reads ``PERSONAS_HOME`` or the model variables
again, so every part of one run agrees on them. Copy one with ``replace()`` to change it.

Example::

    config = Config.from_env()                     # PERSONAS_HOME, KLAVIYO_*, OPENAI_*, ...
    config = config.replace(home=Path("/tmp/p"))   # a new value; the old one is unchanged
    config.ensure_home()                           # created 0700
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from klaviyo_toolkit.auth import pasted_around

__all__ = ["DEFAULT_KLAVIYO_BASE_URL", "DEFAULT_OPENAI_BASE_URL", "Config", "without_credentials"]


def without_credentials(url: str) -> str:
    """``url`` without a user or password in it (``https://u:p@host/v1`` -> ``https://host/v1``)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

DEFAULT_KLAVIYO_BASE_URL = "https://a.klaviyo.com"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _url(value: str | None, name: str, schemes: tuple[str, ...], example: str) -> str | None:
    """A URL from the environment, checked once here: a malformed one is a one-line error naming
    the variable and its form, never a traceback later (the value is not echoed: it may hold a
    password)."""
    text = _clean(value)
    if text is None:
        return None
    from .errors import UsageProblem

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:
        raise UsageProblem(f"{name} is not a valid URL ({_refusal(exc)}); give it as {example}, or unset it") from None
    socket = parts.scheme.lower().startswith("postgres")  # postgresql:///db?host=/run/postgresql has no host
    if parts.scheme.lower() not in schemes or not (parts.netloc or socket) or any(c.isspace() for c in text):
        raise UsageProblem(
            f"{name} is not a valid URL: it needs a scheme ({' or '.join(schemes)}), a host and no spaces; "
            f"give it as {example}, or unset it"
        )
    return text


def _refusal(exc: ValueError) -> str:
    """Why ``urlsplit`` refused a URL, without the part of it the message quotes: that part is the
    netloc or the "port", and either may be a password (``postgresql://app:s3cret/db``, the ``@host``
    left out, reads ``s3cret`` as the port)."""
    text = str(exc)
    if text.startswith("Port could not be cast"):
        return "what follows the last ':' before the path is not a port number: a password needs user:password@host"
    if "NFKC" in text:
        return "its user, password or host holds a character that Unicode reads as / ? # @ or :; percent-encode it"
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)


def _key(value: str | None, name: str) -> str | None:
    """A key from the environment: printable ASCII, not in quotes nor after ``NAME=``, or a one-line
    error naming the variable and the fix (where the stray character sits; never the key itself)."""
    text = _clean(value)
    if text is None:
        return None
    slip = pasted_around(text)
    if slip:
        from .errors import UsageProblem

        raise UsageProblem(f"{name} {slip}")
    for position, char in enumerate(text, 1):
        if not (char.isascii() and char.isprintable()) or char.isspace():
            from .errors import UsageProblem

            raise UsageProblem(
                f"{name} holds a character no key has (U+{ord(char):04X} at position {position} of "
                f"{len(text)}): copy the key again from where it was issued, without spaces or quotes"
            )
    return text


def _seconds(value: str | None, name: str, default: float) -> float:
    """A positive number of seconds from the environment; a bad one is a one-line error naming it."""
    text = _clean(value)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        from .errors import UsageProblem

        raise UsageProblem(f"{name}={text!r}: give a number of seconds above 0 (e.g. {name}=600), or unset it "
                           f"for the default {default:g}")
    return seconds


@dataclass(frozen=True)
class Config:
    """Everything the environment decides for a run (secrets are kept out of ``repr``).

    Attributes:
        home: state folder (``PERSONAS_HOME``, default ``~/.personas``): checkpoints, audit, vault, reports.
        klaviyo_base_url / klaviyo_api_key: ``KLAVIYO_BASE_URL`` and ``KLAVIYO_API_KEY``.
        openai_api_key / openai_base_url / model: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and
            ``PERSONAS_MODEL`` (a model name that overrides the persona's).
        model_timeout: seconds to wait for one model answer (``PERSONAS_MODEL_TIMEOUT``, default 60;
            a small local model on a busy CPU can need several minutes for a long answer).
        user: who runs it, for the audit log (``PERSONAS_USER``, else ``USER``).
        connection: the stored connection to use (``PERSONAS_CONNECTION`` or ``PERSONAS_CREDENTIAL``).
        database_url: PostgreSQL for scale-out (``PERSONAS_DATABASE_URL``); SQLite files when None.
        webhook_secret: ``KLAVIYO_WEBHOOK_SECRET``.
        webhook_secret_previous: ``KLAVIYO_WEBHOOK_SECRET_PREVIOUS``: the secret being rotated out, which
            also signs until Klaviyo signs every delivery with the new one (then unset it).
        vault_key: ``PERSONAS_VAULT_KEY`` (Fernet keys, newest first).
        client_id / client_secret: OAuth app (``KLAVIYO_CLIENT_ID`` / ``KLAVIYO_CLIENT_SECRET``).
        debug: tracebacks on errors (``PERSONAS_DEBUG=1`` or ``--debug``).
    """

    home: Path
    klaviyo_base_url: str = DEFAULT_KLAVIYO_BASE_URL
    klaviyo_api_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    model: str | None = None
    model_timeout: float = 60.0
    user: str = "local"
    connection: str | None = None
    database_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_previous: str | None = field(default=None, repr=False)
    vault_key: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    debug: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the environment once (``os.environ`` unless given).

        The same values make the same (immutable) Config: a process that builds a context per run
        checks and parses them once, and an environment changed between runs (another
        ``PERSONAS_HOME``, a new key) is read afresh, since every variable read is in the key."""
        env = os.environ if environ is None else environ
        # the default home (and a ``~`` in PERSONAS_HOME) comes from this process's HOME, whatever ``environ``
        values = tuple(sorted((name, value) for name, value in env.items() if _read_by_config(name)))
        return _from_values(cls, values, os.environ.get("HOME"))

    @classmethod
    def _parse(cls, env: Mapping[str, str | None]) -> Config:
        home = Path(_clean(env.get("PERSONAS_HOME")) or Path.home() / ".personas").expanduser()
        return cls(
            home=home,
            klaviyo_base_url=(
                _url(env.get("KLAVIYO_BASE_URL"), "KLAVIYO_BASE_URL", ("https", "http"),
                     "https://a.klaviyo.com (or http://127.0.0.1:8787 for a local sandbox)")
                or DEFAULT_KLAVIYO_BASE_URL
            ).rstrip("/"),
            klaviyo_api_key=_key(env.get("KLAVIYO_API_KEY"), "KLAVIYO_API_KEY"),
            openai_api_key=_key(env.get("OPENAI_API_KEY"), "OPENAI_API_KEY"),
            openai_base_url=_url(env.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL", ("https", "http"),
                                 "https://api.openai.com/v1 (or http://127.0.0.1:8080/v1 for a local server)"),
            model=_clean(env.get("PERSONAS_MODEL")),
            model_timeout=_seconds(env.get("PERSONAS_MODEL_TIMEOUT"), "PERSONAS_MODEL_TIMEOUT", 60.0),
            user=_clean(env.get("PERSONAS_USER")) or _clean(env.get("USER")) or "local",
            connection=_clean(env.get("PERSONAS_CONNECTION")) or _clean(env.get("PERSONAS_CREDENTIAL")),
            database_url=_url(env.get("PERSONAS_DATABASE_URL"), "PERSONAS_DATABASE_URL", ("postgresql", "postgres"),
                              "postgresql://user:password@localhost:5432/personas"),
            webhook_secret=_clean(env.get("KLAVIYO_WEBHOOK_SECRET")),
            webhook_secret_previous=_clean(env.get("KLAVIYO_WEBHOOK_SECRET_PREVIOUS")),
            vault_key=_clean(env.get("PERSONAS_VAULT_KEY")),
            client_id=_clean(env.get("KLAVIYO_CLIENT_ID")),
            client_secret=_clean(env.get("KLAVIYO_CLIENT_SECRET")),
            debug=env.get("PERSONAS_DEBUG") == "1",
        )

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def openai_base(self) -> str:
        """The model endpoint, for messages and provenance: never with credentials in it."""
        return without_credentials(self.openai_base_url or DEFAULT_OPENAI_BASE_URL)

    def secrets(self) -> list[str]:
        """Every secret this configuration holds (for redaction), credentials in URLs included."""
        found = [self.klaviyo_api_key, self.openai_api_key, self.client_secret, self.vault_key, self.webhook_secret,
                 self.webhook_secret_previous]
        for url in (self.openai_base_url, self.klaviyo_base_url, self.database_url):
            try:
                parts = urlsplit(url or "")
                found += [parts.password, parts.username if parts.password else None]
            except ValueError:  # a Config built in code, unchecked: the whole URL is the secret then
                found.append(url)
        if self.vault_key:
            found += [k.strip() for k in self.vault_key.split(",")]
        return [s for s in found if s]

    def ensure_home(self) -> Path:
        """The state folder, created owner-only (0700) if missing, tightened if looser."""
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            if self.home.stat().st_mode & 0o077:
                self.home.chmod(0o700)
        except OSError:  # not ours to change (a shared mount): leave it
            pass
        return self.home

    def path(self, *parts: str) -> Path:
        """A path under the state folder (the folder is created)."""
        return self.ensure_home().joinpath(*parts)


def _read_by_config(name: str) -> bool:
    """Whether :meth:`Config._parse` may read the variable ``name``: every one it reads is named
    ``PERSONAS_*``, ``KLAVIYO_*`` or ``OPENAI_*``, or is ``USER`` (a variable added later with one
    of those prefixes is in the cache's key without an edit here)."""
    return name.startswith(("PERSONAS_", "KLAVIYO_", "OPENAI_")) or name == "USER"


_CONFIGS: dict[tuple[object, ...], Config] = {}


def _from_values(cls: type[Config], values: tuple[tuple[str, str], ...], home: str | None) -> Config:
    """The Config of these environment values (the variables :func:`_read_by_config`) under this
    ``HOME``, kept for the next run (the newest 16); a value refused raises, and nothing is kept."""
    key = (cls, values, home)
    config = _CONFIGS.get(key)
    if config is None:
        config = _CONFIGS[key] = cls._parse(dict(values))
        while len(_CONFIGS) > 16:
            _CONFIGS.pop(next(iter(_CONFIGS)))
    return config
