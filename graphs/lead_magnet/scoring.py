"""The transparent lead score: every factor with its points and why, summed, then banded.

Inputs are the form's answers, the profile's properties, engagement in the last N days (opens,
clicks, orders) and Klaviyo's predictive analytics when present. Nothing is learned or hidden: the
persona's settings say how many points each signal is worth, and the result lists each one.
An answer is read in whatever shape the form sends it (a list from a multi-select, a number, true/false:
see ``_Reading``); one it cannot read is named in its factor, never a silent 0.
"""

from __future__ import annotations

import json
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from klaviyo_toolkit.redact import clip

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


#: An amount as a form or a scoring table writes it (after ``_norm``): ``500``, ``1,000``, ``2.5``, ``$25k``.
_AMOUNT = r"[$€£]?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*([km]?)"
_NUMBER = re.compile(_AMOUNT)
#: A table key giving a range: ``201-1000`` (both ends in it), or one side: ``1000+``, ``<$1k``, ``>=50``.
_BETWEEN = re.compile(rf"{_AMOUNT}\s*(?:-|–|—|to)\s*{_AMOUNT}")
_SIDED = re.compile(rf"(<=|>=|<|>)?\s*{_AMOUNT}\s*(\+)?")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "+": operator.ge,
}


def _amounts(groups: Sequence[str | None]) -> list[float]:
    """The numbers of ``_AMOUNT`` matches' groups (whole, fraction, k/m: three per amount)."""
    out = []
    for n in range(0, len(groups), 3):
        whole, fraction, unit = groups[n : n + 3]
        scale = {"k": 1e3, "m": 1e6}.get(unit or "", 1.0)
        out.append(float((whole or "0").replace(",", "") + (fraction or "")) * scale)
    return out


def _number(text: str) -> float | None:
    """``text`` (normalised) as a number when it is one amount (``500``, ``1,000``, ``$30k``), else None."""
    found = _NUMBER.fullmatch(text)
    return _amounts(found.groups())[0] if found else None


def _in_range(key: str, number: float) -> bool:
    """Whether ``number`` lies in the range a table key (normalised) writes; a key of no range: False."""
    if found := _BETWEEN.fullmatch(key):
        low, high = _amounts(found.groups())
        return low <= number <= high
    found = _SIDED.fullmatch(key)
    if found is None or bool(found[1]) == bool(found[5]):  # a plain amount ("5") or "<5+": no range
        return False
    return _COMPARE[found[1] or found[5]](number, _amounts(found.groups()[1:4])[0])


def _span(key: str) -> tuple[float, float] | None:
    """The numbers a table key (normalised) writes a range of, as (low, high) with an open side
    infinite; None for a key that is no range (an answer, a plain amount)."""
    if found := _BETWEEN.fullmatch(key):
        low, high = _amounts(found.groups())
        return low, high
    found = _SIDED.fullmatch(key)
    if found is None or bool(found[1]) == bool(found[5]):
        return None
    edge = _amounts(found.groups()[1:4])[0]
    return (-math.inf, edge) if (found[1] or "").startswith("<") else (edge, math.inf)


def reversed_range(keys: Iterable[str]) -> str | None:
    """The first key of a table written high to low (``50-1``, ``$5k-$1k``), or None: no number lies
    between its ends that way round, so its points would never count."""
    return next((key for key in keys if (span := _span(_norm(key))) is not None and span[0] > span[1]), None)


def overlapping_ranges(keys: Iterable[str]) -> tuple[str, str] | None:
    """Two keys of one table whose ranges share more than an end (``1-50`` and ``25-100``; ``$1k-$5k``
    and ``$5k-$25k`` only touch, as tables write them), or None: a number in both would score by
    whichever gives more, which no one reading the table would guess."""
    spans = [(key, span) for key in keys if (span := _span(_norm(key))) is not None]
    for n, (key, (low, high)) in enumerate(spans):
        for other, (low2, high2) in spans[n + 1:]:
            if max(low, low2) < min(high, high2):
                return key, other
    return None


