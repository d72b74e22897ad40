"""Waiting for the sync's import jobs, so rows Klaviyo refused are counted and shown, not lost.

``bulk_import_profiles`` answers at once and applies the rows later. After the last batch the
syncer waits (on the context's clock, so tests never really sleep), then lists the account's import
jobs, newest first, 100 per call, until every job of this sync is seen finished; a job with failed
rows gets one more call for its errors (the first 100). The failed rows are subtracted from the
adds (``Plan.outcome``) and the refused rows found in the source are listed under ``invalid`` with
their row number and Klaviyo's reason. It gives up waiting after
``job_timeout_seconds`` and says how many jobs were still running (Klaviyo finishes them anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .members import PAGE_SIZE, klaviyo_read
from .plan import Plan

__all__ = ["verify_jobs"]

JOB_FIELDS = ["status", "total_count", "completed_count", "failed_count"]
FINISHED = ("complete", "cancelled")
MAX_WAIT = 30.0
ERRORS_KEPT = 20


def _job_pages(kit: Any, pending: set[str]) -> tuple[dict[str, dict[str, Any]], int]:
    """Newest-first pages of import jobs until every pending id is seen; (id -> attributes, calls)."""
    seen: dict[str, dict[str, Any]] = {}
    calls = 0
    cursor: str | None = None
    while True:
        page = klaviyo_read(kit, "get_bulk_import_profiles_jobs", sort="-created_at", page_size=PAGE_SIZE,
                     fields_profile_bulk_import_job=JOB_FIELDS, **({"page_cursor": cursor} if cursor else {}))
        calls += 1
        for job in page.data or []:
            if job.get("id") in pending:
                seen[job["id"]] = job.get("attributes") or {}
        cursor = page.next_cursor
        if not cursor or len(seen) == len(pending):
            return seen, calls


def _errors(kit: Any, plan: Plan, job_id: str) -> list[dict[str, Any]]:
    """The job's first 100 errors, each also recorded in the plan against its source row."""
    page = klaviyo_read(kit, "get_errors_for_bulk_import_profiles_job", id=job_id, page_size=PAGE_SIZE)
    out = []
    rows = []
    for err in page.data or []:
        attrs = err.get("attributes") or {}
        payload = attrs.get("original_payload") or {}
        who = payload.get("email") or payload.get("phone_number") or payload.get("external_id")
        detail = str(attrs.get("detail") or attrs.get("title") or "refused")
        out.append({"job": job_id, "profile": who, "detail": detail})
        rows.append((payload.get("email"), payload.get("phone_number"), detail))
    plan.refused_by_job(rows)
    return out


def verify_jobs(ctx: Any, plan: Plan, settings: Any, write: Callable[[Any], None]) -> tuple[dict[str, Any], int]:
    """Wait for this sync's import jobs; (report, read calls made)."""
    clock, kit = ctx.clock, ctx.toolkit
    started = clock.monotonic()
    wait = settings.job_poll_seconds
    calls = 0
    errors: list[dict[str, Any]] = []
    total = len(plan.jobs())
    while True:
        pending = {job_id for _, job_id in plan.jobs()}
        if not pending or clock.monotonic() - started >= settings.job_timeout_seconds:
            break
        clock.sleep(wait)  # the jobs were just submitted (or are still running): give them time first
        wait = min(wait * 2, MAX_WAIT)
        seen, used = _job_pages(kit, pending)
        calls += used
        for job_id, attrs in seen.items():
            if attrs.get("status") not in FINISHED:
                continue
            failed = int(attrs.get("failed_count") or 0)
            plan.record_job(job_id, str(attrs["status"]), int(attrs.get("completed_count") or 0), failed)
            if failed:
                errors.extend(_errors(kit, plan, job_id))
                calls += 1
        write({"phase": "verify", "done": total - len(plan.jobs()), "total": total, "unit": "jobs"})
    report: dict[str, Any] = plan.job_totals()
    report["still_running"] = report["jobs"] - report["finished"]
    report["errors"] = errors[:ERRORS_KEPT]
    return report, calls
