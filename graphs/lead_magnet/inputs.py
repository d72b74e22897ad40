"""The sequencer's input: a form-submission event, as Klaviyo's Get Event returns it
(``include=profile,metric``) or inside a webhook body; turned into a :class:`Submission`.

Bad input gets an :class:`InputError` naming the field and the fix; nothing is guessed.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from klaviyo_toolkit.errors import InvalidArgumentError, NotFoundError
from klaviyo_toolkit.limits import EVENT_LIMITS, json_problem
from klaviyo_toolkit.validation import canonical_email, describe_hidden, email_problem

#: Event properties that are Klaviyo's or the form's own, not answers to score.
NOT_ANSWERS = {"form_id", "form_name", "$source", "$extra", "$event_id", "$value", "page_url", "$form_id"}
#: How an answer's field that holds the lead's contact details ends, written as ``is_contact_field`` compares
#: it (``Email Address``, ``work_email``, ``Mobile Phone``, ``sms_number``); ``email_frequency`` or
#: ``email_opt_in`` say what the lead wants, and are answers like any other.
CONTACT_FIELDS = ("email", "emailaddress", "phone", "phonenumber", "mobile", "mobilenumber", "telephone", "cell",
                  "sms", "smsnumber")
#: An answer that is itself an email address or an international phone number, whatever its field.
_CONTACT_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+|\+[\d\s().-]{7,20}")


def is_contact_field(name: Any) -> bool:
    """Whether an answer's field is named for the lead's contact details (``CONTACT_FIELDS``), its name
    compared NFKC (fullwidth letters), casefolded, letters and digits only."""
    key = "".join(ch for ch in unicodedata.normalize("NFKC", str(name)).casefold() if ch.isalnum())
    return key.endswith(CONTACT_FIELDS)


def for_the_model(answers: dict[str, Any]) -> dict[str, Any]:
    """The form's answers as the model sees them: the lead's contact details left out (a field named
    for them, or a value that is an address or a ``+`` number). The model chooses a sequence from
    what the lead said and needs no address or number to do so; they would reach a third-party model
    in every run, though the profile's own are never shown to it. Scoring still reads them."""
    return {
        k: v for k, v in answers.items()
        if not is_contact_field(k)
        and not (isinstance(v, str) and _CONTACT_VALUE.fullmatch(unicodedata.normalize("NFKC", v).strip()))
    }  # fmt: skip


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
    #: the event's metric id (``data.relationships.metric``): an event given without its metric
    #: included names it by id alone, which the run resolves to a name before it scores the lead
    metric_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The submission as plain data (what ``state["submission"]`` holds): ``asdict``'s result,
        made without its generic deep copy (it walked every answer and attribute through
        ``copy.deepcopy``), each nested dict and list still a copy of its own."""
        return {f.name: _copied(getattr(self, f.name)) for f in fields(self)}


def _copied(value: Any) -> Any:
    """``value`` with every dict, list and tuple in it copied (as ``dataclasses.asdict`` copies them)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is dict:
        return {_copied(k): _copied(v) for k, v in value.items()}
    if type(value) is list:
        return [_copied(v) for v in value]
    return asdict(_Box(value))["value"]  # anything else exactly as asdict has it


@dataclass
class _Box:
    value: Any


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


def _other_events(body: Mapping[str, Any]) -> list[int]:
    """The indexes in ``data`` of events other than the first (another event id), when ``body`` is a
    delivery carrying several (a Klaviyo webhook batches them: ``{"data": [{"topic", "payload"}, ...]}``)."""
    data = body.get("data")
    if not isinstance(data, list):
        return []
    found = [(n, event.get("id")) for n, item in enumerate(data) if (event := _find_event(item)[0]) is not None]
    return [n for n, event_id in found[1:] if event_id != found[0][1]]


