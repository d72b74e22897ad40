"""The runtime's connection rules: which connection a persona runs on, its effective scopes, the
load-time check, audit context, and a dead connection stopping its persona (and only that one).

Klaviyo is the sandbox on a real port; connections are made with the runtime's own login flows,
OAuth through a real loopback listener and the sandbox's consent page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ConnectionUnusableError, ToolkitUsageError
from klaviyo_toolkit.tools import Sent
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.runtime import build_context, run_persona
from personas.runtime.auth import login_with_key, login_with_oauth, revoke_connection
from personas.runtime.connections import open_store
from personas.runtime.loader import BUILTIN_DIR
from tests.oauth_consent import consent
from tests.sandbox.conftest import on_port

REPORTER_SCOPES = "accounts:read campaigns:read metrics:read"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(rate_limit_factor=None)
    yield sandbox
    sandbox.close()


@pytest.fixture
def config(tmp_path: Path, sb: Sandbox) -> Iterator[Config]:
    with on_port(sb.app) as base_url:
        yield Config(home=tmp_path / "home", klaviyo_base_url=base_url, client_id="sbx-client",
                     client_secret="sbx-secret")  # fmt: skip


def persona_file(config: Config, name: str, base: str, **changes: object) -> str:
    """A persona of the user's: a shipped one under another name, with ``changes`` (e.g. connection)."""
    data = yaml.safe_load((BUILTIN_DIR / f"{base}.yaml").read_text())
    data.update(name=name, **changes)
    folder = config.home / "personas"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return name


def oauth_login(config: Config, name: str, scopes: str) -> None:
    """``login_with_oauth`` with the person in a browser: consent page, then the redirect to our listener."""
    done: list[httpx.Response] = []

    def browser(url: str) -> None:
        def approve() -> None:
            with httpx.Client() as b:
                answer = consent(b, url)
                done.append(b.get(answer.headers["location"]))

        threading.Thread(target=approve, daemon=True).start()

    login_with_oauth(config, name, scopes, show_url=browser, timeout=30)
    assert done and done[0].status_code == 200


def test_a_persona_binds_to_its_connection_and_the_audit_context_names_it(config: Config) -> None:
    login_with_key(config, "acme", DEMO_KEY)
    login_with_key(config, "other", DEMO_KEY)
    name = persona_file(config, "acme-reporter", "campaign-reporter", connection="acme")
    ctx = build_context(name, config=config, audit=False)
    assert (ctx.connection, ctx.account) == ("acme", "SbxPub")
    audit = ctx.audit_context()
    assert (audit.connection, audit.account) == ("acme", "SbxPub")
    assert isinstance(ctx.toolkit.run("get_accounts"), Sent)
    overridden = build_context(name, config=config, audit=False, connection="other")  # --connection wins
    assert overridden.connection == "other"
    from_env = build_context(name, config=config.replace(connection="other"), audit=False)
    assert from_env.connection == "acme", "the persona's own connection: comes before PERSONAS_CONNECTION"


def test_default_connection_env_key_and_no_credentials(config: Config) -> None:
    with pytest.raises(UsageProblem, match=r"No Klaviyo credentials: .* log in with `personas auth login`"):
        build_context("campaign-reporter", config=config, audit=False)
    assert not (config.home / "vault.sqlite").exists(), "looking for a default made no vault"
    login_with_key(config, None, DEMO_KEY)  # no name: "default"
    assert build_context("campaign-reporter", config=config, audit=False).connection == "default"
    env = build_context("campaign-reporter", config=config.replace(klaviyo_api_key=DEMO_KEY), audit=False)
    assert env.connection is None, "KLAVIYO_API_KEY, set on purpose, comes before the implicit default"


def test_scopes_the_graph_needs_but_the_connection_lacks_fail_at_load_naming_them(config: Config) -> None:
    login_with_key(config, "reader", DEMO_KEY, scopes=REPORTER_SCOPES)  # a key made with three scopes
    assert build_context("campaign-reporter", config=config, connection="reader", audit=False).connection
    with pytest.raises(UsageProblem) as err:
        build_context("segment-syncer", config=config, connection="reader", audit=False)
    message = str(err.value)
    assert "persona 'segment-syncer' needs scope(s) lists:read, lists:write" in message
    assert "connection 'reader' was not granted" in message
    assert "`personas auth login reader --scopes '" in message and "\n" not in message


