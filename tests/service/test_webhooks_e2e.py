"""The whole path, for real: a form submission in the sandbox -> a signed system webhook -> the
service's Starlette app -> the queue -> the lead-magnet sequencer -> the touchpoint in the outbox."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.testclient import TestClient

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox import webhook_deliveries as deliveries
from klaviyo_toolkit.webhooks import format_timestamp, sign
from personas.kernel.config import Config
from personas.service.app import build_app
from personas.service.queues import LocalQueue
from personas.service.service import Service
from tests.graphs.leads import HOT, WARM, first_touchpoints, sequence_starts, sign_up

from .conftest import HOOK_URL, SECRET, AppSender, register_webhook


def _serve(config: Config, sandbox: Sandbox, sender: AppSender) -> tuple[Service, LocalQueue, Any]:
    service = Service.open(config, sandbox=sandbox)
    queue = LocalQueue(service, workers=2)
    client = TestClient(build_app(service, queue))
    sender.client = client
    return service, queue, client


def test_a_form_submission_reaches_the_outbox_through_a_signed_webhook(
    config: Config, sandbox: Sandbox, sender: AppSender
) -> None:
    service, queue, _ = _serve(config, sandbox, sender)
    register_webhook(sandbox)
    event = sign_up(sandbox, "hot@example.com", HOT)
    sandbox.tick()  # deliveries are asynchronous, as Klaviyo's: due now, sent on the next tick
    queue.drain(timeout=60)

    sent = deliveries(sandbox)
    assert [d["status"] for d in sent] == ["delivered"] and sender.answers == [202]
    runs = service.store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert (run.persona, run.key, run.trigger, run.status) == (
        "lead-magnet-sequencer", f"event:{event['data']['id']}", "webhook", "done"
    )
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    touchpoints = first_touchpoints(sandbox, pid)
    assert len(touchpoints) == 1 and touchpoints[0]["status"] == "scheduled" and len(sequence_starts(sandbox, pid)) == 1
    assert "fast-track" in (run.outcome or "") or "nurture" in (run.outcome or "")


def test_each_event_runs_once_when_klaviyo_delivers_it_again(
    config: Config, sandbox: Sandbox, sender: AppSender
) -> None:
    service, queue, _ = _serve(config, sandbox, sender)
    register_webhook(sandbox)
    event = sign_up(sandbox, "warm@example.com", WARM)
    sandbox.tick()
    queue.drain(timeout=60)
    # the same event in a new delivery, signed a second later (Klaviyo retrying after a timeout)
    headers, body = sender.sent[0]
    document = json.loads(body)
    document["meta"]["timestamp"] = "2026-12-04T10:00:01+00:00"
    again = json.dumps(document).encode()
    stamp = format_timestamp(time.time() + 1)
    headers = {**headers, "Klaviyo-Timestamp": stamp, "Klaviyo-Signature": sign(SECRET, again, stamp)}
    sender(HOOK_URL, headers, again)
    queue.drain(timeout=60)
    assert sender.answers == [202, 202]
    assert len(service.store.runs()) == 1
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    assert len(first_touchpoints(sandbox, pid)) == 1 and len(sequence_starts(sandbox, pid)) == 1
