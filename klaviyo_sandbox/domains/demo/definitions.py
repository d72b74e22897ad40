"""Spec-shaped documents the demo account is built from: the form, flow and segment definitions, and
small builders (predictive analytics, lead score, phone numbers in fictional ranges, event ULIDs).
"""

from __future__ import annotations

import random
from typing import Any

from ..._jsonapi import iso
from .content import BRAND, LEAD_SEQUENCES, SENDER_EMAIL
from .words import FORM_FIELDS

Json = dict[str, Any]
DAY = 86_400


def _block(kind: str, **props: Any) -> Json:
    return {"type": kind, "properties": props}


def form_definition(version_id: int, list_id: str) -> Json:
    """The Trail Guide lead-magnet popup: email plus the five qualification questions."""
    blocks: list[Json] = [
        _block(
            "html_text",
            content="<h2>Get the free Northwind Trail Guide</h2><p>12 routes, packing lists and "
            "gear advice from our guides.</p>",
        ),
        _block(
            "email",
            label="Email",
            placeholder="you@example.com",
            required=True,
            property_name="$email",
            show_label=False,
        ),
    ]
    for prop, label, options in FORM_FIELDS:
        blocks.append(
            _block(
                "dropdown",
                property_name=prop,
                label=label,
                required=prop in ("role", "timeline"),
                show_label=True,
                options=[{"label": o, "value": o} for o in options],
            )
        )
    blocks.append(
        {
            "type": "button",
            "properties": {"label": "Send me the guide"},
            "action": {"type": "next_step", "submit": True, "properties": {"list_id": list_id}},
        }
    )
    success = [_block("html_text", content="<h2>Check your inbox!</h2><p>Your Trail Guide is on its way.</p>")]
    return {
        "versions": [
            {
                "id": version_id,
                "name": "Trail Guide popup",
                "type": "popup",
                "status": "live",
                "ab_test": False,
                "channel": "WEB",
                "triggers": [{"type": "delay", "properties": {"seconds": 8}}],
                "steps": [
                    {"id": "step-signup", "name": "Sign up", "columns": [{"rows": [{"blocks": blocks}]}]},
                    {"id": "step-success", "name": "Success", "columns": [{"rows": [{"blocks": success}]}]},
                ],
            }
        ]
    }


def send_email_action(
    action_id: str, next_id: str | None, name: str, subject: str, preview: str, template_id: str
) -> Json:
    return {
        "id": action_id,
        "type": "send-email",
        "links": {"next": next_id},
        "data": {
            "status": "live",
            "message": {
                "name": name,
                "subject_line": subject,
                "preview_text": preview,
                "from_email": SENDER_EMAIL,
                "from_label": BRAND,
                "reply_to_email": SENDER_EMAIL,
                "cc_email": None,
                "bcc_email": None,
                "template_id": template_id,
                "smart_sending_enabled": False,
                "transactional": False,
                "add_tracking_params": True,
                "custom_tracking_params": None,
                "additional_filters": None,
            },
        },
    }


def delay_action(action_id: str, next_id: str | None, days: int) -> Json:
    return {
        "id": action_id,
        "type": "time-delay",
        "links": {"next": next_id},
        "data": {
            "unit": "days",
            "value": days,
            "secondary_value": None,
            "delay_until_time": None,
            "delay_until_weekdays": None,
        },
    }


def email_chain(
    ids: list[str], touches: tuple[tuple[str, str], ...], template_id: str, delays: tuple[int, ...] = (2, 3)
) -> list[Json]:
    """send-email, time-delay, send-email, ...: ``ids`` holds one id per action, in order."""
    actions: list[Json] = []
    k = 0
    for n, (subject, preview) in enumerate(touches):
        if n:
            actions.append(delay_action(ids[k], ids[k + 1], delays[min(n - 1, len(delays) - 1)]))
            k += 1
        nxt = ids[k + 1] if k + 1 < len(ids) else None
        actions.append(send_email_action(ids[k], nxt, f"Touchpoint {n + 1}", subject, preview, template_id))
        k += 1
    return actions


def lead_flow_definition(metric_id: str, sequence: str, ids: list[str], template_id: str) -> Json:
    """FlowDefinition: metric trigger on "Lead Sequence Started" where ``sequence`` equals this one."""
    actions = email_chain(ids, LEAD_SEQUENCES[sequence], template_id)
    return {
        "triggers": [
            {
                "type": "metric",
                "id": metric_id,
                "trigger_filter": {
                    "condition_groups": [
                        {
                            "conditions": [
                                {
                                    "type": "metric-property",
                                    "metric_id": metric_id,
                                    "field": "sequence",
                                    "filter": {"type": "string", "operator": "equals", "value": sequence},
                                }
                            ]
                        }
                    ]
                },
            }
        ],
        "profile_filter": None,
        "actions": actions,
        "entry_action_id": actions[0]["id"],
    }


