"""The campaign reporter: a daily rollup of email campaign performance for one local day.

::

    prepare -> fetch_reports -> load_campaigns -> analyse -> summarize -> write_files

- **prepare** refuses, before any call, a date that is not a day from 2012-01-01 on (``dates.py``),
  reads the account (its id, time zone and currency) with ``get_accounts``, settles the date (input
  ``{"date": "YYYY-MM-DD"}``, not after today there; default yesterday in the account's time zone)
  and the local day's bounds, and looks the conversion metrics up by name with ``get_metrics`` (when the
  account has none of them, another metric stands in for the one Klaviyo requires, and the report
  has every figure but conversions and revenue);
- **fetch_reports** makes ONE ``query_campaign_values`` call per conversion metric for every
  campaign at once (email only, grouped by campaign, message and channel), following ``page_cursor`` only
  if Klaviyo pages the result; finished days come from, and go to, a SQLite cache (``cache.py``): a
  second run soon after makes no reporting call, and a day is fetched again until it has settled
  (the persona's ``cache`` settings), as Klaviyo keeps attributing activity for days after a send. A
  spent daily limit (225 calls) becomes a report section, and a cached copy that could not be
  fetched again is used and said to be older;
- **load_campaigns** names the campaigns with ``get_campaigns`` (email only, as Klaviyo requires;
  not a reporting call);
- **analyse** builds rows and totals and finds anomalies by the persona's thresholds;
- **summarize** asks the model for a short summary citing figure ids (campaign names fenced), or
  fills in a template when there is no model or it fails, and says so;
- **write_files** writes the markdown report, the CSV and the PNG chart.

Progress goes to ``runtime.stream_writer`` as ``{"phase", "done", "total", "unit"}`` events (the
account and metric lookups, the reporting calls, the campaign lookups, the files written), which
``personas run`` draws as progress bars.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import sqlite3
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from klaviyo_toolkit.errors import (
    DailyLimitExhaustedError,
    InvalidArgumentError,
    KlaviyoError,
    RateLimitError,
    stops_the_run,
)
from klaviyo_toolkit.filters import quoted
from personas.kernel.context import PersonaContext
from personas.kernel.privacy import describe_error

from .cache import CachedReport, ReportCache, current
from .dates import report_day
from .figures import ENGAGEMENT_ONLY, anomalies, merge_rows, totals
from .operations import OPERATIONS, REPORTING_TOOL
from .outputs import no_activity_text, output_base, unwritable, write_outputs
from .settings import Settings
from .summary import (
    MAX_SUMMARY_CHARS,
    build_figures,
    cited,
    model_input,
    suspicious,
    template_summary,
    unsupported_numbers,
)

__all__ = ["OPERATIONS", "REPORTING_TOOL", "ReportInputError", "ReportSettingsError", "ReportState", "build_graph",
           "cache_path"]

#: Klaviyo requires campaign_id and campaign_message_id in group_by; send_channel keeps email apart.
GROUP_BY = ["campaign_id", "campaign_message_id", "send_channel"]
EMAIL_ONLY = 'equals(send_channel,"email")'
_IDS_PER_LOOKUP = 50


class ReportInputError(InvalidArgumentError):
    """The input is not a usable report request."""

    def __init__(self, field: str, fix: str) -> None:
        super().__init__("campaign-report input", [(field, fix)])


class ReportSettingsError(InvalidArgumentError):
    """A persona setting the report cannot be made with (the field, then what is wrong and the fix)."""

    def __init__(self, field: str, fix: str) -> None:
        super().__init__("the campaign reporter's settings", [(field, fix)])


def _output_problem(settings: Settings, base: Path) -> ReportSettingsError | None:
    """The error naming ``output_dir`` when report files cannot be written under ``base``, else None."""
    why = unwritable(base)
    if why is None:
        return None
    fix = ("set output_dir in the persona's settings to a folder you can write to, or leave it out for "
           "$PERSONAS_HOME/reports" if settings.output_dir else
           "set output_dir in the persona's settings to a folder you can write to (the default is under "
           "PERSONAS_HOME)")
    return ReportSettingsError("output_dir", f"{why}; {fix}")


class ReportState(TypedDict, total=False):
    input: dict[str, Any]
    date: str
    timezone: str
    account_id: str
    currency: str | None
    timeframe: dict[str, str]
    complete_day: bool
    metrics: list[str]
    metric_ids: dict[str, str]
    engagement_metric: dict[str, str] | None
    statistics: list[str]
    extra_statistics: list[str]
    reports: dict[str, dict[str, Any]]
    reports_available: bool
    reporting_calls: int
    cache_hit: bool
    settles_at: str | None
    limit: dict[str, Any]
    campaign_info: dict[str, dict[str, Any]]
    campaigns: list[dict[str, Any]]
    totals: dict[str, Any]
    anomalies: list[dict[str, Any]]
    empty_text: str | None
    summary: dict[str, Any]
    files: dict[str, str]
    notes: list[str]
    model: str


def _settings(runtime: Runtime[PersonaContext]) -> Settings:
    settings = runtime.context.settings
    assert isinstance(settings, Settings)
    return settings


def cache_path(home: Path) -> Path:
    """Where the reporting cache lives under ``$PERSONAS_HOME``."""
    return home / "cache" / "campaign_reports.sqlite"


def _all(kit: Any, name: str, **args: Any) -> tuple[list[dict[str, Any]], int]:
    """Every resource of a paged list call (and the number of calls it took)."""
    items: list[dict[str, Any]] = []
    calls = 0
    cursor = None
    while True:
        calls += 1
        resp = kit.fetch(name, **args, **({"page_cursor": cursor} if cursor else {}))
        items += list(resp.resources())
        cursor = resp.next_cursor
        if not cursor:
            return items, calls


def _cached(cache: ReportCache, notes: list[str], method: str, *args: Any) -> Any:
    """A cache read or write; a broken cache file is noted and worked around, never fatal."""
    try:
        return getattr(cache, method)(*args)
    except sqlite3.Error as exc:
        note = f"The report cache at {cache.path} could not be used ({exc}); the figures came from Klaviyo."
        if note not in notes:
            notes.append(note)
        return None


# -- nodes -------------------------------------------------------------------------------------------
def prepare(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    ctx = runtime.context
    settings = _settings(runtime)
    notes: list[str] = []
    raw = state.get("date") or (state.get("input") or {}).get("date")
    asked: _dt.date | None = None
    if raw:  # refused before any call, as ReportInput refuses it (dates.py)
        utc_yesterday = _dt.datetime.fromtimestamp(ctx.clock.time(), _dt.UTC).date() - _dt.timedelta(days=1)
        try:
            asked = report_day(raw, utc_yesterday)
        except ValueError as exc:
            raise ReportInputError("date", str(exc)) from None
    problem = _output_problem(settings, output_base(settings.output_dir, ctx.home))
    if problem is not None:  # before any call: found at the last step, the run's reporting calls were spent
        raise problem
    runtime.stream_writer({"phase": "prepare", "done": 0, "total": 2, "unit": "lookups"})
    accounts, _ = _all(ctx.toolkit, "get_accounts")
    if not accounts:
        raise KlaviyoError("get_accounts returned no account for this API key")
    account = accounts[0]
    attrs = account.get("attributes") or {}
    tz = str(attrs.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        notes.append(f"The account's time zone {tz!r} is not an IANA zone; the report uses UTC.")
        tz, zone = "UTC", ZoneInfo("UTC")
    today = _dt.datetime.fromtimestamp(ctx.clock.time(), zone).date()
    day = asked or today - _dt.timedelta(days=1)
    if day > today:
        raise ReportInputError(
            "date",
            f"{day} has not started yet in the account's time zone {tz} "
            f"(today there is {today}); pick {today} or earlier",
        )
    complete = day < today
    if not complete:
        notes.append(f"{day} is today in {tz} and not over: the figures are partial and not cached.")
    start = _dt.datetime.combine(day, _dt.time(), zone)
    end = _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(), zone)
    metric_ids: dict[str, str] = {}
    runtime.stream_writer({"phase": "prepare", "done": 1, "total": 2, "unit": "lookups"})
    found, _ = _all(ctx.toolkit, "get_metrics", fields_metric=["name", "integration"])
    for name in settings.conversion_metrics:
        matches = [m for m in found if (m.get("attributes") or {}).get("name") == name]
        if not matches:
            notes.append(f"No metric named {name!r} in this account: its conversions are left out "
                         "(check the persona's conversion_metrics against get_metrics).")
            continue
        metric_ids[name] = str(matches[0]["id"])
        if len(matches) > 1:
            notes.append(f"{len(matches)} metrics are named {name!r}; the report uses {matches[0]['id']}.")
    stand_in = None
    if not metric_ids and found:  # deliveries, opens and clicks do not depend on the conversion metric
        stand_in = _stand_in(found)
        notes.append(f"None of the conversion metrics is in this account, so the report has no conversion or "
                     f"revenue figures; its other figures come from one reporting call with {stand_in[0]!r} "
                     "standing in for the conversion metric Klaviyo requires.")
    runtime.stream_writer({"phase": "prepare", "done": 2, "total": 2, "unit": "lookups"})
    return {
        "date": day.isoformat(), "timezone": tz, "account_id": str(account.get("id")),
        "currency": attrs.get("preferred_currency"), "complete_day": complete,
        "timeframe": {"start": start.isoformat(), "end": end.isoformat()},
        "metrics": list(settings.conversion_metrics), "metric_ids": metric_ids,
        "engagement_metric": {"name": stand_in[0], "id": stand_in[1]} if stand_in else None,
        "statistics": settings.requested_statistics(), "extra_statistics": settings.extra_statistics(),
        "model": ctx.model.description, "notes": notes, "reporting_calls": 0,
    }


def _stand_in(found: list[dict[str, Any]]) -> tuple[str, str]:
    """(name, id) of the metric a report without conversion metrics asks with: Klaviyo requires a
    ``conversion_metric_id``, and only the conversion figures depend on it (they are dropped)."""
    named = {str((m.get("attributes") or {}).get("name")): str(m["id"]) for m in found}
    name = next((n for n in ("Received Email", "Opened Email") if n in named), None) or min(named)
    return name, named[name]


def _older_copy(hit: CachedReport, metric_id: str, why: str) -> dict[str, Any]:
    """A cached copy used because the day could not be fetched again (``why``)."""
    return {"metric_id": metric_id, "source": "cache", "results": hit.results, "fetched_at": hit.fetched_at,
            "refresh_failed": why}


def fetch_reports(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    ctx = runtime.context
    policy = _settings(runtime).cache
    notes = list(state.get("notes") or [])
    cache = ReportCache(cache_path(ctx.home))
    account, date, tz = state["account_id"], state["date"], state["timezone"]
    stats = state["statistics"]
    now = ctx.clock.time()
    day_end = _dt.datetime.fromisoformat(state["timeframe"]["end"]).timestamp()
    settle, recheck = policy.settle_days * 86400, policy.recheck_minutes * 60
    reports: dict[str, dict[str, Any]] = {}
    calls = 0
    limit: dict[str, Any] = {"exhausted": False}
    asked = dict(state["metric_ids"])
    stand_in = state.get("engagement_metric")
    if stand_in:  # no conversion metric in the account: one call for the figures that do not need one
        asked[ENGAGEMENT_ONLY] = stand_in["id"]
    total = len(asked)
    for done, (metric, metric_id) in enumerate(asked.items()):
        runtime.stream_writer({"phase": "fetch_reports", "done": done, "total": total, "unit": "metrics"})
        hit = _cached(cache, notes, "get", account, date, metric_id, tz, stats) if state["complete_day"] else None
        if hit is not None and current(hit.fetched_at, day_end, now, settle, recheck):
            reports[metric] = {"metric_id": metric_id, "source": "cache", "results": hit.results,
                               "fetched_at": hit.fetched_at}
            continue  # where figures came from is shown in the report's Source section, not given to the model
        if limit["exhausted"]:
            reports[metric] = _older_copy(hit, metric_id, "the reporting limit was reached") if hit else {
                "metric_id": metric_id, "source": "unavailable", "results": None,
                "error": "not tried: the reporting limit was reached"}
            continue
        try:
            results: list[dict[str, Any]] = []
            cursor = None
            while True:
                args: dict[str, Any] = {"statistics": stats, "timeframe": state["timeframe"],
                                        "conversion_metric_id": metric_id, "group_by": GROUP_BY,
                                        "filter": EMAIL_ONLY}
                if cursor:
                    args["page_cursor"] = cursor
                calls += 1
                resp = ctx.toolkit.fetch(REPORTING_TOOL, **args)
                results += list(((resp.data or {}).get("attributes") or {}).get("results") or [])
                cursor = resp.next_cursor
                if not cursor:
                    break
        except DailyLimitExhaustedError as exc:
            calls -= 1  # refused by the client's limiter before any request
            resets = exc.resets_at.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes")
            limit = {"exhausted": True, "kind": "daily", "limit": exc.limit,
                     "resets_at": exc.resets_at.isoformat(timespec="seconds"),
                     "reason": f"the reporting API's daily limit is spent ({REPORTING_TOOL} allows {exc.limit} calls "
                               f"a day per account); the next call is allowed at {resets} ({tz})"}
            reports[metric] = _older_copy(hit, metric_id, "the reporting limit was reached") if hit else {
                "metric_id": metric_id, "source": "unavailable", "results": None, "error": str(exc)}
            continue
        except RateLimitError as exc:  # Klaviyo's own 429, still there after the client's retries
            wait = f"; it asked to wait {exc.retry_after:.0f} s" if exc.retry_after else ""
            limit = {"exhausted": True, "kind": "http_429", "retry_after": exc.retry_after,
                     "reason": f"Klaviyo refused {REPORTING_TOOL} with 429 (rate limited{wait}); another client of "
                               "this account may have spent its 225 reporting calls for the day"}
            reports[metric] = _older_copy(hit, metric_id, "the reporting limit was reached") if hit else {
                "metric_id": metric_id, "source": "unavailable", "results": None, "error": str(exc)}
            continue
        except KlaviyoError as exc:
            if stops_the_run(exc):
                raise
            if hit:
                reports[metric] = _older_copy(hit, metric_id, str(exc))
                notes.append(f"The report for {metric!r} could not be fetched again ({exc}); its figures are the "
                             f"copy fetched {hit.fetched_at}, which may lack activity counted since.")
                continue
            reports[metric] = {"metric_id": metric_id, "source": "unavailable", "results": None, "error": str(exc)}
            notes.append(f"The report for {metric!r} failed: {exc}")
            continue
        fetched = _dt.datetime.fromtimestamp(ctx.clock.time(), _dt.UTC).isoformat(timespec="seconds")
        reports[metric] = {"metric_id": metric_id, "source": "api", "results": results, "fetched_at": fetched}
        if state["complete_day"]:
            _cached(cache, notes, "put", account, date, metric_id, tz, stats, results, fetched)
    runtime.stream_writer({"phase": "fetch_reports", "done": total, "total": total, "unit": "metrics"})
    if limit["exhausted"]:
        missing = [m for m, r in reports.items() if r["source"] == "unavailable"]
        older = [m for m, r in reports.items() if r.get("refresh_failed")]
        limit["missing_metrics"] = missing
        parts = [f"Figures for {', '.join(repr(m) for m in missing)} are missing"] if missing else []
        if older:
            parts.append(f"{'f' if missing else 'F'}igures for {', '.join(repr(m) for m in older)} are the cached "
                         "copy, which may lack activity counted since it was fetched")
        limit["detail"] = (
            f"No reporting call could be made: {limit['reason']}. {'; '.join(parts)}; run the report again later "
            "(finished days are then cached, so it costs nothing twice)."
        )
        notes.append(limit["detail"])
    available = [r for r in reports.values() if r["results"] is not None]
    cache_hit = bool(available) and all(r["source"] == "cache" for r in available)
    settles = day_end + settle
    settles_at = (f"{_dt.datetime.fromtimestamp(settles, ZoneInfo(tz)):%Y-%m-%d %H:%M} ({tz})"
                  if state["complete_day"] and now < settles else None)
    return {"reports": reports, "reporting_calls": calls, "cache_hit": cache_hit, "limit": limit,
            "reports_available": bool(available), "notes": notes, "settles_at": settles_at}


def load_campaigns(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    ctx = runtime.context
    notes = list(state.get("notes") or [])
    groupings = [r.get("groupings") or {} for rep in (state.get("reports") or {}).values()
                 for r in rep.get("results") or []]
    ids = list(dict.fromkeys(str(g["campaign_id"]) for g in groupings
                             if g.get("campaign_id") and g.get("send_channel", "email") == "email"))
    info: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        for i in range(0, len(ids), _IDS_PER_LOOKUP):
            runtime.stream_writer({"phase": "load_campaigns", "done": i, "total": len(ids), "unit": "campaigns"})
            chunk = ids[i: i + _IDS_PER_LOOKUP]
            found, _ = _all(ctx.toolkit, "get_campaigns",
                            filter=f"and(equals(messages.channel,'email'),any(id,{quoted(chunk)}))",
                            fields_campaign=["name", "send_time", "scheduled_at", "status"])
            for campaign in found:
                attrs = campaign.get("attributes") or {}
                info[str(campaign["id"])] = {"name": attrs.get("name"), "status": attrs.get("status"),
                                             "send_time": attrs.get("send_time") or attrs.get("scheduled_at")}
    except KlaviyoError as exc:
        if stops_the_run(exc):
            raise
        notes.append(f"Campaign names could not be read ({exc}); campaigns are shown by id.")
        failed = True
    runtime.stream_writer({"phase": "load_campaigns", "done": len(ids), "total": len(ids), "unit": "campaigns"})
    unknown = [cid for cid in ids if cid not in info]
    if unknown and not failed:
        notes.append(f"{len(unknown)} campaign(s) in the report were not found by get_campaigns: {', '.join(unknown)}.")
    return {"campaign_info": info, "notes": notes}


def analyse(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    settings = _settings(runtime)
    metrics = state.get("metrics") or []
    rows = merge_rows(state.get("reports") or {}, metrics, state.get("campaign_info") or {}, state["timezone"],
                      state.get("extra_statistics") or [])
    empty = None
    if not rows:
        empty = (no_activity_text(state["date"]) if state.get("reports_available")
                 else f"Campaign figures for {state['date']} are not available (see the notes).")
    return {"campaigns": rows, "totals": totals(rows, metrics), "anomalies": anomalies(rows, settings.thresholds),
            "empty_text": empty}


def summarize(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    ctx = runtime.context
    notes = list(state.get("notes") or [])
    figures, keys = build_figures(state)
    why = ""
    if ctx.model.model is None:
        why = "no model is configured"
    elif not state.get("campaigns"):
        why = "there were no campaign figures to summarize, so the model was not asked"
    else:
        try:
            given = model_input(state, figures, keys)
            messages = [SystemMessage(ctx.prompt()), HumanMessage(given)]
            reply = ctx.model.model.invoke(messages)
            content = reply.content
            text = content if isinstance(content, str) else " ".join(
                str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
            text = text.strip()
            if not text:
                raise ValueError("the model returned an empty summary")
        except Exception as exc:  # a failing model is reported, never a crash
            why = f"the model call failed: {describe_error(exc, 200)}"
            notes.append(f"The summary fell back to a template because {why}.")
        else:
            # a summary that carries links or instructions not in the data, or states a number that no
            # figure has (invented, or taken from a campaign's name), is not published
            flags = suspicious(text, given) + unsupported_numbers(text, state, figures)
            if flags:
                kinds = sorted({flag.split(" (")[0] for flag in flags})  # never repeat the planted text itself
                why = "the model's summary was withheld: it contains " + " and ".join(kinds)
                notes.append(f"The summary fell back to a template because {why}.")
                text = template_summary(state, figures, keys, why)
                used, _ = cited(text, figures)
                return {"summary": {"text": text, "written_by": "template", "figures": used, "reason": why,
                                    "flagged": flags}, "notes": notes}
            if len(text) > MAX_SUMMARY_CHARS:
                text = text[:MAX_SUMMARY_CHARS].rstrip() + " …"
                notes.append(f"The model's summary was cut to {MAX_SUMMARY_CHARS} characters.")
            used, unknown = cited(text, figures)
            if unknown:
                notes.append(f"The model cited figure ids that do not exist: {', '.join(unknown)}.")
            if not used:
                notes.append("The model's summary cites no figure ids; check its claims against the table.")
            return {"summary": {"text": text, "written_by": "model", "figures": used, "model": ctx.model.description,
                                "answered_by": ctx.model.kind},
                    "notes": notes}
    text = template_summary(state, figures, keys, why)
    used, _ = cited(text, figures)
    return {"summary": {"text": text, "written_by": "template", "figures": used, "reason": why}, "notes": notes}


def write_files(state: ReportState, runtime: Runtime[PersonaContext]) -> ReportState:
    ctx = runtime.context
    settings = _settings(runtime)
    base = output_base(settings.output_dir, ctx.home)
    try:
        files = write_outputs(state, base / state["date"], settings.thresholds, settings.chart_campaigns)
    except OSError as exc:  # the folder went away or was locked since prepare checked it
        problem = _output_problem(settings, base / state["date"])
        raise (problem or ReportSettingsError("output_dir", f"the report files could not be written ({exc})")) \
            from exc
    runtime.stream_writer({"phase": "write_files", "done": len(files), "total": len(files), "unit": "files"})
    return {"files": files}


def build_graph(checkpointer: Any = None) -> Any:
    graph = StateGraph(ReportState, context_schema=PersonaContext)
    order = (("prepare", prepare), ("fetch_reports", fetch_reports), ("load_campaigns", load_campaigns),
             ("analyse", analyse), ("summarize", summarize), ("write_files", write_files))
    for name, fn in order:
        graph.add_node(name, fn)
    graph.add_edge(START, order[0][0])
    for (a, _), (b, _) in itertools.pairwise(order):
        graph.add_edge(a, b)
    graph.add_edge(order[-1][0], END)
    return graph.compile(checkpointer=checkpointer)
