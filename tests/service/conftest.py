"""Fixtures for the service tests: a state folder, an in-process sandbox whose webhook deliveries reach
the service's real Starlette app (over ASGI, no socket), and a PostgreSQL when one is given.

PostgreSQL tests read ``PERSONAS_TEST_DATABASE_URL`` (``.ci/run`` starts one; by hand:
``eval "$(scripts/postgres.sh start)"``). Without it they fail, saying so: they are part of the suite.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from klaviyo_sandbox import DEFAULT_DOMAINS, Sandbox
from klaviyo_sandbox import serve_app as sandbox_serve_app
from klaviyo_sandbox import with_webhook_sender as with_sender
from personas.kernel.config import Config
from tests.ports import free_port as free_port  # the tests here import it from this conftest

SECRET = "whsec-test-0123456789abcdef"
HOOK_URL = "http://127.0.0.1:9/webhooks/klaviyo"
FORM_TOPIC = "event:klaviyo.form_submitted_by_profile"


class AppSender:
    """The sandbox's webhook sender, posting to an ASGI app in-process (Starlette's TestClient)."""

    def __init__(self) -> None:
        self.client: Any = None
        self.answers: list[int] = []
        self.sent: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        assert self.client is not None, "no app to deliver to yet"
        self.sent.append((headers, body))
        status = int(self.client.post("/webhooks/klaviyo", content=body, headers=headers).status_code)
        self.answers.append(status)
        return status


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(home=tmp_path / "home", webhook_secret=SECRET)


@pytest.fixture
def sender() -> AppSender:
    return AppSender()


@pytest.fixture
def sandbox(sender: AppSender) -> Iterator[Sandbox]:
    sb = Sandbox(seed=7, domains=with_sender(DEFAULT_DOMAINS, sender))
    yield sb
    sb.close()


def register_webhook(sb: Sandbox, url: str = HOOK_URL, secret: str = SECRET) -> str:
    """Subscribe ``url`` to form submissions in the sandbox, through its API (as a Klaviyo admin would)."""
    found = sb.client().call(
        "create_webhook", name="personas", endpoint_url=url, secret_key=secret, webhook_topic_ids=[FORM_TOPIC]
    )
    return str(found.data["id"])


def postgres_url() -> str:
    """A fresh database on the test PostgreSQL (one per test, dropped by the caller's fixture)."""
    base = os.environ.get("PERSONAS_TEST_DATABASE_URL")
    if not base:
        pytest.fail(
            "PERSONAS_TEST_DATABASE_URL is not set: these tests need a PostgreSQL. Start a throwaway one with "
            '`eval "$(scripts/postgres.sh start)"` (CI does this in .ci/run), then run the tests again.'
        )
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    base = os.environ["PERSONAS_TEST_DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = postgres_url()
    yield url
    drop_database(url)


@contextlib.contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port in a thread (lifespan on); yields its URL."""
    with sandbox_serve_app(app, port=port or 0) as url:
        yield url


def worker_env(home: Path, database_url: str, klaviyo_url: str) -> dict[str, str]:
    """The environment of a `personas worker` subprocess: the served sandbox, PostgreSQL, no model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_"))}
    env.update(
        PERSONAS_HOME=str(home),
        PERSONAS_DATABASE_URL=database_url,
        KLAVIYO_BASE_URL=klaviyo_url,
        KLAVIYO_API_KEY="pk_sandbox_demo",
        KLAVIYO_WEBHOOK_SECRET=SECRET,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env
