"""What every Klaviyo-like backend must do for the client: one suite, run against each backend.

Only behaviour real Klaviyo shows belongs here (auth, pagination, 404, 409 on a duplicate, 400 with a
pointer). Tests create what they read, with unique names, so they also hold on a backend that has
data already (a seeded sandbox, a shared server).
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from klaviyo_toolkit.errors import AuthenticationError, BadRequestError, ConflictError, NotFoundError

from .conftest import Backend

N_PROFILES = 25
PAGE_SIZE = 10


def _email(tag: str) -> str:
    return f"contract-{tag}-{uuid.uuid4().hex[:12]}@example.com"


def test_the_key_is_accepted(backend: Backend) -> None:
    with backend.client() as kl:
        page = kl.call("get_lists", page_size=1)
    assert page.status == 200
    assert isinstance(page.data, list)


def test_a_wrong_key_is_refused_with_401(backend: Backend) -> None:
    with backend.client(api_key="pk_not_a_real_key_000000") as kl, pytest.raises(AuthenticationError) as err:
        kl.call("get_lists")
    assert err.value.status == 401
    assert "pk_not_a_real_key_000000" not in str(err.value)


def test_a_created_profile_reads_back(backend: Backend) -> None:
    email = _email("roundtrip")
    with backend.client() as kl:
        created = kl.call("create_profile", email=email, first_name="Ada")
        assert created.status == 201
        fetched = kl.call("get_profile", id=created.data["id"])
    assert fetched.data["id"] == created.data["id"]
    assert fetched.data["attributes"]["email"] == email
    assert fetched.data["attributes"]["first_name"] == "Ada"


def _list_with_members(backend: Backend) -> tuple[str, set[str]]:
    with backend.client() as kl:
        list_id = kl.call("create_list", name=f"contract-{uuid.uuid4().hex[:12]}").data["id"]
        ids = {kl.call("create_profile", email=_email(f"page{i}")).data["id"] for i in range(N_PROFILES)}
        kl.call("add_profiles_to_list", id=list_id, profile_ids=sorted(ids))
    return list_id, ids


def test_pagination_visits_every_profile_once(backend: Backend) -> None:
    list_id, ids = _list_with_members(backend)
    with backend.client() as kl:
        pages = list(kl.pages("get_list_profiles", id=list_id, page_size=PAGE_SIZE))
        seen = [p["id"] for p in kl.iterate("get_list_profiles", id=list_id, page_size=PAGE_SIZE)]
    assert len(pages) == -(-N_PROFILES // PAGE_SIZE)
    assert [len(p.data) for p in pages] == [10, 10, 5]
    assert pages[-1].next_url is None
    assert len(seen) == N_PROFILES and set(seen) == ids


async def test_pagination_visits_every_profile_once_async(backend: Backend) -> None:
    list_id, ids = _list_with_members(backend)
    async with backend.async_client() as kl:
        seen = [p["id"] async for p in kl.iterate("get_list_profiles", id=list_id, page_size=PAGE_SIZE)]
        pages = [p async for p in kl.pages("get_list_profiles", id=list_id, page_size=PAGE_SIZE)]
    assert len(seen) == N_PROFILES and set(seen) == ids
    assert len(pages) == 3


def test_an_unknown_id_is_404(backend: Backend) -> None:
    with backend.client() as kl, pytest.raises(NotFoundError) as err:
        kl.call("get_profile", id="01NOSUCHPROFILE000000000000")
    assert err.value.status == 404
    assert err.value.operation_id == "get_profile"


async def test_an_unknown_id_is_404_async(backend: Backend) -> None:
    async with backend.async_client() as kl:
        with pytest.raises(NotFoundError):
            await kl.call("get_list", id="NOSUCHLIST")


def test_a_duplicate_email_is_409_naming_the_existing_profile(backend: Backend) -> None:
    email = _email("dup")
    with backend.client() as kl:
        first = kl.call("create_profile", email=email).data["id"]
        with pytest.raises(ConflictError) as err:
            kl.call("create_profile", email=email)
    assert err.value.status == 409
    assert err.value.duplicate_id == first


def test_a_bad_body_is_400_with_a_pointer(backend: Backend) -> None:
    """A body the client's own checks would refuse, sent anyway: the backend must name the field."""
    with backend.client() as kl:
        prep = kl.prepare("create_profile", {"email": _email("bad")})
        bad = dataclasses.replace(prep, json_body={"data": {"type": "profile", "attributes": {"email": 12345}}})
        with pytest.raises(BadRequestError) as err:
            kl.send(bad)
    assert err.value.status == 400
    assert err.value.pointer is not None and err.value.pointer.startswith("/data/attributes")
    assert err.value.request_id
