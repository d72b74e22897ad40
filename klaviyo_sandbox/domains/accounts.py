"""Sandbox domain: the account, as Klaviyo's Accounts API shows it, and the IP allow list.

A key sees exactly one account, whose id is the public key (``SbxPub``); the demo data seeds
Northwind Outfitters, and without it a blank sandbox account is made on first use.

``GET /client/ip-allowlists/integration-egress`` is the one allow list (a singleton at a fixed
id; any other id is a 404, as Klaviyo documents). The sandbox's integration egress is this machine,
so its prefixes are the loopback address (``127.0.0.1/32``).
"""

from __future__ import annotations

import hashlib

from .._context import Ctx, Reply
from .._jsonapi import SandboxError
from .._keys import PUBLIC_KEY
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder

_d = DomainBuilder("accounts")


def ensure_account(svc: Services, when: float | None = None) -> Resource:
    """The account the sandbox's keys belong to (Northwind when seeded, a blank sandbox account otherwise)."""
    account = svc.store.get("account", PUBLIC_KEY)
    if account is not None:
        return account
    seeded = when is not None
    when = svc.clock.time() if when is None else when
    address = (
        {
            "address1": "41 Harbor Way",
            "address2": None,
            "city": "Portland",
            "region": "ME",
            "country": "US",
            "zip": "04101",
        }
        if seeded
        else {"address1": None, "address2": None, "city": None, "region": None, "country": "US", "zip": None}
    )
    contact = {
        "default_sender_name": "Northwind Outfitters" if seeded else "Sandbox",
        "default_sender_email": "hello@northwind-outfitters.example.com" if seeded else "sandbox@example.com",
        "website_url": "https://northwind-outfitters.example.com" if seeded else None,
        "organization_name": "Northwind Outfitters" if seeded else "Sandbox Account",
        "street_address": address,
    }
    account = Resource(
        "account",
        PUBLIC_KEY,
        {
            "test_account": False,
            "contact_information": contact,
            "industry": "Sporting Goods" if seeded else None,
            "timezone": "America/New_York",
            "preferred_currency": "USD",
            "public_api_key": PUBLIC_KEY,
            "locale": "en-US",
        },
        {},
        when,
        when,
    )
    svc.store.put(account)
    return account


@_d.handles("get_accounts")
def _get_accounts(ctx: Ctx) -> Reply:
    return ctx.many([ensure_account(ctx.svc)])


@_d.handles("get_account")
def _get_account(ctx: Ctx) -> Reply:
    account = ensure_account(ctx.svc)
    if ctx.id != account.id:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"No account {ctx.id!r} for this key; its account is {account.id!r} (see get_accounts).",
        )
    return ctx.one(account)


#: The fixed id of Klaviyo's one IP allow list ("Always `integration-egress`").
ALLOWLIST_ID = "integration-egress"
#: Where the sandbox's own requests (webhook deliveries) come from: this machine.
EGRESS_PREFIXES = ("127.0.0.1/32",)


@_d.handles("get_client_ip_allowlist")
def _get_ip_allowlist(ctx: Ctx) -> Reply:
    if ctx.id != ALLOWLIST_ID:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"There is no IP allow list {ctx.id!r}; the one list is at /client/ip-allowlists/{ALLOWLIST_ID}.",
        )
    allowlist = ctx.store.get("ip-allowlist", ALLOWLIST_ID)
    if allowlist is None:
        token = hashlib.sha256(",".join(EGRESS_PREFIXES).encode()).hexdigest()[:16]
        allowlist = Resource(
            "ip-allowlist",
            ALLOWLIST_ID,
            {"prefixes": list(EGRESS_PREFIXES), "sync_token": token, "created": ctx.now_iso},
            {},
            ctx.now,
            ctx.now,
        )
        ctx.store.put(allowlist)
    return ctx.one(allowlist)


DOMAIN = _d.build()
