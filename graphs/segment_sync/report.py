"""What a sync reports: planned vs applied per kind of change, what was skipped and why, and a summary.

Nothing is lost silently: invalid rows, duplicates (merged into one row per person: people whose
fields came from a later row are in ``merged_values``, with the rows and fields), people whose rows
disagree on consent (not subscribed: ``consent_conflicts``, with the rows), rows whose identifiers
name two profiles (sent in no batch: ``identity_conflicts``, each under ``invalid``), suppressed profiles,
rejected or failed batches and rows Klaviyo refused (in a batch call or in an import job) are each
counted, with a sample, in ``state["result"]``. Counts are what Klaviyo accepted: ``applied`` leaves
out the ``refused`` rows, which are listed under ``invalid`` with Klaviyo's reason.

A sync that did not do all it planned (a row invalid or refused, a batch failed or rejected, a
subscribe withheld because a person's rows disagree on consent), or
whose import jobs Klaviyo had not finished when it stopped waiting (their rows are not confirmed:
Klaviyo may still refuse some), is ``partial``: its ``exit_code`` is :data:`PARTIAL_EXIT`, so a
script or cron job running ``personas run`` sees it; ``done`` and ``dry_run`` are 0.

The summary is a template; with ``summarize_with_model`` the persona's model writes it instead
(from the counts only) and the template stays the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personas.kernel.governance import fence

from .plan import Plan

__all__ = ["PARTIAL_EXIT", "build_result", "exit_code", "outcome", "render", "summarize"]

KINDS = {"adds": ("import", "add"), "subscribes": ("subscribe",), "removes": ("remove",)}
STATUS = {"done": "applied", "rejected": "rejected", "failed": "failed", "dry_run": "not_sent", "pending": "not_sent"}
#: The exit code of a partial sync: apart from 1 (the run failed at a step: continue it with --retry)
#: and 2 (bad usage or input), because sending it again changes nothing until the source is fixed.
PARTIAL_EXIT = 3


def _kind(outcome: dict[str, dict[str, list[int]]], kinds: tuple[str, ...]) -> dict[str, int]:
    out = {"planned": 0, "applied": 0, "refused": 0, "rejected": 0, "failed": 0, "not_sent": 0, "batches": 0}
    for kind in kinds:
        for status, (batches, profiles, refused) in outcome.get(kind, {}).items():
            if status == "added_by_approver":  # sent because an approver's edit added them: applied, never planned
                out["applied"] += profiles
                out["added_by_approver"] = out.get("added_by_approver", 0) + profiles
                continue
            out["batches"] += batches
            out["planned"] += profiles + refused
            out["refused"] += refused
            out[STATUS.get(status, "not_sent")] += profiles
    return out


def exit_code(state: Mapping[str, Any]) -> int:
    """The process exit code of a finished sync: :data:`PARTIAL_EXIT` when partial, else 0."""
    return PARTIAL_EXIT if (state.get("result") or {}).get("status") == "partial" else 0


def build_result(state: Mapping[str, Any], plan: Plan, limit: int) -> dict[str, Any]:
    """The run's result from its state (counts, samples) and its plan file (batch outcomes)."""
    outcome = plan.outcome()
    summary = state.get("plan") or {}
    source = (state.get("counts") or {}).get("source") or {}
    changes = {name: _kind(outcome, kinds) for name, kinds in KINDS.items()}
    jobs = state.get("jobs") or {}
    dry = state.get("mode") == "dry_run"
    invalid_rows = source.get("invalid", 0)
    refused_rows = sum(c["refused"] for c in changes.values())
    conflicts = plan.conflicts(limit)
    clashes = int(summary.get("identity_conflicts") or 0)  # rows naming two profiles: sent in no batch
    clean = (
        all(c["applied"] - c.get("added_by_approver", 0) == c["planned"] for c in changes.values())
        and not jobs.get("failed_rows")
        and not jobs.get("still_running")
        and not invalid_rows
        and not conflicts["count"]
        and not clashes
    )
    request = state.get("request") or {}
    return {
        "status": "dry_run" if dry else ("done" if clean else "partial"),
        "dry_run": dry,
        "target_list_id": request.get("target_list_id"),
        "target_name": request.get("target_name"),
        "double_opt_in": request.get("target_opt_in") == "double_opt_in",  # subscribes wait for the click
        "mode": request.get("mode", "add-only"),
        "source": request.get("source"),
        "source_rows": source.get("rows", 0),
        "valid_rows": source.get("valid", 0),
        "invalid_rows": invalid_rows,
        "refused_rows": refused_rows,
        "duplicate_rows": source.get("duplicates", 0),
        "merged_values": plan.merged(limit),
        "members_before": summary.get("members", 0),
        "unchanged": summary.get("unchanged", 0),
        **changes,
        "already_subscribed": summary.get("already_subscribed", 0),
        "suppressed": {"count": summary.get("suppressed", 0), "sample": (summary.get("samples") or {}).get(
            "suppressed", [])},
        "consent_without_email": summary.get("consent_without_email", 0),
        "awaiting_confirmation": summary.get("awaiting_confirmation") or {"count": 0, "sample": []},
        "consent_conflicts": conflicts,
        "identity_conflicts": {"count": clashes},
        "invalid": {
            "count": invalid_rows + refused_rows + clashes,
            "source_check": invalid_rows,
            "refused_by_klaviyo": refused_rows,
            "identity_conflicts": clashes,
            "rows": plan.invalid(limit),
        },
        "problems": plan.problems(limit),
        "jobs": jobs,
        "calls": state.get("calls") or {},
        "plan_file": state.get("plan_file"),
        # only when there is something to say, so that other syncs' facts read as the cassettes hold them
        **({"kept_invalid": summary["kept_invalid"]} if (summary.get("kept_invalid") or {}).get("count") else {}),
        **({"missing_consent_column": missing} if (missing := (state.get("counts") or {}).get(
            "missing_consent_column")) else {}),
        **({"subscribed_without_consent": kept_on} if (kept_on := summary.get("subscribed_without_consent") or {})
           .get("count") else {}),
        **({"withheld_for_invalid_rows": held} if (held := summary.get("withheld_for_invalid_rows") or {})
           .get("count") else {}),
        **({"other_channel_consent": unread} if (unread := (state.get("counts") or {}).get(
            "other_channel_consent")) else {}),
    }


