"""The transparent lead score: every factor with its points and why, summed, then banded.

Inputs are the form's answers, the profile's properties, engagement in the last N days (opens,
clicks, orders) and Klaviyo's predictive analytics when present. Nothing is learned or hidden: the
persona's settings say how many points each signal is worth, and the result lists each one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from .settings import Settings


def _norm(value: Any) -> str:
    """A value as compared with the scoring table: NFKC (fullwidth digits, no-break spaces), spacing
    collapsed, casefolded, so "This\u00a0Month" scores as "this month"."""
    return " ".join(unicodedata.normalize("NFKC", str(value)).split()).casefold()


def _key(name: str) -> str:
    """An answer's field name as matched: " Company Size" and "company-size" are ``company_size``."""
    return re.sub(r"[\s_-]+", "_", _norm(name)).strip("_")


def _answer(answers: Mapping[str, Any], field: str) -> tuple[bool, Any]:
    """(found, value) of the answer to ``field``: the exact key first, else one spelled differently."""
    if field in answers:
        return True, answers[field]
    wanted = _key(field)
    for name, value in answers.items():
        if _key(str(name)) == wanted:
            return True, value
    return False, None


def score_lead(
    settings: Settings,
    answers: Mapping[str, Any],
    profile: Mapping[str, Any],
    recent_metrics: Sequence[str],
) -> dict[str, Any]:
    """{total, band, allowed_sequences, factors: [{factor, points, why}]}."""
    rules = settings.scoring
    factors: list[dict[str, Any]] = []
    if rules.base:
        factors.append({"factor": "base", "points": rules.base, "why": "starting points for every lead"})
    for field, table in rules.answers.items():
        found, value = _answer(answers, field)
        if found:
            points = {_norm(k): v for k, v in table.items()}.get(_norm(value))
            if points is not None:
                factors.append({"factor": f"answer {field} = {value}", "points": points, "why": "form answer"})
            else:
                factors.append(
                    {"factor": f"answer {field} = {value}", "points": 0, "why": "answer not in the scoring table"}
                )
        else:
            factors.append(
                {"factor": f"answer {field} missing", "points": 0, "why": "the form did not ask or the lead skipped it"}
            )
    props = profile.get("properties") or {}
    for field, table in rules.properties.items():
        if field in props:
            points = {_norm(k): v for k, v in table.items()}.get(_norm(props[field]))
            if points:
                factors.append(
                    {"factor": f"profile {field} = {props[field]}", "points": points, "why": "profile property"}
                )
    eng = rules.engagement
    counts = {"Opened Email": 0, "Clicked Email": 0, "Placed Order": 0}
    for name in recent_metrics:
        if name in counts:
            counts[name] += 1
    engagement = min(
        eng.cap,
        counts["Opened Email"] * eng.opened_email
        + counts["Clicked Email"] * eng.clicked_email
        + counts["Placed Order"] * eng.placed_order,
    )
    if engagement:
        factors.append(
            {
                "factor": f"engagement in {settings.engagement_days} days",
                "points": engagement,
                "why": f"{counts['Opened Email']} opens, {counts['Clicked Email']} clicks, "
                f"{counts['Placed Order']} orders "
                f"(capped at {eng.cap})",
            }
        )
    pred = profile.get("predictive_analytics") or {}
    clv = pred.get("predicted_clv")
    if isinstance(clv, (int, float)) and clv >= rules.predictive.high_clv_threshold:
        factors.append(
            {
                "factor": f"predicted CLV {clv:.0f}",
                "points": rules.predictive.high_clv_points,
                "why": f"at or above {rules.predictive.high_clv_threshold:.0f}",
            }
        )
    churn = pred.get("churn_probability")
    if isinstance(churn, (int, float)) and churn >= rules.predictive.churn_risk_threshold:
        factors.append(
            {
                "factor": f"churn probability {churn:.2f}",
                "points": rules.predictive.churn_risk_points,
                "why": f"at or above {rules.predictive.churn_risk_threshold}",
            }
        )
    if not profile.get("email"):
        factors.append(
            {
                "factor": "no email address",
                "points": rules.missing_email_points,
                "why": "email sequences cannot reach this lead",
            }
        )
    total = sum(int(f["points"]) for f in factors)
    band = settings.band_for(total)
    return {"total": total, "band": band.name, "allowed_sequences": list(band.sequences), "factors": factors}