def test_scopes_only_the_model_would_use_are_narrowed_with_a_warning(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    login_with_key(config, "reader", DEMO_KEY, scopes=REPORTER_SCOPES + " lists:write profiles:read")
    with caplog.at_level(logging.WARNING, logger="personas.connections"):
        ctx = build_context("klaviyo-assistant", config=config, connection="reader", audit=False)
    granted = {"accounts:read", "campaigns:read", "metrics:read", "lists:read", "lists:write", "profiles:read"}
    assert set(ctx.spec.scopes) == granted
    tools = {t.name for t in ctx.initial_tools()}
    assert {"get_lists", "create_list", "get_campaigns", "get_profiles"} <= tools
    assert not {"get_events", "get_flows", "add_profiles_to_list"} & tools  # not granted: not offered
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "runs without scope(s)" in warning and "events:read" in warning and "get_events" in warning
    assert getattr(ctx.toolkit.run("get_events"), "status", None) == "denied"  # refused before any HTTP
    # a tool refused for a scope the persona lists says to log in again, not to edit the persona
    with pytest.raises(ToolkitUsageError) as withheld:
        ctx.toolkit.tool("get_events")
    said = str(withheld.value)
    assert "persona 'klaviyo-assistant' lists them, but connection 'reader' was not granted them" in said
    assert "`personas auth login reader --scopes '" in said and "events:read" in said.split("--scopes")[1]
    assert "add them to scopes=" not in said
    with pytest.raises(ToolkitUsageError, match=r"add them to persona 'klaviyo-assistant'\'s scopes"):
        ctx.toolkit.tool("create_campaign")  # campaigns:write: the persona's own file lacks it


def test_a_persona_listing_only_write_is_told_to_list_read_not_to_log_in_again(config: Config) -> None:
    """Persona scopes are read exactly (deny by default); a connection's write grant covers read."""
    reads = {"get_profiles", "get_profile", "get_profiles_for_list"}
    data = yaml.safe_load((BUILTIN_DIR / "klaviyo-assistant.yaml").read_text())
    tools = {**data["tools"], "include": [t for t in data["tools"]["include"] if t not in reads]}
    persona_file(config, "writer-only", "klaviyo-assistant", scopes=[s for s in data["scopes"] if s != "profiles:read"],
                 tools=tools)  # fmt: skip
    # granted profiles:write and not events:read: the persona runs narrowed, with the runtime's scope_fix
    login_with_key(config, "writer", DEMO_KEY, scopes=REPORTER_SCOPES + " lists:read lists:write profiles:write")
    ctx = build_context("writer-only", config=config, connection="writer", audit=False)
    assert "profiles:read" not in ctx.spec.scopes and "profiles:write" in ctx.spec.scopes
    refused = ctx.toolkit.run("get_profiles")
    assert getattr(refused, "status", None) == "denied"  # listing only write does not allow a read
    with pytest.raises(ToolkitUsageError) as unlisted:
        ctx.toolkit.tool("get_profiles")
    said = str(unlisted.value)
    assert "add them to persona 'writer-only'\'s scopes" in said and "log in again" not in said
    # the other way round: a persona listing read, on a connection granted only write, reads
    persona_file(config, "reader-too", "klaviyo-assistant")
    ctx = build_context("reader-too", config=config, connection="writer", audit=False)
    assert "profiles:read" in ctx.spec.scopes and isinstance(ctx.toolkit.run("get_profiles"), Sent)
    with pytest.raises(ToolkitUsageError, match="lists them, but connection 'writer' was not granted them"):
        ctx.toolkit.tool("get_events")


def test_a_revoked_connection_stops_its_running_persona_at_the_next_call_and_only_it(config: Config) -> None:
    login_with_key(config, "acme", DEMO_KEY)
    login_with_key(config, "other", DEMO_KEY)
    running = build_context("campaign-reporter", config=config, connection="acme", audit=False)
    neighbour = build_context("campaign-reporter", config=config, connection="other", audit=False)
    assert isinstance(running.toolkit.run("get_accounts"), Sent)
    done = revoke_connection(config, "acme")
    assert done.changed
    with pytest.raises(ConnectionUnusableError, match="connection 'acme' was revoked") as err:
        run_persona("campaign-reporter", {}, context=running)  # graphs catch KlaviyoError; this goes through
    assert "`personas auth login acme`" in str(err.value)
    result = run_persona("campaign-reporter", {}, context=neighbour)
    assert result.state["account_id"] == "SbxPub" and result.state["reports"]  # the other persona ran to the end
    with pytest.raises(ConnectionUnusableError, match="was revoked"):
        build_context("campaign-reporter", config=config, connection="acme", audit=False)


def test_unknown_connection_lists_the_stored_ones(config: Config) -> None:
    login_with_key(config, "acme", DEMO_KEY)
    with pytest.raises(ToolkitUsageError, match=r"no connection named 'acmee' \(stored: acme\); log in with"):
        build_context("campaign-reporter", config=config, connection="acmee", audit=False)


def test_oauth_login_runs_personas_and_a_failed_refresh_says_needs_reauth(config: Config, sb: Sandbox) -> None:
    oauth_login(config, "shop", REPORTER_SCOPES)
    conn = open_store(config).get("shop")
    assert conn.kind == "oauth" and conn.account and conn.account.id == "SbxPub"
    assert set(conn.scopes) == set(REPORTER_SCOPES.split())
    ctx = build_context("campaign-reporter", config=config, connection="shop", audit=False)
    assert isinstance(ctx.toolkit.run("get_accounts"), Sent)

    for info in sb.store.mutable("oauth_refresh", dict).values():
        info["active"] = False  # the refresh token dies at Klaviyo (app uninstalled, or it expired)
    later = ManualClock(start=time.time() + 2 * 3600)  # the access token has expired by then
    stale = build_context("campaign-reporter", config=config, connection="shop", audit=False, clock=later)
    with pytest.raises(ConnectionUnusableError) as err:
        run_persona("campaign-reporter", {}, context=stale)
    assert "connection 'shop' needs re-auth: Klaviyo rejected its refresh token" in str(err.value)
    assert str(err.value).endswith("log in again with `personas auth login shop --oauth`")
    assert open_store(config).get("shop").status == "needs_reauth"