def _first_three(count: int, shown: list[str]) -> str:
    """The first three of ``count`` people, as shown, and how many more there are."""
    return ", ".join(shown) + (f" and {count - 3} more" if count > 3 else "")


def _template(result: dict[str, Any]) -> str:
    adds, subs, removes = result["adds"], result["subscribes"], result["removes"]
    verb = "would add" if result["dry_run"] else "added"
    target = result.get("target_name") or result["target_list_id"]
    parts = [f"{verb} {adds['planned' if result['dry_run'] else 'applied']} profiles to list {target}",
             f"{'would remove' if result['dry_run'] else 'removed'} "
             f"{removes['planned' if result['dry_run'] else 'applied']}",
             f"{_subscribed(result, dry=result['dry_run'])} "
             f"{subs['planned' if result['dry_run'] else 'applied']} with explicit consent",
             f"left {'up to ' if removes.get('added_by_approver') else ''}{result['unchanged']} members unchanged"]
    text = "Dry run, nothing sent: " if result["dry_run"] else "Sync " + result["status"] + ": "
    text += ", ".join(parts) + "."
    notes = []
    if column := result.get("missing_consent_column"):
        notes.append(missing_consent(column, result.get("other_channel_consent")))
    if result["suppressed"]["count"]:
        notes.append(f"{result['suppressed']['count']} consenting profiles are suppressed and were not subscribed")
    if no_email := result.get("consent_without_email"):
        notes.append(no_email_note(no_email))
    if held := (result.get("withheld_for_invalid_rows") or {}).get("count"):
        notes.append(f"{held} consenting {'person was' if held == 1 else 'people were'} not subscribed because "
                     "another of their rows is invalid, so what it says of consent is not known: fix that row and "
                     "sync again (see invalid and withheld_for_invalid_rows)")
    if still := (result.get("subscribed_without_consent") or {}).get("count"):
        notes.append(f"{still} {'member is' if still == 1 else 'members are'} subscribed in Klaviyo though the source "
                     "gives no consent for them: left subscribed, as this syncer never unsubscribes (unsubscribe in "
                     "Klaviyo whoever withdrew it; see subscribed_without_consent)")
    if waiting := (result.get("awaiting_confirmation") or {}).get("count"):
        notes.append(f"{waiting} consenting people were asked to subscribe before and have not confirmed yet (a "
                     "double opt-in list emails each ask): not asked again (see awaiting_confirmation)")
    if result["invalid_rows"]:
        notes.append(f"{result['invalid_rows']} invalid rows were skipped (see invalid)")
    if clashes := (result.get("identity_conflicts") or {}).get("count"):
        notes.append(f"{clashes} {'row names' if clashes == 1 else 'rows name'} two Klaviyo profiles (an email of "
                     "one, a phone number or external id of another) and "
                     f"{'was' if clashes == 1 else 'were'} not sent: no add, no subscribe (see invalid)")
    if kept := (result.get("kept_invalid") or {}).get("count"):
        notes.append(f"{kept} members whose row is invalid were kept, not removed (see invalid)")
    if result["duplicate_rows"]:
        notes.append(f"{result['duplicate_rows']} duplicate rows were merged into one row per person")
    merged = result.get("merged_values") or {}
    if merged.get("count"):
        n = merged["count"]
        shown = _first_three(n, [f"{m['person']} ({'/'.join(m['fields'])})" for m in merged["people"][:3]])
        notes.append(f"{n} {'person was' if n == 1 else 'people were'} given a later row's values, the last one "
                     f"each field had: {shown} (see merged_values)")
    conflicts = result.get("consent_conflicts") or {}
    if conflicts.get("count"):
        n = conflicts["count"]
        shown = _first_three(n, [f"{c['person']} ({_rows(c['rows'])})" for c in conflicts["people"][:3]])
        notes.append(f"{n} {'person has' if n == 1 else 'people have'} rows that disagree on consent and "
                     f"{'was' if n == 1 else 'were'} not subscribed: {shown} (see consent_conflicts)")
    for name in ("adds", "subscribes", "removes"):
        if result[name].get("refused"):
            notes.append(f"Klaviyo refused {result[name]['refused']} {name}, not counted above (see invalid)")
        for status in ("rejected", "failed"):
            if result[name][status]:
                notes.append(f"{result[name][status]} {name} were {status} (see problems)")
        if result[name].get("added_by_approver"):
            notes.append(f"{result[name]['added_by_approver']} of the {name} were added by an approver's edit, not "
                         "planned from the source (see problems)")
    if (result["jobs"] or {}).get("still_running"):
        notes.append(f"{result['jobs']['still_running']} import jobs were still running, so their rows are not "
                     "confirmed (Klaviyo may still refuse some; see get_bulk_import_profiles_jobs)")
    joined = "; ".join(notes)
    return text + ("" if not notes else " " + joined[:1].upper() + joined[1:] + ".")


