"""A secret in a delivered event stays out of the service's run store, as it stays out of checkpoints.

The store keeps each run's input (``personas_runs.input``) to start it: it used to keep it as
delivered, so a key pasted into a form answer, or the webhook secret itself echoed in a property,
sat in ``service.sqlite`` while the run's checkpoint of the same input was redacted. A real
``personas serve`` process takes a real delivery here, and every file under its home is grepped.
"""

from __future__ import annotations

import re
from pathlib import Path

from klaviyo_sandbox import Sandbox
from tests.graphs.leads import HOT, sign_up

from .conftest import SECRET
from .test_commands import env_for
from .test_local_processes import Serve, listed, served, wait_until

__all__ = ["served"]  # the fixture, imported to be used here

KLAVIYO_KEY = "pk_DISTINCTstored9a8b7c6d5e4f3a2b1c"
OPENAI_KEY = "sk-" + "proj-DISTINCTstoredA1b2C3d4E5f6G7"  # in two parts: no key scanner takes it for real
#: Any of them whole, or the part a masked key would not show.
TRACE = re.compile(re.escape(SECRET).encode() + rb"|pk_DISTINCTst|sk-proj-DISTINCTst")


def test_a_delivered_events_secrets_are_not_kept_in_the_run_store(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    home = tmp_path / "home"
    env = env_for(home, url)
    event = sign_up(sb, "pasted@example.com", HOT)
    event["data"]["attributes"]["event_properties"].update(
        {"note": f"my key {KLAVIYO_KEY}", "other": OPENAI_KEY, "echo": SECRET}
    )
    serve = Serve(env, "--workers", "1")
    try:
        [run_id] = serve.deliver([event])
        wait_until(lambda: listed(env)[run_id]["status"] in ("done", "failed", "partial"), "the run to end")
    finally:
        serve.stop()
    assert listed(env)[run_id]["status"] == "done", serve.log
    assert not TRACE.search(serve.log.encode()), serve.log
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "service.sqlite" for p in stored), stored
    leaked = {str(p): TRACE.findall(p.read_bytes()) for p in stored if TRACE.search(p.read_bytes())}
    assert not leaked, leaked
