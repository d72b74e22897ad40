"""The sequencer's input: a form-submission event, as Klaviyo's Get Event returns it
(``include=profile,metric``) or inside a webhook body; turned into a :class:`Submission`.

Bad input gets an :class:`InputError` naming the field and the fix; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from klaviyo_toolkit.errors import InvalidArgumentError, NotFoundError
from klaviyo_toolkit.validation import describe_hidden

#: Event properties that are Klaviyo's or the form's own, not answers to score.
NOT_ANSWERS = {"form_id", "form_name", "$source", "$extra", "$event_id", "$value", "page_url", "$form_id"}


class InputError(InvalidArgumentError):
    """The input is not a usable form submission."""

    def __init__(self, field: str, fix: str) -> None:
        super().__init__("lead-magnet input", [(field, fix)])


class LeadNotFound(NotFoundError):
    """Klaviyo has no profile for the submission's lead (no profile has its email, or its profile id
    is gone: deleted, merged, or of another account).

    Raised by the run's first step, so the run stops there: failed in the service, exit 1 from
    ``personas run``, and continued with ``--retry`` (or ``personas runs retry``) once Klaviyo has
    the profile; a profile made with the submission can take a moment to show. Nothing was sent
    or written. A 404 in the error tree (``KlaviyoAPIError``), so every caller reports it as one;
    its message is the detail alone, since no single Klaviyo call answered 404.
    """

    def __init__(self, detail: str, *, operation_id: str) -> None:
        super().__init__(404, code="not_found", title="Lead not found", detail=detail, operation_id=operation_id)

    def _message(self) -> str:
        return str(self.detail)


@dataclass
class Submission:
    """One form submission: who, which form, when, and the answers given."""

    event_id: str
    profile_id: str | None
    email: str | None
    metric: str | None
    time: str | None
    form_id: str | None
    form_name: str | None
    answers: dict[str, Any] = field(default_factory=dict)
    profile_attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _find_event(body: Any) -> tuple[Mapping[str, Any] | None, list[Any]]:
    """The first JSON:API event object in ``body`` and the ``included`` list beside it."""
    if isinstance(body, Mapping):
        data = body.get("data")
        included = body.get("included") if isinstance(body.get("included"), list) else []
        if isinstance(data, Mapping) and data.get("type") == "event":
            return data, included
        if isinstance(data, list):
            for item in data:
                if isinstance(item, Mapping) and item.get("type") == "event":
                    return item, included
                found, inc = _find_event(item)
                if found is not None:
                    return found, inc or included
        for key in ("payload", "event", "body"):
            if key in body:
                found, inc = _find_event(body[key])
                if found is not None:
                    return found, inc or included
        if body.get("type") == "event":
            return body, included
    return None, []


def parse_submission(body: Any) -> Submission:
    """Read a submission out of a Get Event document or a webhook body carrying one."""
    if not isinstance(body, Mapping):
        raise InputError(
            "input",
            "give a JSON object: a Klaviyo event (Get Event with include=profile,metric) "
            "or a webhook body carrying one",
        )
    event, included = _find_event(body)
    if event is None:
        raise InputError(
            "data",
            "no event found: expected data.type == 'event' (Get Event response) or a webhook body whose data holds one",
        )
    if not event.get("id"):
        raise InputError("data.id", "the event has no id; pass the event as Klaviyo returns it")
    attrs = event.get("attributes") if isinstance(event.get("attributes"), Mapping) else {}
    props = attrs.get("event_properties") if isinstance(attrs.get("event_properties"), Mapping) else None
    if props is None:
        given = attrs.get("event_properties")
        raise InputError(
            "data.attributes.event_properties",
            "missing; a form submission carries the form's answers there" if given is None else
            f"must be an object of the form's answers, not {type(given).__name__}; "
            "pass the event as Klaviyo returns it",
        )
    rels = event.get("relationships") if isinstance(event.get("relationships"), Mapping) else {}
    profile_ref = (rels.get("profile") or {}).get("data") if isinstance(rels.get("profile"), Mapping) else None
    metric_ref = (rels.get("metric") or {}).get("data") if isinstance(rels.get("metric"), Mapping) else None
    index = {(r.get("type"), r.get("id")): r for r in included if isinstance(r, Mapping)}
    profile = index.get(("profile", (profile_ref or {}).get("id"))) or {}
    metric = index.get(("metric", (metric_ref or {}).get("id"))) or {}
    profile_attrs = dict(profile.get("attributes") or {})
    profile_id = (profile_ref or {}).get("id") or profile.get("id")
    email = profile_attrs.get("email") or props.get("email") or props.get("$email")
    # Typed into a form: spaces around it are not part of it (Klaviyo matches the rest without regard to case).
    email = str(email).strip() if email is not None else None
    if email and describe_hidden(str(email)):
        raise InputError(
            "email", f"the lead's email contains characters that cannot be seen ({describe_hidden(str(email))}); "
            "it is not a real address and nothing was sent"
        )
    if not profile_id and not email:
        raise InputError(
            "data.relationships.profile", "the event names no profile (id) and no email; fetch it with include=profile"
        )
    return Submission(
        event_id=str(event["id"]),
        profile_id=str(profile_id) if profile_id else None,
        email=str(email) if email else None,
        metric=(metric.get("attributes") or {}).get("name"),
        time=attrs.get("datetime"),
        form_id=props.get("form_id") or props.get("$form_id"),
        form_name=props.get("form_name"),
        answers={k: v for k, v in props.items() if k not in NOT_ANSWERS and not str(k).startswith("$")},
        profile_attributes=profile_attrs,
    )
