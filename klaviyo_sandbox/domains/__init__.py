"""Klaviyo behaviour the personas depend on, one module per area; importing registers handlers.

Each module registers handlers with ``@handles(operation_id, ...)`` (``_context.py``), reacts to
sandbox events with ``@on("event_created")`` (``_app.py``), and may add ``JOB_RUNNERS``,
``RELATED`` and ``FIELD_RESOLVERS`` entries. ``seed`` adds the demo account to ``SEEDERS``.
Shared storage conventions and helpers are in ``_common.py``.
"""

from . import campaigns, catalogs, events, flows, lists, misc, profiles, reports, seed

__all__ = ["campaigns", "catalogs", "events", "flows", "lists", "misc", "profiles", "reports", "seed"]