class _Reading:
    """An answer (or profile property) read against its scoring table.

    A form sends an answer in several shapes: text, a list for a checkbox or multi-select field (or one
    comma-joined text, from some form builders), a number, true/false, nothing (a field left empty).
    Every option the answer gives is looked up; a number also lies in a table's ranges (``201-1000``,
    ``1000+``, ``<$1k``) and true/false is the table's ``true``/``yes`` (``false``/``no``). Of several
    options, the **best-scoring one counts**: a multi-select says every interest the lead has, and the
    strongest is what qualifies them (a team outfitter who also wants personal gear is still one); a sum
    would let a lead who ticks every box outscore every table row, whose points are written for one
    answer. A part of another shape (an object) cannot be read: it is named, never a silent 0.
    """

    def __init__(self, table: Mapping[str, int], value: Any) -> None:
        self.table = {_norm(k): (k, v) for k, v in table.items()}
        self.options: list[Any] = []
        self.unreadable: list[str] = []
        self._collect(value)
        self.best = self._best(self.options)
        if self.best is None and len(self.options) == 1 and isinstance(self.options[0], str) and "," in self.options[0]:
            pieces = [p for p in self.options[0].split(",") if p.strip()]  # "guided trips, gear rental"
            if (best := self._best(pieces)) is not None:
                self.options, self.best = pieces, best

    def _collect(self, value: Any) -> None:
        """Gather ``value``'s options (a list's items, nested lists flattened) and its unreadable parts."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return  # a field left empty, or an empty option of a multi-select
        if isinstance(value, (list, tuple)):
            for item in value:
                self._collect(item)
        elif isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
            self.options.append(value)
        else:
            self.unreadable.append(_KINDS.get(type(value), "a value of another kind"))

    def _entries(self, option: Any) -> list[tuple[str, int]]:
        """The (table key, points) entries an option is."""
        if isinstance(option, bool):
            return [self.table[t] for t in (("true", "yes") if option else ("false", "no")) if t in self.table]
        if isinstance(option, float) and option.is_integer():
            option = int(option)  # 5.0 is the table's "5"
        text = _norm(option)
        if text in self.table:
            return [self.table[text]]
        try:
            number = _number(text) if isinstance(option, str) else float(option)
        except OverflowError:  # an integer past a double's range lies in no range a table can write
            return []
        if number is None:
            return []
        return [entry for key, entry in self.table.items() if _in_range(key, number)]

    def _best(self, options: Sequence[Any]) -> tuple[str, int] | None:
        entries = [entry for option in options for entry in self._entries(option)]
        return max(entries, key=lambda e: e[1]) if entries else None  # max keeps the first of equals

    def shown(self, value: Any) -> str:
        """The answer as the factor shows it: text as given, a list's options joined, else as JSON."""
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and not self.unreadable:
            return ", ".join(o if isinstance(o, str) else json.dumps(o) for o in self.options)
        return clip(json.dumps(value, ensure_ascii=False, default=str), 200)

    def factor(self, what: str, value: Any, why: str) -> dict[str, Any]:
        """The factor of this answer: ``what`` ("answer x", "profile y"), its points, and why in words that
        quote nothing of the answer itself (the why reaches the model outside the fenced data)."""
        shown = self.shown(value)
        notes = [f"of its {len(self.options)} options, the best-scoring counts"] if len(self.options) > 1 else []
        if self.unreadable:
            kinds = " and ".join(dict.fromkeys(self.unreadable))
            notes.append(f"{'part of the answer' if self.options else 'the answer'} is {kinds}, which the scorer "
                         "cannot read (0 points); send the field as text or a list of options")
        if self.best is None:
            reason = ["answer not in the scoring table"] if self.options else []
            return {"factor": f"{what} = {shown}", "points": 0, "why": "; ".join(reason + notes)}
        key, points = self.best
        counted = "" if _norm(shown) == _norm(key) else f" (scored as {key!r})"
        return {"factor": f"{what} = {shown}{counted}", "points": points, "why": "; ".join([why, *notes])}


_KINDS = {dict: "an object", float: "a number that is not finite"}


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
        reading = _Reading(table, value) if found else None
        if reading is None or not (reading.options or reading.unreadable):
            factors.append(
                {"factor": f"answer {field} missing", "points": 0, "why": "the form did not ask or the lead skipped it"}
            )
        else:
            factors.append(reading.factor(f"answer {field}", value, "form answer"))
    props = profile.get("properties") or {}
    for field, table in rules.properties.items():
        if field in props:
            reading = _Reading(table, props[field])
            if (reading.best and reading.best[1]) or reading.unreadable:  # a value not in the table: no factor
                factors.append(reading.factor(f"profile {field}", props[field], "profile property"))
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
