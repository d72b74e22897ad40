"""Settings of the lead-magnet sequencer persona: sequences, score bands, scoring rules, timing."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hhmm(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f"{value!r} is not a time of day; write it as HH:MM, e.g. 09:00")
    return value


class Sequence(_Strict):
    """A follow-up sequence: a flow in Klaviyo started by the trigger metric with ``sequence = name``."""

    name: str
    description: str
    first_touchpoint: str = Field(description="What the first message is, for the decision record.")


class Band(_Strict):
    """A score band: leads scoring at least ``min_score`` (and under the next band) may get ``sequences``."""

    name: str
    min_score: int
    sequences: list[str] = Field(min_length=1)


class Engagement(_Strict):
    opened_email: int = 2
    clicked_email: int = 5
    placed_order: int = 10
    #: The most points engagement gives; at least 0 (a negative cap took points from every lead, even
    #: one with no activity at all).
    cap: int = Field(25, ge=0)


class Predictive(_Strict):
    high_clv_threshold: float = 500.0
    high_clv_points: int = 10
    churn_risk_threshold: float = 0.6
    churn_risk_points: int = -10


class Scoring(_Strict):
    """Points per form answer and profile property value, engagement in the window, predictions."""

    base: int = 0
    answers: dict[str, dict[str, int]] = Field(default_factory=dict)
    properties: dict[str, dict[str, int]] = Field(default_factory=dict)
    engagement: Engagement = Field(default_factory=Engagement)
    predictive: Predictive = Field(default_factory=Predictive)
    missing_email_points: int = -20


class Window(_Strict):
    start: str = "09:00"
    end: str = "17:00"
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        return _hhmm(value)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d not in WEEKDAYS]
        if bad or not value:
            raise ValueError(f"days must be some of {', '.join(WEEKDAYS)}")
        return value


class QuietHours(_Strict):
    start: str = "21:00"
    end: str = "08:00"

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        return _hhmm(value)


def _minute(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def _sendable_minutes(window: Window, quiet: QuietHours) -> int:
    """How many minutes of the window's day fall outside quiet hours (which may wrap past midnight):
    the window's length less its overlap with each quiet span of the day."""
    start, end = _minute(window.start), _minute(window.end)
    qs, qe = _minute(quiet.start), _minute(quiet.end)
    spans = [(qs, qe)] if qs <= qe else [(qs, 24 * 60), (0, qe)]
    return max(0, end - start) - sum(max(0, min(end, b) - max(start, a)) for a, b in spans)


def _refuse(loc: tuple[str | int, ...], given: Any, problem: str) -> NoReturn:
    """Refuse the settings at the field ``loc`` (``bands[1].min_score``), which the persona's error names
    (with its line): a model validator's own errors name only ``settings``."""
    error = PydanticCustomError("lead_settings", "{problem}", {"problem": problem})
    raise ValidationError.from_exception_data("Settings", [InitErrorDetails(type=error, loc=loc, input=given)])


def _check_sequences(settings: Settings) -> None:
    """Each sequence named once: the model picks by name, the policy allows by name."""
    seen: dict[str, int] = {}
    for n, seq in enumerate(settings.sequences):
        if seq.name in seen:
            _refuse(("sequences", n, "name"), seq.name,
                    f"{seq.name!r} is already the name of sequences[{seen[seq.name]}]; give each sequence its own name")
        seen[seq.name] = n


def _score_bounds(scoring: Scoring) -> tuple[int, int | None]:
    """(the highest score the scoring rules can give, the lowest or None when unbounded): every answer and
    property at its best (worst) row or missing (0), engagement at its cap (unbounded below when an
    event takes points), and each prediction and the missing-email points when they add (take) points."""
    tables = [*scoring.answers.values(), *scoring.properties.values()]
    eng, pred = scoring.engagement, scoring.predictive
    per_event = (eng.opened_email, eng.clicked_email, eng.placed_order)
    flat = (pred.high_clv_points, pred.churn_risk_points, scoring.missing_email_points)
    high = scoring.base + sum(max([0, *t.values()]) for t in tables) + sum(max(0, p) for p in flat)
    high += eng.cap if any(p > 0 for p in per_event) else 0
    if any(p < 0 for p in per_event):
        return high, None
    return high, scoring.base + sum(min([0, *t.values()]) for t in tables) + sum(min(0, p) for p in flat)


