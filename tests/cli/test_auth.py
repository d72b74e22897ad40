"""``personas auth`` as a person uses it: the command in a real process, Klaviyo played by the sandbox
on a real port, the browser played by httpx on the sandbox's consent page and our loopback listener.

Every refusal is one line that names the fix in CLI terms and leaves the stored connections byte for
byte as they were; no secret reaches stdout, stderr or a file in plain text.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet, InvalidToken

from klaviyo_sandbox import DEMO_KEY, Faults, Sandbox
from tests.oauth_consent import consent
from tests.sandbox.conftest import on_port
from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, Terminal, child_env, free_port

APP = {"KLAVIYO_CLIENT_ID": "sbx-client", "KLAVIYO_CLIENT_SECRET": "sbx-secret"}
REPORTER = "accounts:read,campaigns:read,metrics:read"


@dataclass
class Setup:
    sb: Sandbox
    url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {"KLAVIYO_BASE_URL": self.url, **APP, **extra}

    def run(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return run_personas([str(PERSONAS), *args], env=child_env(self.home, **self.env(**env)), input=stdin,
                              capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip

    def status(self, **env: str) -> list[dict[str, object]]:
        done = self.run("auth", "status", "--json", **env)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def stored(self) -> bytes:
        return b"".join(p.read_bytes() for p in sorted(self.home.glob("vault.*")))

    def secrets(self) -> list[str]:
        """Every token the sandbox issued, and its demo key: none may show anywhere."""
        found = [DEMO_KEY]
        for table in ("oauth_access", "oauth_refresh"):
            found += list(self.sb.store.value(table, {}))
        return found


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    sb = Sandbox(rate_limit_factor=None)
    with on_port(sb.app) as url:
        yield Setup(sb, url, tmp_path / "home")
    sb.close()


class Login:
    """``personas auth login NAME --oauth ...`` running; ``url`` is the authorization URL it printed."""

    def __init__(self, setup: Setup, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(PERSONAS), "auth", "login", name, "--oauth", "--no-browser", "--timeout", "60", *args],
            env=child_env(setup.home, **setup.env()), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.printed: list[str] = []
        while True:
            line = self.lines.get(timeout=60)
            self.printed.append(line)
            if line.startswith("  http"):
                self.url = line.strip()
                break
        self.redirect_uri = parse_qs(urlsplit(self.url).query)["redirect_uri"][0]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def finish(self) -> tuple[int, str, str]:
        assert self.proc.stderr is not None
        code = self.proc.wait(timeout=60)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return code, "".join(self.printed + rest), self.proc.stderr.read()


def one_line_error(done: subprocess.CompletedProcess[str] | tuple[int, str, str]) -> str:
    stderr = done.stderr if isinstance(done, subprocess.CompletedProcess) else done[2]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "Vault." not in stderr and "OAuthClient" not in stderr
    return lines[0]


# -- a private key ----------------------------------------------------------------------------------


def test_login_asks_for_the_key_hidden_verifies_it_and_status_shows_the_account(
    setup: Setup, terminals: list[Terminal]
) -> None:
    term = Terminal(["auth", "login", "acme"], child_env(setup.home, **setup.env()))
    terminals.append(term)
    term.expect("Klaviyo private key (input hidden): ")
    term.say(DEMO_KEY)
    term.expect("logged in as 'acme'")
    assert term.wait() == 0
    assert DEMO_KEY not in term.transcript, "the key was echoed"
    assert "Northwind Outfitters (SbxPub), time zone America/New_York" in term.transcript

    (row,) = setup.status()
    assert row["name"] == "acme" and row["kind"] == "api_key" and row["health"] == "ok"
    assert row["account"] == {"id": "SbxPub", "name": "Northwind Outfitters", "timezone": "America/New_York"}
    assert row["scopes"] == ["*"] and row["base_url"] == setup.url
    table = setup.run("auth", "status")
    assert re.search(r"acme\s+api_key\s+Northwind Outfitters \(SbxPub\), America/New_York\s+all\s+-\s+-\s+ok",
                     table.stdout), table.stdout  # fmt: skip
    assert DEMO_KEY.encode() not in setup.stored() and DEMO_KEY not in table.stdout + json.dumps(row)
    if os.name == "posix":
        assert oct(setup.home.stat().st_mode & 0o777) == "0o700"
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in setup.home.glob("vault.*"))


@pytest.mark.parametrize(
    ("args", "env", "stdin", "code", "says"),
    [
        (["acme"], {"KLAVIYO_API_KEY": "hello"}, None, 2, r"not a Klaviyo private key.*`personas auth login acme`"),
        (["acme"], {}, "hello\n", 2, "not a Klaviyo private key"),
        (["acme", "--scopes", "campaign:read"], {"KLAVIYO_API_KEY": DEMO_KEY}, None, 2,
         r"'campaign:read' is not a Klaviyo scope; did you mean 'campaigns:read'\?"),
        (["acme"], {"KLAVIYO_API_KEY": "pk_" + "0a" * 17}, None, 2,
         r"Klaviyo rejected the key \(401 from .*`personas auth login acme` again"),
        (["acme"], {"KLAVIYO_API_KEY": DEMO_KEY, "KLAVIYO_BASE_URL": "http://127.0.0.1:{closed}"}, None, 1,
         r"cannot reach http://127.0.0.1:\d+ to verify the key .*check KLAVIYO_BASE_URL"),
        (["acme"], {"KLAVIYO_API_KEY": DEMO_KEY, "KLAVIYO_BASE_URL": "https://a.klaviyo.com"}, None, 2,
         "that is a sandbox key"),
        (["acme", "--oauth"], {}, None, 2, r"say which scopes to ask for, e\.g\. `personas auth login acme --oauth"),
        (["acme", "--oauth", "--scopes", "lists:read"], {"KLAVIYO_CLIENT_ID": ""}, None, 2,
         "set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET"),
        (["acme", "--oauth", "--scopes", "list:read"], {}, None, 2, "did you mean 'lists:read'"),
        (["no/slash"], {"KLAVIYO_API_KEY": DEMO_KEY}, None, 2, "not a usable connection name"),
        (["acme", "--scopes", ""], {"KLAVIYO_API_KEY": DEMO_KEY}, None, 2, r"--scopes is empty \(''\)"),
        (["acme", "--scopes", " , "], {"KLAVIYO_API_KEY": DEMO_KEY}, None, 2, r"leave --scopes out for a full-access"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix_and_stored_connections_stay_as_they_were(
    setup: Setup, args: list[str], env: dict[str, str], stdin: str | None, code: int, says: str
) -> None:
    assert setup.run("auth", "login", "acme", KLAVIYO_API_KEY=DEMO_KEY).returncode == 0
    before, stored = setup.status(), setup.stored()
    env = {k: v.format(closed=free_port()) for k, v in env.items()}
    done = setup.run("auth", "login", *args, stdin=stdin, **env)
    assert done.returncode == code, done.stderr
    line = one_line_error(done)
    assert re.search(says, line), line
    assert "nothing was stored" in line
    assert "hello" not in line and DEMO_KEY not in done.stdout.replace("KLAVIYO_API_KEY", "") + line
    assert setup.status() == before and setup.stored() == stored


WELL_SHAPED = "pk_" + "0a" * 17


@pytest.mark.parametrize(
    ("env", "stdin", "says"),
    [
        ({"KLAVIYO_API_KEY": f'"{WELL_SHAPED}"'}, None, "error: KLAVIYO_API_KEY came in quotes; remove the quotes"),
        ({}, f"'{WELL_SHAPED}'\n", "error: the key came in quotes; remove the quotes; nothing was stored"),
        ({}, f"KLAVIYO_API_KEY={WELL_SHAPED}\n",
         "error: the key starts with KLAVIYO_API_KEY=; paste only the key, without KLAVIYO_API_KEY=; nothing was"),
        ({"KLAVIYO_API_KEY": f"KLAVIYO_API_KEY={WELL_SHAPED}"}, None,
         "error: KLAVIYO_API_KEY starts with KLAVIYO_API_KEY=; paste only the key, without KLAVIYO_API_KEY="),
    ],
)
def test_a_key_pasted_in_quotes_or_with_its_name_is_refused_naming_that_fix(
    setup: Setup, env: dict[str, str], stdin: str | None, says: str
) -> None:
    done = setup.run("auth", "login", "t3", stdin=stdin, **env)
    assert done.returncode == 2
    line = one_line_error(done)
    assert line.startswith(says) and "***" not in line, line
    assert "0a0a" not in done.stdout + done.stderr, "the key is not echoed, not even masked"
    assert not (setup.home / "vault.sqlite").exists()


def test_a_key_with_fewer_scopes_must_say_which_and_runs_with_them_only(setup: Setup) -> None:
    key = setup.sb.create_key(["lists:read", "campaigns:read", "metrics:read"])  # no accounts:read
    refused = setup.run("auth", "login", "narrow", KLAVIYO_API_KEY=key)
    assert refused.returncode == 2 and "403: it lacks accounts:read" in one_line_error(refused)
    assert setup.status() == []
    done = setup.run("auth", "login", "narrow", "--scopes", "lists:read campaigns:read metrics:read",
                     KLAVIYO_API_KEY=key)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "an unknown account" in done.stdout and "may not read the account" in done.stdout
    (row,) = setup.status()
    assert row["account"] is None and row["scopes"] == ["lists:read", "campaigns:read", "metrics:read"]
    refused = setup.run("run", "campaign-reporter", "--input", "{}", "--connection", "narrow")
    assert refused.returncode == 2 and "needs scope(s) accounts:read" in one_line_error(refused)


def test_revoking_a_key_is_idempotent_and_says_what_it_did(setup: Setup) -> None:
    setup.run("auth", "login", "acme", KLAVIYO_API_KEY=DEMO_KEY)
    first = setup.run("auth", "revoke", "acme")
    assert first.returncode == 0 and "revoked 'acme': erased its private key here" in first.stdout
    assert "works at Klaviyo until you delete it there" in first.stdout
    again = setup.run("auth", "revoke", "acme")
    assert again.returncode == 0 and "'acme' was already revoked" in again.stdout and "nothing to do" in again.stdout
    (row,) = setup.status()
    assert row["health"] == "revoked" and row["fingerprint"] == ""
    unknown = setup.run("auth", "revoke", "nope")
    assert unknown.returncode == 2 and "no connection named 'nope' (stored: acme)" in one_line_error(unknown)
    removed = setup.run("auth", "remove", "acme")
    assert removed.returncode == 0 and setup.status() == []


def test_a_run_paused_on_a_connection_continues_with_the_command_it_prints_until_it_is_revoked(
    setup: Setup,
) -> None:
    """The printed continuation names the connection (without it another credential, or none, would
    be used); once the connection is revoked, the same command stops naming the login, and nothing
    of the key reaches the checkpoints."""
    import shlex

    setup.run("auth", "login", "acme", KLAVIYO_API_KEY=DEMO_KEY)
    sync = str(ROOT / "examples" / "sync-vip-mirror.json")
    first = setup.run("run", "segment-syncer", "--connection", "acme", "--input", sync, "--thread", "t1")
    assert first.returncode == 0, first.stderr
    hint = next(line for line in first.stderr.splitlines() if "Continue with:" in line)
    command = shlex.split(hint.split("Continue with: ", 1)[1].split("   (")[0])
    assert command[:2] == ["personas", "run"] and "--connection" in command, hint
    setup.run("auth", "revoke", "acme")
    after = setup.run(*command[1:])
    assert after.returncode != 0 and "connection 'acme' was revoked" in after.stderr
    assert "personas auth login acme" in after.stderr
    assert setup.sb.call_counts["remove_profiles_from_list"] == 0
    assert DEMO_KEY.encode() not in b"".join(p.read_bytes() for p in setup.home.glob("checkpoints.sqlite*"))


# -- OAuth ------------------------------------------------------------------------------------------


def test_oauth_login_end_to_end_through_the_consent_page(setup: Setup) -> None:
    login = Login(setup, "shop", "--scopes", "campaigns:read metrics:read")
    assert login.redirect_uri.startswith("http://127.0.0.1:") and "code_challenge_method=S256" in login.url
    with httpx.Client() as browser:
        answer = consent(browser, login.url)  # GET the page, press Allow
        assert answer.status_code == 302 and answer.headers["location"].startswith(login.redirect_uri)
        landed = browser.get(answer.headers["location"])  # the browser follows to our listener
    assert landed.status_code == 200 and "close this tab" in landed.text
    code, out, err = login.finish()
    assert code == 0, err
    assert "logged in as 'shop': OAuth grant for Northwind Outfitters (SbxPub)" in out

    (row,) = setup.status()
    assert row["kind"] == "oauth" and row["client_id"] == "sbx-client" and row["health"] == "ok"
    assert set(row["scopes"]) == {"campaigns:read", "metrics:read", "accounts:read"}  # type: ignore[arg-type]
    assert row["expires_at"] and row["account"]["id"] == "SbxPub"  # type: ignore[index]
    ran = setup.run("run", "campaign-reporter", "--input", "{}", "--connection", "shop")
    assert ran.returncode == 0, ran.stderr
    shown = out + err + json.dumps(row) + setup.run("auth", "status").stdout + ran.stdout + ran.stderr
    assert all(s not in shown for s in setup.secrets())
    assert all(s.encode() not in setup.stored() for s in setup.secrets())

    revoked = setup.run("auth", "revoke", "shop")
    assert revoked.returncode == 0, revoked.stderr
    assert "ended its OAuth grant at Klaviyo and erased its tokens here" in revoked.stdout
    assert not any(i["active"] for i in setup.sb.store.value("oauth_refresh", {}).values())
    assert "already revoked" in setup.run("auth", "revoke", "shop").stdout
    refused = setup.run("run", "campaign-reporter", "--input", "{}", "--connection", "shop")
    assert refused.returncode == 2
    assert "connection 'shop' was revoked" in one_line_error(refused)
    assert "`personas auth login shop --oauth`" in refused.stderr


def test_a_redirect_with_another_state_is_refused_and_nothing_is_stored(setup: Setup) -> None:
    setup.run("auth", "login", "acme", KLAVIYO_API_KEY=DEMO_KEY)
    before, stored = setup.status(), setup.stored()
    login = Login(setup, "acme", "--scopes", "lists:read")
    forged = httpx.get(f"{login.redirect_uri}?code=sbx_code_forged&state=not-the-one", timeout=10)
    assert forged.status_code == 400
    done = login.finish()
    assert done[0] == 2
    line = one_line_error(done)
    assert "state does not match this login" in line and "nothing was stored" in line
    assert "`personas auth login acme --oauth` again" in line
    assert setup.status() == before and setup.stored() == stored


def test_denying_at_the_consent_page_stores_nothing(setup: Setup) -> None:
    login = Login(setup, "shop", "--scopes", "lists:read")
    with httpx.Client() as browser:
        answer = consent(browser, login.url, approve=False)
        browser.get(answer.headers["location"])
    done = login.finish()
    assert done[0] == 2 and "access_denied" in one_line_error(done)
    assert setup.status() == []


def oauth_login(setup: Setup, name: str, scopes: str = "lists:read") -> tuple[int, str, str]:
    """``personas auth login NAME --oauth`` through the consent page, to the end."""
    login = Login(setup, name, "--scopes", scopes)
    with httpx.Client() as browser:
        browser.get(consent(browser, login.url).headers["location"])
    return login.finish()


def live_grants(setup: Setup) -> set[str]:
    """The grants the sandbox would still refresh (one of their refresh tokens is alive)."""
    return {i["grant"] for i in setup.sb.store.value("oauth_refresh", {}).values() if i["active"]}


def test_logging_in_again_revokes_the_previous_grant_at_klaviyo(setup: Setup) -> None:
    assert oauth_login(setup, "shop")[0] == 0
    (first,) = live_grants(setup)
    code, out, err = oauth_login(setup, "shop", "lists:read campaigns:read")
    assert code == 0, err
    (second,) = live_grants(setup)  # the first one was revoked: no orphaned grant left at Klaviyo
    assert second != first and "warning" not in err
    assert "(replaced the previous oauth)" in out and "note: the previous OAuth grant was revoked at Klaviyo" in out
    (row,) = setup.status()
    assert row["health"] == "ok" and row["previous_grants"] == 0


def test_an_old_grant_klaviyo_cannot_revoke_is_kept_and_the_printed_command_ends_it(setup: Setup) -> None:
    assert oauth_login(setup, "shop")[0] == 0
    (first,) = live_grants(setup)
    setup.sb.faults = Faults(error_rate=1.0, status=503, operations=["oauth.revoke"])  # Klaviyo's revoke is down
    code, out, err = oauth_login(setup, "shop")
    assert code == 0, err  # the new login stands
    assert "logged in as 'shop'" in out
    (warning,) = err.strip().splitlines()
    assert warning.startswith("warning: could not revoke the previous OAuth grant of 'shop' at Klaviyo (Klaviyo "
                              "answered 503"), warning  # fmt: skip
    assert "so it still works there" in warning and "run `personas auth revoke shop --previous` to try again" in warning
    assert len(live_grants(setup)) == 2 and first in live_grants(setup)
    (row,) = setup.status()
    assert row["previous_grants"] == 1 and row["health"] == "ok"
    table = setup.run("auth", "status").stdout
    assert "shop: 1 previous OAuth grant(s) still to be revoked at Klaviyo" in table
    assert "`personas auth revoke shop --previous`" in table
    still = setup.run("auth", "revoke", "shop", "--previous")
    assert still.returncode == 1 and "run `personas auth revoke shop --previous` again" in one_line_error(still)
    shown = out + err + table + still.stdout + still.stderr
    assert all(s not in shown for s in setup.secrets()), "a token was printed"
    assert all(s.encode() not in setup.stored() for s in setup.secrets()), "a token is stored in plain text"

    setup.sb.faults = Faults()
    done = setup.run("auth", "revoke", "shop", "--previous")
    assert done.returncode == 0, done.stderr
    assert "revoked 1 previous OAuth grant(s) of 'shop' at Klaviyo" in done.stdout
    assert first not in live_grants(setup) and len(live_grants(setup)) == 1
    (row,) = setup.status()
    assert row["previous_grants"] == 0 and row["health"] == "ok"
    again = setup.run("auth", "revoke", "shop", "--previous")
    assert again.returncode == 0 and "no previous OAuth grant waiting to be revoked" in again.stdout
    assert setup.run("auth", "revoke", "shop").returncode == 0 and live_grants(setup) == set()


def test_switching_an_oauth_connection_to_a_key_revokes_its_grant(setup: Setup) -> None:
    assert oauth_login(setup, "shop")[0] == 0
    assert live_grants(setup)
    done = setup.run("auth", "login", "shop", KLAVIYO_API_KEY=DEMO_KEY)
    assert done.returncode == 0, done.stderr
    assert live_grants(setup) == set()
    assert "(replaced the previous oauth)" in done.stdout and "previous OAuth grant was revoked" in done.stdout
    (row,) = setup.status()
    assert row["kind"] == "api_key" and row["previous_grants"] == 0


def test_switching_to_a_key_without_the_app_keeps_the_grant_and_says_what_to_set(setup: Setup) -> None:
    assert oauth_login(setup, "shop")[0] == 0
    done = setup.run("auth", "login", "shop", KLAVIYO_API_KEY=DEMO_KEY, KLAVIYO_CLIENT_ID="", KLAVIYO_CLIENT_SECRET="")
    assert done.returncode == 0, done.stderr
    assert "set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET" in done.stderr and "--previous" in done.stderr
    assert len(live_grants(setup)) == 1
    assert setup.run("auth", "revoke", "shop", "--previous").returncode == 0 and live_grants(setup) == set()


# -- personas on connections, the vault key --------------------------------------------------------


def test_a_persona_binds_in_yaml_and_is_told_at_load_which_scopes_its_connection_lacks(setup: Setup) -> None:
    assert setup.run("auth", "login", "reader", "--scopes", REPORTER, KLAVIYO_API_KEY=DEMO_KEY).returncode == 0
    folder = setup.home / "personas"
    folder.mkdir()
    for name, base in (("my-reporter", "campaign-reporter"), ("my-syncer", "segment-syncer")):
        data = yaml.safe_load((ROOT / "personas" / "definitions" / f"{base}.yaml").read_text())
        data.update(name=name, connection="reader")
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    ran = setup.run("run", "my-reporter", "--input", "{}")
    assert ran.returncode == 0, ran.stderr
    refused = setup.run("run", "my-syncer", "--input", json.dumps({"source": "x.csv", "list": "L"}))
    assert refused.returncode == 2
    line = one_line_error(refused)
    assert "persona 'my-syncer' needs scope(s) lists:read" in line and "connection 'reader' was not granted" in line
    assert "personas auth login reader --scopes" in line
    status = setup.run("auth", "status").stdout
    assert "reader: persona my-syncer lists scopes it was not granted: lists:read" in status


def _decrypts(key: bytes, db: Path) -> bool:
    con = sqlite3.connect(db)
    try:
        tokens = [bytes(t) for (t,) in con.execute("SELECT secret FROM credentials WHERE length(secret) > 0")]
    finally:
        con.close()
    try:
        for token in tokens:
            Fernet(key).decrypt(token)
    except InvalidToken:
        return False
    return bool(tokens)


def test_rotate_key_reencrypts_everything_and_retires_the_old_key(setup: Setup) -> None:
    setup.run("auth", "login", "a", KLAVIYO_API_KEY=DEMO_KEY)
    setup.run("auth", "login", "b", KLAVIYO_API_KEY=DEMO_KEY)
    old = (setup.home / "vault.key").read_bytes().strip()
    kept = setup.run("auth", "rotate-key")
    assert kept.returncode == 0 and "re-encrypted 2 secret(s)" in kept.stdout and "old key is kept" in kept.stdout
    retired = setup.run("auth", "rotate-key", "--retire-old")
    assert retired.returncode == 0 and "the old key was retired" in retired.stdout
    keys = (setup.home / "vault.key").read_bytes().split()
    assert len(keys) == 1 and old not in keys
    assert _decrypts(keys[0], setup.home / "vault.sqlite") and not _decrypts(old, setup.home / "vault.sqlite")
    assert setup.run("run", "campaign-reporter", "--input", "{}", "--connection", "b").returncode == 0


def test_rotating_a_key_from_the_environment_says_what_to_do(setup: Setup) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    setup.run("auth", "login", "a", KLAVIYO_API_KEY=DEMO_KEY, PERSONAS_VAULT_KEY=first)
    assert not (setup.home / "vault.key").exists()
    refused = setup.run("auth", "rotate-key", PERSONAS_VAULT_KEY=first)
    assert refused.returncode == 2 and "put it first in PERSONAS_VAULT_KEY" in one_line_error(refused)
    done = setup.run("auth", "rotate-key", PERSONAS_VAULT_KEY=f"{second},{first}")
    assert done.returncode == 0 and "under the first key in PERSONAS_VAULT_KEY" in done.stdout
    ok = setup.run("run", "campaign-reporter", "--input", "{}", "--connection", "a", PERSONAS_VAULT_KEY=second)
    assert ok.returncode == 0, ok.stderr


def test_another_vault_key_in_the_environment_is_not_ok_and_cannot_write(setup: Setup) -> None:
    """The vault was written under vault.key; PERSONAS_VAULT_KEY now holds another valid key. Status must
    not call its entries "ok", and a login must not store a secret under the other key (the vault would
    be left on two keys, which rotate-key then refuses)."""
    assert setup.run("auth", "login", "acme", KLAVIYO_API_KEY=DEMO_KEY).returncode == 0
    stored, other = setup.stored(), Fernet.generate_key().decode()
    (row,) = setup.status(PERSONAS_VAULT_KEY=other)
    assert row["health"] == "not readable (another vault key)" and row["readable"] is False
    table = setup.run("auth", "status", PERSONAS_VAULT_KEY=other)
    unset = f"the key in {setup.home / 'vault.key'} opens it: unset PERSONAS_VAULT_KEY to use that file"
    assert re.search(r"acme\s+api_key\s+.*\s+not readable \(another vault key\)", table.stdout), table.stdout
    assert f"acme: the vault key from PERSONAS_VAULT_KEY cannot open its secret; {unset}" in table.stdout
    refused = setup.run("auth", "login", "newone", KLAVIYO_API_KEY=DEMO_KEY, PERSONAS_VAULT_KEY=other)
    assert refused.returncode == 2
    line = one_line_error(refused)
    assert "entry 'acme'" in line and "nothing was written" in line and unset.lower() in line.lower()
    assert other not in line + table.stdout and "***" not in line + table.stdout
    assert setup.stored() == stored
    assert setup.run("auth", "login", "newone", KLAVIYO_API_KEY=DEMO_KEY).returncode == 0  # the fix it named
    rotated = setup.run("auth", "rotate-key")
    assert rotated.returncode == 0 and "re-encrypted 2 secret(s)" in rotated.stdout, rotated.stderr
    assert [r["health"] for r in setup.status()] == ["ok", "ok"]


def test_with_an_os_keyring_the_key_lives_there_and_no_key_file_is_made(setup: Setup, tmp_path: Path) -> None:
    ring = {"PYTHON_KEYRING_BACKEND": "tests.keyrings.FileKeyring", "TEST_KEYRING_FILE": str(tmp_path / "ring.json"),
            "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = setup.run("auth", "login", "a", KLAVIYO_API_KEY=DEMO_KEY, **ring)
    assert done.returncode == 0 and "vault key: the OS keyring" in done.stdout
    assert not (setup.home / "vault.key").exists()
    (entry,) = json.loads((tmp_path / "ring.json").read_text()).values()
    assert _decrypts(entry.encode(), setup.home / "vault.sqlite")
    assert setup.run("auth", "rotate-key", "--retire-old", **ring).returncode == 0
    (rotated,) = json.loads((tmp_path / "ring.json").read_text()).values()
    assert rotated != entry and _decrypts(rotated.encode(), setup.home / "vault.sqlite")
    assert "ok" in setup.run("auth", "status", **ring).stdout
