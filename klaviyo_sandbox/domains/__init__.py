"""Klaviyo behaviour the personas depend on, one module per area, each exporting one ``DOMAIN``.

A module declares its handlers, computed relationships and filter fields, job runners, hooks and
seeders with a module-local ``DomainBuilder`` (``klaviyo_sandbox.domain``) and exports the
resulting ``Domain``; importing it registers nothing anywhere. ``DEFAULT_DOMAINS`` below is the
one list of what a ``Sandbox()`` emulates; a sandbox built with another tuple emulates that instead
(what no domain handles, the generic engine serves). Shared storage conventions and helpers are in
``_common.py``, the identifier rules in ``_identifiers.py``, the demo account in ``demo/``.

Modules import the sandbox's core and, where one area builds on another (consent on lists and
profiles, campaigns on campaign sends), each other; never the ``Sandbox`` itself.
"""

from __future__ import annotations

from ..domain import Domain
from . import (
    accounts,
    campaign_sends,
    campaigns,
    catalogs,
    consent,
    coupons,
    deliveries,
    demo,
    events,
    flow_engine,
    flows,
    forms,
    images,
    lists,
    metric_aggregates,
    profiles,
    reports,
    segments,
    tags,
    templates,
    webhook_delivery,
    webhooks,
)

#: Everything the sandbox emulates beyond the generic engine, and the demo account (``demo``).
DEFAULT_DOMAINS: tuple[Domain, ...] = (
    profiles.DOMAIN,
    consent.DOMAIN,
    lists.DOMAIN,
    segments.DOMAIN,
    events.DOMAIN,
    metric_aggregates.DOMAIN,
    templates.DOMAIN,
    campaigns.DOMAIN,
    campaign_sends.DOMAIN,
    deliveries.DOMAIN,
    flows.DOMAIN,
    flow_engine.DOMAIN,
    catalogs.DOMAIN,
    coupons.DOMAIN,
    accounts.DOMAIN,
    tags.DOMAIN,
    webhooks.DOMAIN,
    webhook_delivery.DOMAIN,
    images.DOMAIN,
    forms.DOMAIN,
    reports.DOMAIN,
    demo.DOMAIN,
)

__all__ = ["DEFAULT_DOMAINS"]
