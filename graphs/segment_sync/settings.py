"""Settings of the segment syncer persona: batch size, consent and removal policy, job checks.

Example (``personas/definitions/segment-syncer.yaml``)::

    settings:
      batch_size: 1000
      subscribe_with_consent: true
      mode: add-only
      consent_values: [yes, true, subscribed, "1"]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Klaviyo's ceiling for profiles per list-membership, subscription and (our) import call.
MAX_BATCH = 1000

DEFAULT_CONSENT_VALUES = ("yes", "y", "true", "subscribed", "1", "opt-in", "opted-in")


class Settings(BaseModel):
    """How the syncer applies a source to a list (see the fields' descriptions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(MAX_BATCH, description="Profiles per add, subscribe or remove call (at most 1000).")
    subscribe_with_consent: bool = Field(
        True, description="Subscribe (email marketing) source rows whose consent column says yes; never others.")
    mode: Literal["add-only", "mirror"] = Field(
        "add-only", description="When the input gives none: add-only (nobody leaves the list) or mirror (members "
        "not in the source leave it, after approval).")
    consent_column: str = Field("consent", description="The source column (or JSON key) holding consent.")
    consent_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONSENT_VALUES),
        description="Values meaning explicit consent (case-insensitive); empty, no, false, 0, unsubscribed and such "
        "mean none, and any other value makes its row invalid (reported, not synced): consent is never guessed.")
    custom_source: str = Field("segment-syncer", description="Recorded as the subscription's method detail.")
    verify_jobs: bool = Field(True, description="Wait for the import jobs and report rows Klaviyo refused.")
    job_poll_seconds: float = Field(2.0, gt=0, description="First wait before checking import jobs (doubles).")
    job_timeout_seconds: float = Field(600.0, gt=0, description="Stop waiting for import jobs after this long.")
    summarize_with_model: bool = Field(
        False, description="Ask the persona's model for a one-paragraph summary (a template is used otherwise).")
    sample_size: int = Field(5, ge=1, le=50, description="Emails shown per kind of change in the plan.")
    ask_again_after_days: float = Field(
        30.0, ge=0, description="A consenting person this syncer asked Klaviyo to subscribe to the list, still not "
        "subscribed (a double opt-in list waits for them to confirm), is asked again only after this many days "
        "(each ask emails them a confirmation); 0 asks on every run.")

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: int) -> int:
        if not 1 <= value <= MAX_BATCH:
            raise ValueError(f"must be between 1 and {MAX_BATCH}: Klaviyo takes at most {MAX_BATCH} profiles per "
                             f"list or subscription call ({value} given)")
        return value

    @field_validator("consent_values")
    @classmethod
    def _consent_values(cls, value: list[str]) -> list[str]:
        cleaned = [str(v).strip().lower() for v in value if str(v).strip()]
        if not cleaned:
            raise ValueError("give at least one value meaning consent, e.g. [yes, true, subscribed, '1']")
        return cleaned

    @field_validator("consent_column")
    @classmethod
    def _consent_column(cls, value: str) -> str:
        name = value.strip().lower().replace(" ", "_").replace("-", "_")
        if not name:
            raise ValueError("name the column that holds consent, e.g. consent")
        return name
