"""Shared sandbox fixtures: the sandbox served on a real local port, in-process or as a subprocess.

``serve(app)`` runs any ASGI app under uvicorn in a background thread, on a socket bound to a free
port of 127.0.0.1 before the server starts (no race for the port), and stops it on exit::

    with serve(Sandbox(demo_data=False).app) as base_url:
        KlaviyoClient(api_key=DEMO_KEY, base_url=base_url).call("get_lists")

``on_port(app)`` does the same on one server shared by the whole test run (started on first use),
which forwards to the app mounted at the moment: a fresh sandbox per test without a server start
each time. ``SandboxProcess`` runs ``personas sandbox serve`` as a child process (what a user runs)
and reads its banner. The contract suite (``tests/contract``) and the OAuth tests use ``on_port``.

The domain suites share four fixtures: ``clock`` (a module overrides it to start elsewhere), ``sb``
(an empty sandbox on that clock, limits off, responses validated against the spec), ``client`` (our
client on it, never waiting on its own buckets) and ``raw`` (plain httpx with the demo key). A test
that also asks for ``added_to_list`` gets an ``sb`` with one more domain, a hook recording every
``profile_added_to_list``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import DEFAULT_DOMAINS, DEMO_KEY, Domain, Sandbox, serve_app
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from tests.ports import free_port  # one picker for every server a test starts

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
HEADERS = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free local port in a background thread; yields its base URL."""
    with serve_app(app, lifespan="off", start_timeout=START_TIMEOUT) as url:
        yield url


class _Mount:
    """An ASGI app that forwards every request to the app mounted at the moment."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.app
        if app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"no sandbox mounted"})
            return
        await app(scope, receive, send)


_mount = _Mount()
_mount_lock = threading.Lock()
_shared_url: str | None = None
_shared_server: contextlib.ExitStack | None = None


@contextlib.contextmanager
def on_port(app: Any) -> Iterator[str]:
    """Serve ``app`` on this process's shared local server (started once, ~0.2 s saved per test).

    One app at a time: the server forwards to ``app`` until the block ends. Yields the base URL.
    """
    global _shared_url, _shared_server
    with _mount_lock:
        if _shared_url is None:
            _shared_server = contextlib.ExitStack()
            _shared_url = _shared_server.enter_context(serve(_mount))
        _mount.app = app
        try:
            yield _shared_url
        finally:
            _mount.app = None


class SandboxProcess:
    """``personas sandbox serve --port N ...`` as a child process; ``banner`` is what it printed so far.

    Example::

        with SandboxProcess("--seed", "7") as proc:
            httpx.get(proc.base_url + "/sandbox")
    """

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = ["--port", str(self.port), *args]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def banner(self) -> str:
        return "".join(self._lines)

    @property
    def bound(self) -> bool:
        """Whether it has said it serves on its port, which it does only once it holds the port: the
        port was free when picked, and another worker's server may take it before this one binds it
        (then this one exits, and a probe of the port alone was answered by the other, its limits on)."""
        return any(line.startswith("Klaviyo sandbox (revision") and line.rstrip().endswith(f":{self.port}")
                   for line in list(self._lines))

    def start(self) -> SandboxProcess:
        """Start the process (returns at once; ``wait_ready`` waits for it to answer)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLAVIYO_")}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "personas.cli", "sandbox", "serve", *self.args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self._lines.extend(iter(stdout.readline, "")), daemon=True)
        self._reader.start()
        return self

    def wait_ready(self) -> SandboxProcess:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`personas sandbox serve` exited with {self.proc.returncode}:\n{self.banner}")
            if not self.bound:  # until then, what answers on the port may be another test's server
                time.sleep(0.05)
                continue
            try:
                if httpx.get(self.base_url + "/sandbox", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"`personas sandbox serve` did not answer on {self.base_url}:\n{self.banner}")

    def interrupt(self) -> None:
        """Ask it to stop, as Ctrl-C would (SIGINT lets uvicorn shut down and the sandbox close its state)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Interrupt it and wait until it has stopped."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.interrupt()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> SandboxProcess:
        if self.proc is None:
            self.start()
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str]]:
    """An empty sandbox (limits off, manual clock) on a local port: ``(sandbox, base_url)``."""
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(), validate_responses=True)
    with on_port(sb.app) as base_url:
        yield sb, base_url
    sb.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sb(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[Sandbox]:
    domains = DEFAULT_DOMAINS
    if "added_to_list" in request.fixturenames:
        domains = (*DEFAULT_DOMAINS, _recorder(request.getfixturevalue("added_to_list")))
    sandbox = Sandbox(domains=domains, validate_responses=True, demo_data=False, rate_limit_factor=None, clock=clock)
    yield sandbox
    sandbox.close()


@pytest.fixture
def client(sb: Sandbox) -> KlaviyoClient:
    return sb.client(rate_limiter=RateLimiter(factor=None))  # the sandbox's limits are off too; never wait


@pytest.fixture
def raw(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as http:
        yield http


@pytest.fixture
def added_to_list() -> list[tuple[str, str]]:
    """(list id, profile id) for every ``profile_added_to_list`` announced during the test (``sb`` records them)."""
    return []


def _recorder(seen: list[tuple[str, str]]) -> Domain:
    """A domain whose only hook appends ``(list id, profile id)`` to ``seen``."""

    def record(_svc: Any, payload: dict[str, Any]) -> None:
        seen.append((payload["list"].id, payload["profile"].id))

    return Domain("added_to_list_recorder", hooks={"profile_added_to_list": (record,)})
