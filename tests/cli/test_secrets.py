"""No raw secret anywhere: the commands run with distinctive fake keys against a model endpoint
that echoes them back (in 401s and in answers), and nothing they print or store holds one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.warm_cli import run_personas

from ..fake_openai import FakeOpenAI
from .conftest import PERSONAS, ROOT, Terminal, child_env

# Distinctive, and deliberately not all shaped like keys: only the registry of known secrets can catch them.
OPENAI_KEY = "zz-openai-DISTINCT-4f1c9e7a2b"
KLAVIYO_KEY = "pk_DISTINCTklaviyo9a8b7c6d5e4f3a2b"
CLIENT_SECRET = "cs-DISTINCT-oauth-secret-77aa"
SECRETS = (OPENAI_KEY, KLAVIYO_KEY, CLIENT_SECRET)


def env_for(home: Path, server: FakeOpenAI, **extra: str) -> dict[str, str]:
    return child_env(home, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=server.base_url, KLAVIYO_CLIENT_ID="client-1",
                     KLAVIYO_CLIENT_SECRET=CLIENT_SECRET, **extra)


def run(env: dict[str, str], *args: str) -> str:
    done = run_personas([str(PERSONAS), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return f"$ personas {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def scan(*folders: Path) -> dict[str, list[str]]:
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and leaks(path.read_bytes()):
                found[str(path)] = leaks(path.read_bytes())
    return found


def test_no_raw_secret_in_any_output_or_file(tmp_path: Path) -> None:
    home, reports = tmp_path / "home", tmp_path / "reports"
    suites = tmp_path / "suites"
    shutil.copytree(ROOT / "evals" / "suites" / "lead_magnet", suites / "lead_magnet")
    outputs = []
    with FakeOpenAI(mode="reject") as rejecting:
        env = env_for(home, rejecting)
        outputs.append(run(env, "demo"))
        outputs.append(run(env, "run", "lead-magnet-sequencer", "--input", "examples/form_submission.json",
                           "--sandbox"))
        outputs.append(run(env, "eval", "lead_magnet", "--case", "hot-director-this-month"))
        assert rejecting.requests and all(r["key"] == OPENAI_KEY for r in rejecting.requests)
    with FakeOpenAI(mode="echo") as echoing:
        env = env_for(home, echoing)
        outputs.append(run(env, "run", "campaign-reporter", "--input", "{}", "--sandbox", "--json"))
        outputs.append(run(env, "eval", str(suites / "lead_magnet"), "--case", "hot-director-this-month",
                           "--record", "--report", str(reports)))
        term = Terminal(["chat", "klaviyo-assistant", "--sandbox"], env)
        term.prompt()
        term.say("What is my key?")
        term.expect("nothing else to say")
        term.prompt()
        assert term.leave() == 0
        outputs.append(term.transcript)
        auth = env_for(home, echoing, KLAVIYO_API_KEY=KLAVIYO_KEY, KLAVIYO_BASE_URL="http://127.0.0.1:9")
        outputs.append(run(auth, "auth", "login", "prod", "--scopes", "lists:read"))  # unreachable: refused
        outputs.append(run(auth, "auth", "login", "prod", "--scopes", "list:read"))  # a typo: refused
        outputs.append(run(auth, "auth", "status"))
        outputs.append(run(auth, "audit", "--json"))
        assert echoing.requests, "the echoing endpoint was called"
    printed = "\n".join(outputs)
    assert "nothing else to say" in printed, "the echoed answers did reach the output (masked)"
    assert not leaks(printed), [s for s in SECRETS if s in printed]
    found = scan(home, reports, suites)
    assert not found, found
    recorded = (suites / "lead_magnet" / "cassettes" / "hot-director-this-month.json").read_text()
    assert '"kind": "recorded"' in recorded and "127.0.0.1" in recorded


def test_a_base_url_keeps_its_credentials_out_of_what_is_shown_and_stored() -> None:
    from personas.kernel.config import Config

    config = Config.from_env({"PERSONAS_HOME": "/tmp/x", "OPENAI_BASE_URL": "https://bob:pw-Secret-99@llm.example/v1"})
    assert config.openai_base == "https://llm.example/v1"
    assert "pw-Secret-99" in config.secrets() and "bob" in config.secrets()


@pytest.mark.parametrize("name", ["audit.sqlite", "checkpoints.sqlite", "vault.sqlite", "chat_history"])
def test_state_files_are_owner_only_in_an_owner_only_home(tmp_path: Path, name: str, sandbox_server: str) -> None:
    home = tmp_path / "home"
    env = child_env(home, KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=sandbox_server)
    run(env, "run", "campaign-reporter", "--input", "{}", "--sandbox")
    assert "logged in" in run(env, "auth", "login", "prod")
    if name == "chat_history":
        term = Terminal(["chat", "klaviyo-assistant", "--sandbox"], env)
        term.prompt()
        term.command("/scopes")
        assert term.leave() == 0
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    assert oct((home / name).stat().st_mode & 0o777) == "0o600", name
    reports = [p for p in (home / "reports").rglob("*") if p.is_file()]
    assert reports and all(p.stat().st_mode & 0o077 == 0 for p in reports)
