"""The PostgreSQL checkpointer's pool hands out a connection without a round trip when it was just
returned and its socket is quiet, and checks (then replaces) one the server ended or that sat idle.

Real PostgreSQL (``PERSONAS_TEST_DATABASE_URL``); the pool's own ``check_connection`` is watched to
count the round trips it would make."""

from __future__ import annotations

import time
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from personas.service import postgres
from personas.service.postgres import checkpointer

from .test_audit_postgres import end_connections

CONFIG = {"configurable": {"thread_id": "pool-check", "checkpoint_ns": ""}}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection the pool checked with a round trip."""
    seen: list[Any] = []
    real = ConnectionPool.check_connection

    def watched(conn: Any) -> None:
        seen.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(watched))
    return seen


def test_a_connection_just_returned_is_handed_out_without_a_round_trip(pg_url: str, checks: list[Any]) -> None:
    saver = checkpointer(pg_url, max_size=1)
    try:
        list(saver.list(CONFIG))
        before = len(checks)
        for _ in range(5):
            assert list(saver.list(CONFIG)) == []
        assert len(checks) == before, "a connection returned moments ago with nothing to read is not checked"
    finally:
        saver.conn.close()


def test_a_connection_the_server_ended_is_checked_and_replaced(pg_url: str, checks: list[Any]) -> None:
    saver = checkpointer(pg_url, max_size=1)
    try:
        list(saver.list(CONFIG))
        end_connections(pg_url)  # as a restart of PostgreSQL does
        time.sleep(0.2)  # the server's goodbye reaches the socket
        before = len(checks)
        assert list(saver.list(CONFIG)) == [], "the next read gets a working connection"
        assert len(checks) > before, "the ended connection was checked (and failed it)"
    finally:
        saver.conn.close()


def test_a_connection_idle_past_the_limit_is_checked(pg_url: str, checks: list[Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    saver = checkpointer(pg_url, max_size=1)
    try:
        list(saver.list(CONFIG))
        monkeypatch.setattr(postgres, "CHECK_IDLE_AFTER", 0.0)
        before = len(checks)
        list(saver.list(CONFIG))
        assert len(checks) == before + 1
    finally:
        saver.conn.close()


def test_a_returned_connection_is_back_in_the_pool_before_the_next_request(pg_url: str) -> None:
    """No request waits for the pool's worker thread to take a connection back (as with a ``reset``)."""
    saver = checkpointer(pg_url, max_size=1)
    try:
        saver.conn.pop_stats()  # the set-up's request waited for the pool's first connection
        for _ in range(20):
            assert list(saver.list(CONFIG)) == []
            assert saver.conn.get_stats().get("pool_available") == 1
        assert saver.conn.get_stats().get("requests_queued", 0) == 0
    finally:
        saver.conn.close()