def _check_bands(settings: Settings) -> None:
    """Every band can be given: each names sequences there are, has a name and a min_score of its own, and
    lies within the scores the scoring rules can give (a band above the best score, or below a band
    that already starts at the lowest, would never be given, and its sequences never start)."""
    names = {s.name for s in settings.sequences}
    bands = settings.bands
    for n, band in enumerate(bands):
        for k, seq in enumerate(band.sequences):
            if seq not in names:
                unknown = [s for s in band.sequences if s not in names]
                _refuse(("bands", n, "sequences", k), seq, f"band {band.name!r} names unknown sequence(s) {unknown}; "
                        f"sequences: {sorted(names)}")
        for m, other in enumerate(bands[:n]):
            if other.name == band.name:
                _refuse(("bands", n, "name"), band.name,
                        f"{band.name!r} is already the name of bands[{m}]; give each band its own name")
            if other.min_score == band.min_score:
                _refuse(("bands", n, "min_score"), band.min_score,
                        f"{band.min_score} is also the min_score of bands[{m}] ({other.name!r}), so band "
                        f"{band.name!r} could never be given (a score of {band.min_score} or more is "
                        f"{other.name!r}); give each band its own min_score")
    if not any(b.min_score <= 0 for b in bands):
        _refuse(("bands",), [b.min_score for b in bands], "one band must start at 0 or below so every score has a band")
    high, low = _score_bounds(settings.scoring)
    ordered = sorted(range(len(bands)), key=lambda i: bands[i].min_score, reverse=True)
    for above, n in zip([None, *ordered], ordered, strict=False):
        band = bands[n]
        if band.min_score > high and n != ordered[-1]:  # the lowest band takes every score under the others
            _refuse(("bands", n, "min_score"), band.min_score,
                    f"band {band.name!r} could never be given: no lead can score {band.min_score}, the most the "
                    f"scoring settings give is {high}; lower its min_score or give more points in scoring")
        if above is not None and low is not None and bands[above].min_score <= low:
            _refuse(("bands", n, "min_score"), band.min_score,
                    f"band {band.name!r} could never be given: the lowest score the scoring settings give is {low}, "
                    f"already band {bands[above].name!r} (min_score {bands[above].min_score}); raise the min_score "
                    f"of band {bands[above].name!r} above {low} or remove band {band.name!r}")


#: A range key's two ends and what joins them (``50-1``, ``$5k – $1k``, ``50 to 1``), to write it the other way round.
_RANGE_ENDS = re.compile(r"(.+?)\s*(-|–|—|to)\s*(.+)", re.IGNORECASE)


def _check_tables(scoring: Scoring) -> None:
    """Each answer field, and each answer of a table, given once as the scorer reads them (``_key`` and
    ``_norm``: case, spacing, width): "Guide" and "guide " in one table had one row silently win."""
    from .scoring import _key, _norm, overlapping_ranges, reversed_range  # here: scoring.py imports this module

    for kind, normal in (("answers", _key), ("properties", None)):
        fields: dict[str, str] = {}
        for name, table in getattr(scoring, kind).items():
            if normal is not None and (first := fields.setdefault(normal(name), name)) != name:
                _refuse(("scoring", kind, name), name, f"{name!r} is the answer field {first!r} spelt another way "
                        "(an answer's field is matched without regard to case, spaces, - and _); give it once")
            rows: dict[str, str] = {}
            for key in table:
                if (same := rows.setdefault(_norm(key), key)) != key:
                    _refuse(("scoring", kind, name, key), key,
                            f"{key!r} is {same!r} spelt another way (values are compared without regard to "
                            "case, spacing or width), so one of their points would never count; give it once")
            if (backwards := reversed_range(table)) is not None:
                ends = _RANGE_ENDS.fullmatch(backwards.strip())
                joint = "" if ends is None else f" {ends[2]} " if ends[2].lower() == "to" else ends[2]
                fix = "low-high" if ends is None else f"{ends[3]}{joint}{ends[1]}"
                _refuse(("scoring", kind, name, backwards), backwards,
                        f"the range {backwards!r} runs from high to low, so no number lies in it and its points "
                        f"never count; write it low to high: {fix!r}")
            if (pair := overlapping_ranges(table)) is not None:
                _refuse(("scoring", kind, name, pair[1]), pair[1],
                        f"the range {pair[1]!r} overlaps the range {pair[0]!r} (a number in both would score "
                        "as whichever gives more); make the ranges meet without overlapping, e.g. 1-50 and 51-200")


