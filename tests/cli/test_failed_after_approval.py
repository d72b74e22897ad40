"""A send that Klaviyo fails after it was approved: the run waits for that request's approval again,
and ``personas run`` says so with the command that continues it, never ``--retry`` (which refuses a
run waiting for an approval). Real processes against ``personas sandbox serve`` with its faults."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from graphs.lead_magnet.fixtures import sign_up
from klaviyo_toolkit.client import KlaviyoClient
from tests.graphs.leads import HOT
from tests.service.test_paused import careful_persona  # the sequencer with its send needing approval
from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env
from .test_served_approvals import starts


def personas(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(home, KLAVIYO_BASE_URL=url, KLAVIYO_API_KEY="pk_sandbox_demo")
    return run_personas([str(PERSONAS), "run", *args], env=env, capture_output=True, text=True, timeout=180)


def test_a_send_failed_after_its_approval_says_how_to_answer_it_again(tmp_path: Path, sandbox_server: str) -> None:
    home = tmp_path / "home"
    careful_persona(home)
    client = KlaviyoClient(api_key="pk_sandbox_demo", base_url=sandbox_server)
    event = sign_up(client, "approved.then.failed@example.com", HOT,
                    settle=lambda: httpx.post(f"{sandbox_server}/sandbox/settle", timeout=30).raise_for_status())
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    (tmp_path / "event.json").write_text(json.dumps(event), encoding="utf-8")
    paused = personas(home, sandbox_server, "careful-sequencer", "--input", str(tmp_path / "event.json"),
                      "--thread", "t1")
    assert paused.returncode == 0 and "Paused for approval" in paused.stderr, paused.stderr
    request = paused.stderr.split("--request ")[1].split()[0]

    faults = {"error_rate": 1.0, "status": 503, "operations": ["create_event"]}
    httpx.put(f"{sandbox_server}/sandbox/faults", json=faults, timeout=10).raise_for_status()
    failed = personas(home, sandbox_server, "careful-sequencer", "--thread", "t1", "--resume", "approve",
                      "--request", request)
    httpx.delete(f"{sandbox_server}/sandbox/faults", timeout=10).raise_for_status()
    assert failed.returncode == 1 and starts(client, pid) == []
    hint = f"personas run careful-sequencer --thread t1 --resume approve --request {request}"
    assert hint in failed.stderr and "--retry" not in failed.stderr, failed.stderr

    retried = personas(home, sandbox_server, "careful-sequencer", "--thread", "t1", "--retry")
    assert retried.returncode == 2 and hint in retried.stderr, retried.stderr  # --retry names the way on

    done = personas(home, sandbox_server, *hint.split()[2:])
    assert done.returncode == 0 and "Outcome: sent" in done.stdout, done.stderr
    assert len(starts(client, pid)) == 1


def test_a_persona_given_as_a_file_is_continued_with_that_file(tmp_path: Path, sandbox_server: str) -> None:
    """The printed command names the file the run was started with: by its name alone it resolved to the
    shipped persona, whose send asks for no approval, and `--resume reject` sent the request."""
    import shlex

    import yaml

    from personas.runtime import load_persona

    home = tmp_path / "home"
    data = yaml.safe_load(Path(load_persona("lead-magnet-sequencer").source).read_text(encoding="utf-8"))
    data["approval"] = {**data["approval"], "also": ["create_event"]}  # the same name, asking before its send
    own = tmp_path / "my sequencer.yaml"
    own.write_text(yaml.safe_dump(data), encoding="utf-8")
    client = KlaviyoClient(api_key="pk_sandbox_demo", base_url=sandbox_server)
    event = sign_up(client, "own.file@example.com", HOT,
                    settle=lambda: httpx.post(f"{sandbox_server}/sandbox/settle", timeout=30).raise_for_status())
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    (tmp_path / "event.json").write_text(json.dumps(event), encoding="utf-8")
    paused = personas(home, sandbox_server, str(own), "--input", str(tmp_path / "event.json"), "--thread", "t2")
    assert paused.returncode == 0 and f"personas run {shlex.quote(str(own))} --thread t2 --resume" in paused.stderr

    by_name = personas(home, sandbox_server, "lead-magnet-sequencer", "--thread", "t2", "--resume", "reject")
    assert by_name.returncode == 2 and "paused under another approval policy" in by_name.stderr, by_name.stderr
    assert starts(client, pid) == [], "a rejection must never send"

    command = paused.stderr.split("Continue with: ")[1].split("   (or")[0]
    command = command.replace("--resume approve", "--resume reject")
    rejected = personas(home, sandbox_server, *shlex.split(command)[2:])
    assert rejected.returncode == 0 and "Send: rejected" in rejected.stdout, rejected.stderr
    assert starts(client, pid) == []
