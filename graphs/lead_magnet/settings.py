"""Settings of the lead-magnet sequencer persona: sequences, score bands, scoring rules, timing."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    cap: int = 25


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
    engagement_days: int = 30
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
        names = {s.name for s in self.sequences}
        for band in self.bands:
            unknown = [s for s in band.sequences if s not in names]
            if unknown:
                raise ValueError(f"band {band.name!r} names unknown sequence(s) {unknown}; sequences: {sorted(names)}")
        if min(b.min_score for b in self.bands) > -1000 and not any(b.min_score <= 0 for b in self.bands):
            raise ValueError("one band must start at 0 or below so every score has a band")
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