def welcome_flow_definition(list_id: str, ids: list[str], template_id: str) -> Json:
    touches = (
        ("Welcome to Northwind — here's 10% off", "Your code: WELCOME10"),
        ("Our best-selling trail gear", "What our guides pack first"),
    )
    actions = email_chain(ids, touches, template_id, delays=(3,))
    return {
        "triggers": [{"type": "list", "id": list_id}],
        "profile_filter": None,
        "actions": actions,
        "entry_action_id": actions[0]["id"],
    }


def segment_definition(key: str, metric_ids: dict[str, str]) -> Json:
    """SegmentDefinition for "engaged" (opened in 30 days), "repeat" (2+ orders) or "unengaged"."""

    def metric(name: str, op: str, value: int, timeframe: Json) -> Json:
        return {
            "conditions": [
                {
                    "type": "profile-metric",
                    "metric_id": metric_ids[name],
                    "measurement": "count",
                    "measurement_filter": {"type": "numeric", "operator": op, "value": value},
                    "timeframe_filter": timeframe,
                    "metric_filters": None,
                }
            ]
        }

    def last(days: int) -> Json:
        return {"type": "date", "operator": "in-the-last", "quantity": days, "unit": "day"}

    if key == "engaged":
        groups = [metric("Opened Email", "greater-than", 0, last(30))]
    elif key == "repeat":
        groups = [metric("Placed Order", "greater-than-or-equal", 2, {"type": "date", "operator": "alltime"})]
    else:
        groups = [metric("Received Email", "greater-than", 0, last(90)), metric("Opened Email", "equals", 0, last(90))]
    return {"condition_groups": groups}


def predictions(rng: random.Random, orders: int, propensity: float, anchor: float) -> Json:
    """Profile ``predictive_analytics`` consistent with the profile's order count."""
    aov = round(rng.uniform(60, 260), 2)
    historic = round(orders * aov, 2)
    predicted = round(rng.uniform(0, 3) * aov * propensity, 2)
    return {
        "historic_clv": historic,
        "predicted_clv": predicted,
        "total_clv": round(historic + predicted, 2),
        "historic_number_of_orders": float(orders),
        "predicted_number_of_orders": round(rng.uniform(0, 3), 1),
        "average_days_between_orders": round(rng.uniform(30, 180), 1) if orders > 1 else None,
        "average_order_value": aov if orders else None,
        "churn_probability": round(rng.uniform(0.05, 0.95), 2),
        "expected_date_of_next_order": iso(anchor + rng.uniform(5, 120) * DAY) if orders else None,
        "ranked_channel_affinity": rng.choice((["email", "sms", "push"], ["sms", "email", "push"])),
    }


def lead_score(answers: dict[str, str]) -> int:
    """Points per answer: the earlier an option in its list (bigger team, sooner, larger budget), the more."""
    score = 0
    for prop, _, options in FORM_FIELDS:
        if answers.get(prop) in options:
            score += max(0, 3 - options.index(answers[prop]))
    return score


_PHONE_FORMATS = {
    "US": "+1{area}555{n:04d}",
    "CA": "+1{area}555{n:04d}",
    "GB": "+447400900{n:03d}",
    "DE": "+4915112{n:06d}",
    "FR": "+33612{n:06d}",
    "AU": "+61491570{n:03d}",
    "NZ": "+64211{n:06d}",
}
_AREA_CODES = {"US": (212, 303, 206, 617, 512, 720, 503, 415), "CA": (604, 416, 403, 514)}


def phone_number(country: str, n: int) -> str:
    """The ``n``-th E.164 number for a country: a valid number (libphonenumber's ranges, as Klaviyo
    checks; Ofcom's drama range 07700 900xxx is not one), in 555 exchanges for the US and Canada."""
    areas = _AREA_CODES.get(country, (0,))
    return _PHONE_FORMATS[country].format(area=areas[n % len(areas)], n=n // len(areas) + 100)


_PAIRS = [a + b for a in "0123456789ABCDEFGHJKMNPQRSTVWXYZ" for b in "0123456789ABCDEFGHJKMNPQRSTVWXYZ"]
_SHIFTS = range(120, -1, -10)  # 13 pairs of base32 digits = 130 bits, the top two zero


def ulid(ms: int, random_bits: int) -> str:
    """A ULID (48-bit milliseconds, 80 random bits) in Crockford base32, as ``Store.new_id`` makes them."""
    value = (ms << 80) | random_bits
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
