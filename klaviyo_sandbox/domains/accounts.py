"""Sandbox domain: the account, as Klaviyo's Accounts API shows it.

A key sees exactly one account, whose id is the public key (``SbxPub``); the demo data seeds
Northwind Outfitters, and without it a blank sandbox account is made on first use.
"""

from __future__ import annotations

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


DOMAIN = _d.build()