def missing_consent(column: str, unread: list[str] | None = None) -> str:
    """Why nobody was subscribed: no consent column; ``unread``: the file's consent columns for another
    channel (SMS), named so that nobody points consent_column at them (texts are not email)."""
    said = (f"no {column!r} column in the file: nobody is subscribed; the persona's consent_column setting names "
            "it")
    if unread:
        said += (f" ({', '.join(repr(c) for c in unread)} {'is' if len(unread) == 1 else 'are'} consent for "
                 "another channel than email, so not read: this syncer subscribes email marketing only)")
    return said


def no_email_note(count: int) -> str:
    """Rows that consent but give no email: consent here is to email marketing, so nobody is subscribed."""
    return (f"{count} consenting {'row gives' if count == 1 else 'rows give'} no email (a phone number only) and "
            f"{'was' if count == 1 else 'were'} not subscribed: the consent column is consent to email "
            "marketing, which needs an email; give the row its email to subscribe it (SMS consent is not synced)")


def _rows(numbers: list[int]) -> str:
    return f"row {numbers[0]}" if len(numbers) == 1 else "rows " + ", ".join(str(n) for n in numbers)


def _subscribed(result: Mapping[str, Any], dry: bool = False) -> str:
    """The verb for subscribes: a double opt-in list only asks the person to confirm (an email)."""
    if result.get("double_opt_in"):
        return "would ask to confirm (double opt-in)" if dry else "asked to confirm (double opt-in)"
    return "would subscribe" if dry else "subscribed"