def _object(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` if it is an object, {} if absent; anything else is the input's error at ``field``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(field, f"must be an object, not {_kind(value)}; pass the event as Klaviyo returns it")
    return value


def _text(value: Any, field: str) -> str | None:
    """``value`` if it is text (None if absent or empty); a number, list or object is the input's error."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(field, f"must be text, not {_kind(value)}; pass the event as Klaviyo returns it")
    return value.strip() or None


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "text"}.get(type(value), type(value).__name__)


def _ref(rels: Mapping[str, Any], name: str) -> str | None:
    """The id a relationship (``data.relationships.<name>.data``) names, checked: an object of that type
    whose id is text; None when the event names none."""
    field = f"data.relationships.{name}"
    data = _object(_object(rels.get(name), field).get("data"), f"{field}.data")
    if not data:
        return None
    if data.get("type") not in (None, name):
        raise InputError(f"{field}.data.type", f"is {data.get('type')!r}, not {name!r}; pass the event as "
                                               "Klaviyo returns it")
    return _text(data.get("id"), f"{field}.data.id")


def _included(body: Mapping[str, Any], kind: str, rid: str | None) -> tuple[Mapping[str, Any], str]:
    """The attributes of the included record ``(kind, rid)`` ({} if not included) and their field name."""
    included = body.get("included")
    for n, record in enumerate(included if isinstance(included, list) else []):
        if isinstance(record, Mapping) and record.get("type") == kind and rid is not None and record.get("id") == rid:
            field = f"included[{n}].attributes"
            return _object(record.get("attributes"), field), field
    return {}, "included"


def _time(value: Any) -> str | None:
    """The event's ``datetime``: ISO 8601 text as Klaviyo writes it, or absent."""
    text = _text(value, "data.attributes.datetime")
    if text is not None:
        try:
            _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InputError("data.attributes.datetime", f"{text[:60]!r} is not an ISO 8601 time such as "
                                                         "2026-11-25T23:41:57+00:00; pass the event as Klaviyo "
                                                         "returns it") from None
    return text


def parse_submission(body: Any) -> Submission:
    """Read a submission out of a Get Event document or a webhook body carrying one.

    Every field read is checked for its type (an id is text, a relationship an object of its type) and
    the event properties against Klaviyo's own limits for an event, so a document no Klaviyo event
    could be is refused naming the field, before any call; the email is checked when it is what finds
    the lead (no profile id).
    """
    if not isinstance(body, Mapping):
        raise InputError(
            "input",
            "give a JSON object: a Klaviyo event (Get Event with include=profile,metric) "
            "or a webhook body carrying one",
        )
    event, included = _find_event(body)
    if event is not None and (others := _other_events(body)):
        # one run is one lead: taking the first event alone lost every other lead of the delivery
        raise InputError(
            f"data[{others[0]}]",
            f"the body carries {len(others) + 1} events and a run takes one; pass each event on its own (a "
            "delivery's data[n].payload), or let `personas serve` take the delivery, which starts one run per event",
        )
    if event is None:
        raise InputError(
            "data",
            "no event found: expected data.type == 'event' (Get Event response) or a webhook body whose data holds one",
        )
    event_id = _text(event.get("id"), "data.id")
    if not event_id:
        raise InputError("data.id", "the event has no id; pass the event as Klaviyo returns it")
    attrs = _object(event.get("attributes"), "data.attributes")
    props = attrs.get("event_properties")
    if not isinstance(props, Mapping):
        raise InputError(
            "data.attributes.event_properties",
            "missing; a form submission carries the form's answers there" if props is None else
            f"must be an object of the form's answers, not {_kind(props)}; pass the event as Klaviyo returns it",
        )
    # a value past these is no event Klaviyo stored; a control character a person typed into the form
    # may be (it is shown escaped, never refused: refusing it would lose the lead)
    if problem := json_problem(props, EVENT_LIMITS, check_text=False):
        raise InputError("data.attributes.event_properties", f"{problem}; pass the event as Klaviyo returns it")
    rels = _object(event.get("relationships"), "data.relationships")
    profile_ref, metric_ref = _ref(rels, "profile"), _ref(rels, "metric")
    document = {"included": included}
    profile_attrs, profile_field = _included(document, "profile", profile_ref)
    metric_attrs, metric_field = _included(document, "metric", metric_ref)
    email_field = f"{profile_field}.email"
    email = _text(profile_attrs.get("email"), email_field)
    for key in ("email", "$email"):
        if email is None:
            email_field = f"data.attributes.event_properties.{key}"
            email = _text(props.get(key), email_field)
    if email is not None and not profile_ref and (problem := email_problem(email)):
        raise InputError(email_field, f"{problem}; it is how the lead is found (the event names no profile id), "
                                      "so nothing was looked up or sent")
    if email and describe_hidden(email):
        raise InputError(
            "email", f"the lead's email contains characters that cannot be seen ({describe_hidden(email)}); "
            "it is not a real address and nothing was sent"
        )
    if email is not None:  # "jose\u0301@" (NFD, as some tools write it) is the lead Klaviyo holds as "jos\u00e9@"
        email = canonical_email(email)
    if not profile_ref and not email:
        raise InputError(
            "data.relationships.profile", "the event names no profile (id) and no email; fetch it with include=profile"
        )
    return Submission(
        event_id=event_id,
        profile_id=profile_ref,
        email=email,
        metric=_text(metric_attrs.get("name"), f"{metric_field}.name"),
        time=_time(attrs.get("datetime")),
        form_id=_text(props.get("form_id") or props.get("$form_id"), "data.attributes.event_properties.form_id"),
        form_name=_text(props.get("form_name"), "data.attributes.event_properties.form_name"),
        answers={k: v for k, v in props.items() if k not in NOT_ANSWERS and not str(k).startswith("$")},
        profile_attributes=dict(profile_attrs),
        metric_id=metric_ref,
    )