class Settings(_Strict):
    """Everything the sequencer's policy decides with (see personas/definitions/lead-magnet-sequencer.yaml)."""

    form_metric: str = "Form submitted by profile"
    trigger_metric: str = "Lead Sequence Started"
    sequences: list[Sequence] = Field(min_length=1)
    bands: list[Band] = Field(min_length=1)
    scoring: Scoring = Field(default_factory=Scoring)
    send_window: Window = Field(default_factory=Window)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    default_timezone: str = "America/New_York"
    engagement_days: int = Field(30, ge=0)
    record_on_profile: bool = True
    #: Seconds after which a decision is checked again just before its send (a run resumed after a
    #: failed send or a long approval): the lead's consent is read again, and a lead who withdrew it
    #: gets nothing. 0 checks before every send.
    recheck_after: int = Field(300, ge=0)
    #: The forms whose submissions start a sequence, each a form id (exactly) or a form name (in any
    #: case, spaces around it ignored): ``[TRAILG]`` or ``["Trail Guide"]``. A submission of another
    #: form ends ``ignored: ...`` without a call to Klaviyo. None (the default): every form whose
    #: submissions come as ``form_metric`` events, as the sequencer has always taken them (DESIGN.md
    #: and the README: "takes a form-submission event"); an account with more forms than its lead
    #: magnets (a newsletter pop-up, a contact form) names its lead-magnet forms here.
    forms: list[str] | None = Field(None, min_length=1)
    #: Seconds the record step waits for Klaviyo to show the lead's sequence start after the send
    #: (Klaviyo ingests events asynchronously) before it reports the start as unconfirmed and leaves
    #: the profile as it was; read at once, then after 0.5, 1, 2, ... seconds. 0 reads once.
    confirm_within: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        _check_sequences(self)
        _check_bands(self)
        _check_tables(self.scoring)
        window, quiet = self.send_window, self.quiet_hours
        if window.end <= window.start:
            raise ValueError(
                f"send_window.end ({window.end}) must be after send_window.start ({window.start}): "
                "the window is a span of one day"
            )
        if not _sendable_minutes(window, quiet):
            raise ValueError(
                f"send_window ({window.start}-{window.end}) lies entirely inside quiet_hours "
                f"({quiet.start}-{quiet.end}), so no first touchpoint could ever be scheduled; "
                "widen send_window or shorten quiet_hours"
            )
        return self

    @field_validator("default_timezone")
    @classmethod
    def _default_zone(cls, value: str) -> str:
        """The zone is checked here, when the persona loads: unchecked, a misspelt one ran every lead that
        has a zone of its own and crashed, after scoring and asking the model, on the first that has none."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from .schedule import HOST_FILES, _zone  # imported here: schedule.py imports this module

        try:  # a name spelt as IANA spells it opens at once; another spelling is looked up among every zone's
            if value not in HOST_FILES:  # (tens of ms, once), which `personas list` need not pay
                return ZoneInfo(value).key
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe"), an overlong name
            pass
        try:
            return _zone(value).key
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone; write one such as America/New_York (it is the "
                             "time zone of leads whose profile has none)") from None

    @field_validator("forms")
    @classmethod
    def _forms(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not str(f).strip() for f in value):
            raise ValueError("forms: every entry is a form id or name; an empty one matches no form")
        return value

    def allows_form(self, form_id: str | None, form_name: str | None) -> bool:
        """Whether a submission of this form starts a sequence (see ``forms``)."""
        if self.forms is None:
            return True
        name = (form_name or "").strip().casefold()
        return any(f == form_id or (name and f.strip().casefold() == name) for f in self.forms)

    def band_for(self, score: int) -> Band:
        ordered = sorted(self.bands, key=lambda b: b.min_score, reverse=True)
        return next((b for b in ordered if score >= b.min_score), ordered[-1])

    def sequence(self, name: str) -> Sequence | None:
        return next((s for s in self.sequences if s.name == name), None)