def outcome(result: Mapping[str, Any]) -> str:
    """One line for run lists (``personas runs``): the status and what changed or did not."""
    failed = sum(result[k]["failed"] + result[k]["rejected"] for k in KINDS)
    conflicts = (result.get("consent_conflicts") or {}).get("count")
    return (f"{result['status']}: added {result['adds']['applied']}, "
            f"{_subscribed(result)} {result['subscribes']['applied']}, "
            f"removed {result['removes']['applied']}; {result['invalid_rows']} invalid, "
            f"{result['refused_rows']} refused by Klaviyo, {failed} failed or rejected"
            + (f", {conflicts} with conflicting consent (not subscribed)" if conflicts else "")
            + (f", {clashes} naming two profiles (not sent)" if (clashes := (result.get("identity_conflicts") or {})
                                                                   .get("count")) else ""))


#: Counts of rows Klaviyo refused: shown to the model only when there are any, so that the facts of
#: a sync without refusals read as they did when the recorded cassettes were made.
_REFUSAL_KEYS = ("refused_rows", "refused", "source_check", "refused_by_klaviyo", "identity_conflicts")


def _model_facts(result: dict[str, Any]) -> dict[str, Any]:
    """What the model is told of a sync: the result without its file paths, and without refusal
    counts, consent conflicts or merged values that are zero (so the facts read as when the
    cassettes were made)."""

    def trim(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: trim(v) for k, v in value.items() if not (k in _REFUSAL_KEYS and v in (0, None))}
        return value

    # the missing consent column is said by render (its own line), not by the model: facts as recorded
    dropped = {"plan_file", "source", "missing_consent_column", "other_channel_consent"} | (
        {"double_opt_in"} if not result.get("double_opt_in") else set())
    dropped |= {k for k in ("consent_conflicts", "merged_values", "awaiting_confirmation", "identity_conflicts")
                if not (result.get(k) or {}).get("count")}
    return trim({k: v for k, v in result.items() if k not in dropped})  # type: ignore[no-any-return]


def summarize(ctx: Any, settings: Any, result: dict[str, Any]) -> str:
    """One paragraph: the template, or the model's words when asked for and available."""
    text = _template(result)
    model = getattr(ctx.model, "model", None)
    if not settings.summarize_with_model or model is None:
        return text
    facts = _model_facts(result)
    try:
        from langchain_core.messages import HumanMessage, SystemMessage

        reply = model.invoke([SystemMessage(ctx.prompt()), HumanMessage(fence("sync result", facts))])
    except Exception:  # a failing model must not fail a finished sync
        return text
    content = reply.content if isinstance(reply.content, str) else ""
    return content.strip() or text


