"""Seeding a sandbox: write profiles, metrics, events and other resources straight into its store.

For test fixtures, evals and benchmarks that need data Klaviyo would already hold (history, sent
campaigns) without going through the API: no keys, scopes, limits or request checks, and times in
the past are fine. Everything is stored as the sandbox's own domains store it, so the API then
reads it back like any other data. Each sandbox has one, as ``sandbox.seeding``.

Example::

    sandbox = Sandbox(demo_data=False)
    ada = sandbox.seeding.profile(email="ada@example.com", first_name="Ada", at=day_ago)
    sandbox.seeding.event(ada, "Placed Order", {"OrderId": "A-1"}, value=42.0, at=day_ago + 60)
    sandbox.client().call("get_events")           # the order is there

``DEMO_CAMPAIGNS`` names the demo account's email campaigns: the first two were sent yesterday (at
10:00 and 14:00 New York; the second is the anomaly, with many hard bounces and few opens), each of
the others some days before the one ahead of it. ``iso(ts)`` writes an
epoch time as Klaviyo writes times (``2026-11-25T10:00:00+00:00``), for attributes set by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._jsonapi import iso
from ._services import Services
from ._store import RelValue, Resource
from .domains._common import find_or_create_metric, new_profile, record_event
from .domains.demo import CAMPAIGNS

#: Names of the demo account's email campaigns; the first two were sent yesterday (see module docstring).
DEMO_CAMPAIGNS: tuple[str, ...] = tuple(campaign[0] for campaign in CAMPAIGNS)


class Seeding:
    """Writes data into one sandbox's store (see module docstring); ``at`` defaults to the sandbox's now."""

    def __init__(self, services: Services) -> None:
        self._svc = services

    def _when(self, at: float | None) -> float:
        return self._svc.clock.time() if at is None else float(at)

    def profile(self, *, at: float | None = None, id: str | None = None, **attributes: Any) -> Resource:
        """A new profile with ``attributes`` (email, phone_number, first_name, properties, ...), never
        subscribed to anything; created ``at``. Identifiers are not checked for uniqueness."""
        store = self._svc.store
        with store.lock:
            profile = new_profile(self._svc, attributes, self._when(at), rid=id)
            store.flush()
        return profile

    def metric(self, name: str, *, at: float | None = None, service: str | None = None) -> Resource:
        """The metric named ``name``, made ``at`` if the account has none yet."""
        store = self._svc.store
        with store.lock:
            metric = find_or_create_metric(self._svc, name, self._when(at), service)
            store.flush()
        return metric

    def event(
        self,
        profile: Resource | str,
        metric: Resource | str,
        properties: Mapping[str, Any] | None = None,
        *,
        at: float | None = None,
        unique_id: str | None = None,
        value: float | None = None,
        trigger_flows: bool = True,
    ) -> Resource:
        """An event of ``metric`` (a metric or its name) for ``profile`` (a profile or its id), ``at``.

        As Klaviyo records them: ``value`` becomes ``$value``; a repeated ``unique_id`` for the same
        profile and metric returns the stored event; a new event announces itself to the flows unless
        ``trigger_flows`` is false (history, backfills).
        """
        svc, when = self._svc, self._when(at)
        with svc.store.lock:
            who = svc.store.get("profile", profile) if isinstance(profile, str) else profile
            if who is None:
                raise KeyError(f"no profile {profile!r} in this sandbox")
            what = find_or_create_metric(svc, metric, when) if isinstance(metric, str) else metric
            event, _ = record_event(
                svc, who, what, properties, when, unique_id=unique_id, value=value, trigger_flows=trigger_flows
            )
            svc.store.flush()
        return event

    def find_metric(self, name: str) -> Resource | None:
        """The account's metric named ``name``, if it has one (``metric()`` makes it when missing)."""
        return self._svc.store.find("metric", "name", name)

    def sent_campaign(
        self, campaign: Resource | str, *, at: float, status: str = "Sent", created: float | None = None
    ) -> Resource:
        """Show ``campaign`` (made through the API) as Klaviyo shows one sent ``at``: its status, a static
        send strategy, send, schedule and creation times, and its messages' send times.

        No message is delivered: for a send with its outbox, deliveries and engagement, send it
        through the API (``send_campaign``) instead; to give it history, add events with ``event()``.
        """
        store = self._svc.store
        created_at = at - 86_400 if created is None else created
        with store.lock:
            found = store.get("campaign", campaign) if isinstance(campaign, str) else campaign
            if found is None:
                raise KeyError(f"no campaign {campaign!r} in this sandbox")
            found.attributes.update({
                "status": status,
                "send_strategy": {"method": "static", "datetime": iso(at), "options": None},
                "created_at": iso(created_at),
                "scheduled_at": iso(at - 3600),
                "send_time": iso(at),
                "updated_at": iso(at),
            })
            store.put(found)
            for rtype, rid in found.linked("campaign-messages"):
                message = store.get(rtype, rid)
                if message is not None:
                    message.attributes.update({"send_times": [{"datetime": iso(at), "is_local": False}],
                                               "created_at": iso(created_at), "updated_at": iso(at)})
                    store.put(message)
            store.flush()
        return found

    def resource(
        self,
        type: str,
        attributes: Mapping[str, Any] | None = None,
        relationships: Mapping[str, RelValue] | None = None,
        *,
        id: str | None = None,
        at: float | None = None,
    ) -> Resource:
        """Any resource, stored as given (``relationships`` as ``(type, id)`` linkages, or lists of them);
        the id is made as Klaviyo makes ids of ``type`` unless given. Replaces a resource with that id."""
        store, when = self._svc.store, self._when(at)
        with store.lock:
            res = Resource(type, id or store.new_id(type, when), dict(attributes or {}), dict(relationships or {}))
            res.created = res.updated = when
            store.put(res)
            store.flush()
        return res


__all__ = ["DEMO_CAMPAIGNS", "Seeding", "iso"]
