"""``personas auth login`` when Klaviyo rate-limits its account check (``get_accounts``: 1/s, like Klaviyo).

A 429 was not processed, so the check waits out ``Retry-After`` and asks again, within the client's
usual retry budget; past the budget it fails in one line (exit 1, nothing stored, no key shown). A
rejected key (401) still fails at once, after a single request. The command runs in a real process;
Klaviyo is the sandbox on a real port, its 429s injected (``Faults``) so that the test is deterministic
and waits one real second at most.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, Faults, Sandbox
from tests.oauth_consent import consent
from tests.sandbox.conftest import on_port

from .test_auth import Login, Setup, one_line_error

#: The next account check is answered 429 with ``Retry-After: 1``, the one after it as usual.
ONE_THROTTLE = {"storm_rate": 1.0, "storm_retry_after": 1.0, "count": 1, "operations": ["get_accounts"]}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    sb = Sandbox(rate_limit_factor=None)
    with on_port(sb.app) as url:
        yield Setup(sb, url, tmp_path / "home")
    sb.close()


def account_checks(sb: Sandbox) -> list[int | None]:
    return [r["status"] for r in sb.requests if r["operation_id"] == "get_accounts"]


def test_a_key_login_waits_out_a_429_on_the_account_check_and_stores_the_key(setup: Setup) -> None:
    setup.sb.faults = Faults(**ONE_THROTTLE)
    done = setup.run("auth", "login", "b", stdin=DEMO_KEY + "\n")
    assert done.returncode == 0, done.stderr
    assert "logged in as 'b': private key for Northwind Outfitters (SbxPub)" in done.stdout
    assert account_checks(setup.sb) == [429, 200]
    (row,) = setup.status()
    assert row["name"] == "b" and row["health"] == "ok" and row["account"]["id"] == "SbxPub"  # type: ignore[index]
    assert DEMO_KEY not in done.stdout + done.stderr


def test_a_429_past_the_retry_budget_fails_in_one_line_and_stores_nothing(setup: Setup) -> None:
    assert setup.run("auth", "login", "a", KLAVIYO_API_KEY=DEMO_KEY).returncode == 0
    before, stored = setup.status(), setup.stored()
    setup.sb.faults = Faults(storm_rate=1.0, storm_retry_after=3600, operations=["get_accounts"])
    setup.sb.log.clear()
    done = setup.run("auth", "login", "b", KLAVIYO_API_KEY=DEMO_KEY)
    assert done.returncode == 1, done.stderr
    line = one_line_error(done)
    assert "429" in line and "nothing was stored" in line and "retry budget" in line, line
    assert "try again in" in line, line
    assert account_checks(setup.sb) == [429]  # a wait past the budget is not waited at all
    assert DEMO_KEY not in done.stdout.replace("KLAVIYO_API_KEY", "") + done.stderr
    assert setup.status() == before and setup.stored() == stored


def test_a_rejected_key_still_fails_at_once_after_one_request(setup: Setup) -> None:
    wrong = "pk_" + "0a" * 17
    done = setup.run("auth", "login", "a", KLAVIYO_API_KEY=wrong)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "Klaviyo rejected the key (401 from" in line and "nothing was stored" in line
    assert wrong not in done.stdout + done.stderr
    assert account_checks(setup.sb) == [401]
    assert setup.status() == []


def test_an_oauth_login_waits_out_a_429_on_the_new_tokens_account_check(setup: Setup) -> None:
    setup.sb.faults = Faults(**ONE_THROTTLE)
    login = Login(setup, "shop", "--scopes", "campaigns:read")
    with httpx.Client() as browser:
        answer = consent(browser, login.url)
        browser.get(answer.headers["location"])
    code, out, err = login.finish()
    assert code == 0, err
    assert "logged in as 'shop': OAuth grant for Northwind Outfitters (SbxPub)" in out
    assert account_checks(setup.sb) == [429, 200]
    assert all(s not in out + err for s in setup.secrets())