def render(state: Mapping[str, Any]) -> str:
    """A plain-text view for ``personas run`` (also while paused for an approval)."""
    request = state.get("request") or {}
    plan = state.get("plan") or {}
    source = request.get("source") or {}
    where = source.get("path") or ", ".join(source.get("ids") or [])
    target = request.get("target_list_id")
    named = f"{request.get('target_name')} ({target})" if request.get("target_name") else target
    lines = [f"Segment sync: {source.get('kind')} {where} -> list {named}"]
    if request.get("mode") == "mirror":
        lines.append("Mode: mirror (members not in the source leave the list, each batch after approval)")
    else:
        lines.append("Mode: add-only (nobody leaves the list; sync with \"mode\": \"mirror\" to remove members "
                     "who are not in the source)")
    counts = (state.get("counts") or {}).get("source") or {}
    if counts:
        lines.append(f"Source: {counts.get('rows', 0)} rows, {counts.get('valid', 0)} valid, "
                     f"{counts.get('invalid', 0)} invalid, {counts.get('duplicates', 0)} duplicates")
    if column := (state.get("counts") or {}).get("missing_consent_column"):
        lines.append(f"  {missing_consent(column, (state.get('counts') or {}).get('other_channel_consent'))}")
    if plan:
        batches = plan.get("batches") or {}
        lines.append(f"Target list: {plan.get('members', 0)} members before, {plan.get('unchanged', 0)} of them in "
                     "the source")
        samples = plan.get("samples") or {}
        for name, kinds in KINDS.items():
            n = sum(batches.get(k, 0) for k in kinds)
            sample = samples.get(name) or []
            more = ", ..." if plan.get(name, 0) > len(sample) else ""  # only when some are not shown
            lines.append(f"  {name:<10} {plan.get(name, 0):>7} in {n} batch(es)"
                         + (f": {', '.join(sample)}{more}" if sample else ""))
        if (kept := plan.get("kept_invalid") or {}).get("count"):
            lines.append(f"  kept       {kept['count']:>7} members whose row is invalid (not removed): "
                         + ", ".join(kept.get("sample") or []))
        if no_email := plan.get("consent_without_email"):
            lines.append(f"  no email {no_email:>9} consenting, not subscribed (the consent column is email consent, "
                         "and they give no email): " + ", ".join(samples.get("consent_without_email") or []))
        if (held := plan.get("withheld_for_invalid_rows") or {}).get("count"):
            lines.append(f"  withheld {held['count']:>9} consenting, not subscribed: another of their rows is invalid: "
                         + ", ".join(held.get("sample") or []))
        if (still := plan.get("subscribed_without_consent") or {}).get("count"):
            lines.append(f"  no consent {still['count']:>7} in the source, still subscribed in Klaviyo (never "
                         "unsubscribed here): " + ", ".join(still.get("sample") or []))
        if plan.get("suppressed"):
            lines.append(f"  suppressed {plan['suppressed']:>7} not subscribed: "
                         + ", ".join(samples.get("suppressed") or []))
        waiting = plan.get("awaiting_confirmation") or {}
        if waiting.get("count"):
            lines.append(f"  awaiting {waiting['count']:>9} asked before, not confirmed yet (not asked again): "
                         + ", ".join(waiting.get("sample") or []))
        for c in (plan.get("consent_conflicts") or {}).get("people", [])[:10]:
            yes, no = c["consenting"], c["not_consenting"]
            lines.append(f"  consent conflict: {c['person']}: {_rows(yes)} consent{'s' if len(yes) == 1 else ''}, "
                         f"{_rows(no)} {'does' if len(no) == 1 else 'do'} not (not subscribed)")
        for m in (plan.get("merged_values") or {}).get("people", [])[:10]:
            lines.append(f"  merged: {m['person']}: {_rows(m['rows'])}: {', '.join(m['fields'])} from the last row "
                         "that gives it")
        found = (state.get("result") or {}).get("invalid") or plan.get("invalid") or {}
        invalid = found.get("rows", [])
        for row in invalid[:10]:
            lines.append(f"  invalid row {row['row']}: {row['field']}: {row['problem']}")
        if (total := max(int(found.get("count") or 0), len(invalid))) > len(invalid[:10]):
            kept = (state.get("result") or {}).get("plan_file")
            lines.append(f"  and {total - len(invalid[:10])} more invalid rows"
                         + (f", every one in the table invalid of {kept}" if kept else ""))
    if state.get("result"):
        result = state["result"]
        calls = result.get("calls") or {}
        lines.append(f"Calls: {calls.get('reads', 0)} reads, {calls.get('writes', 0)} writes")
        for p in result.get("problems") or []:
            lines.append(f"  batch {p['batch']} ({p['kind']}, {p['profiles']}): {p['status']}: {p['detail']}")
        lines.append(state.get("summary") or "")
    elif state.get("batches_total"):
        lines.append(f"Applying: batch {state.get('cursor')} of {state['batches_total']}")
    return "\n".join(lines)
