"""A segment sync to kill and resume: a list, a CSV source that differs from it, and what must hold after.

The list starts with ``members`` profiles; the source keeps most of them, drops the first
``removes`` and adds profiles the account has (not in the list) and new ones; every third row gives
consent. Batches are small (``batch_size``) so a sync has many batches and several removal
approvals to be killed around. After the sync, :func:`check_sync` compares the list with the source
(membership is a set, so a batch sent twice cannot show, but a batch lost or one approved for another
would), the consent of every consenting row, and each removal request with the approval it got.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.tools import fingerprint

from .fleet import settle_jobs, setup_client


@dataclass(frozen=True)
class SyncJob:
    list_id: str
    source: tuple[str, ...]  # emails, in file order
    consenting: tuple[str, ...]
    removed: tuple[str, ...]


def make_sync(sb: Sandbox, work: Path, *, members: int = 600, removes: int = 200, adds: int = 300,
              batch_size: int = 50) -> SyncJob:
    """Seed the list and write ``work/source.csv`` and ``work/sync.json`` (input + settings for the child)."""
    client = setup_client(sb)
    list_id = client.call("create_list", name="Sync fleet").data["id"]
    known = [f"sync{i:05d}@fleet.example" for i in range(members + adds // 2)]
    for start in range(0, members, 1000):
        client.call("bulk_import_profiles", profiles=[{"email": e} for e in known[start:min(start + 1000, members)]],
                    list_ids=[list_id])
    rest = known[members:]
    if rest:
        client.call("bulk_import_profiles", profiles=[{"email": e} for e in rest])
    settle_jobs(sb)
    new = [f"new{i:05d}@fleet.example" for i in range(adds - len(rest))]
    source = known[removes:] + new
    consenting = tuple(e for i, e in enumerate(source) if i % 3 == 0)
    path = work / "source.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["email", "first_name", "consent"])
        writer.writeheader()
        writer.writerows({"email": e, "first_name": f"Row {i}", "consent": "yes" if e in consenting else ""}
                         for i, e in enumerate(source))
    (work / "sync.json").write_text(json.dumps({
        "input": {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id, "mode": "mirror"},
        "settings": {"batch_size": batch_size, "job_poll_seconds": 0.1},
    }), encoding="utf-8")
    client.close()
    return SyncJob(list_id, tuple(source), consenting, tuple(known[:removes]))


@dataclass
class SyncOutcome:
    missing: list[str] = field(default_factory=list)  # in the source, not in the list
    extra: list[str] = field(default_factory=list)  # in the list, not in the source
    not_subscribed: list[str] = field(default_factory=list)
    unbound_removals: list[str] = field(default_factory=list)  # a removal sent without its own approval
    stray_answers: list[str] = field(default_factory=list)  # an approval given to a request never shown
    removal_batches: int = 0
    approvals: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.not_subscribed or self.unbound_removals or self.stray_answers)

    def explain(self) -> str:
        return "; ".join(f"{k}: {v[:5]} ({len(v)})" for k, v in vars(self).items() if isinstance(v, list) and v)


def _ids(body: Any) -> list[str]:
    data = (body or {}).get("data") if isinstance(body, dict) else None
    return sorted(str(item.get("id")) for item in data or [] if isinstance(item, dict))


def check_sync(sb: Sandbox, job: SyncJob, audit: AuditLog, thread: str,
               answers: Sequence[dict[str, Any]]) -> SyncOutcome:
    """What must hold after the sync (the sandbox settled first): see the module docstring."""
    sb.settle()
    out = SyncOutcome()
    members = {sb.store.get(t, pid).attributes.get("email") for t, pid in sb.store.get("list", job.list_id)
               .linked("profiles")}
    wanted = set(job.source)
    out.missing = sorted(wanted - members)
    out.extra = sorted(members - wanted)
    by_email = {p.attributes.get("email"): p for p in sb.store.all("profile")}
    for email in job.consenting:
        marketing = (((by_email[email].attributes.get("subscriptions") or {}).get("email") or {})
                     .get("marketing") or {})
        if marketing.get("consent") != "SUBSCRIBED":
            out.not_subscribed.append(email)
    rows = sorted(audit.query(thread_id=thread, limit=None), key=lambda r: r.id)
    approved: list[tuple[str, list[str]]] = []  # fingerprint, profile ids
    for row in rows:
        if row.tool != "remove_profiles_from_list":
            continue
        if row.status == "approved":
            args = row.arguments
            shown = fingerprint(row.tool, args)
            if row.extra.get("note") != shown:
                out.unbound_removals.append(f"row {row.id}: approved {row.extra.get('note')} for {shown}")
            approved.append((shown, sorted(args.get("profile_ids") or [])))
            out.approvals += 1
        elif row.status in ("ok", "error"):
            sent = _ids((row.arguments or {}).get("body"))
            if not any(ids == sent for _, ids in approved):
                out.unbound_removals.append(f"row {row.id}: removal of {len(sent)} sent with no approval for it")
            out.removal_batches += row.status == "ok"
    shown_fingerprints = {f for f, _ in approved} | {
        fingerprint(r.tool, r.arguments) for r in rows if r.status == "pending_approval"}
    out.stray_answers = [a["fingerprint"] for a in answers if a["fingerprint"] not in shown_fingerprints]
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def emails(items: Iterable[str]) -> list[str]:
    return sorted(items)
