"""Who the syncer already asked Klaviyo to subscribe to a list: not asked again while that waits.

On a double opt-in list, Klaviyo answers a subscribe by emailing the person a confirmation and
leaves their consent as it was until they click it. Nothing on the profile says a confirmation is
pending, so the next sync saw a consenting row that is "not subscribed" and asked again: every
run made a subscribe call and sent the person one more confirmation email, and every report said
"subscribed". So each email a done subscribe batch sent is written here (``$PERSONAS_HOME/sync/
asked.sqlite``: list, email, when), and a later plan holds a row whose email was asked for the same
list within ``ask_again_after_days``: it is reported as ``awaiting_confirmation``, not sent. A
person who confirmed is SUBSCRIBED and needs nothing; after the wait (a confirmation lost, a job
that failed), a sync asks once more.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from klaviyo_toolkit.validation import email_key
from personas.kernel.privacy import private_file

__all__ = ["Ledger", "awaiting"]

SCHEMA = ("CREATE TABLE IF NOT EXISTS asked (list_id TEXT NOT NULL, email_key TEXT NOT NULL, asked_at REAL NOT NULL, "
          "PRIMARY KEY (list_id, email_key))")
CHUNK = 500


class Ledger:
    """The subscribe requests sent per list (one SQLite file shared by every sync of the state folder)."""

    def __init__(self, home: Path, account: str = "") -> None:
        self.path = home / "sync" / "asked.sqlite"
        self.account = account  # Klaviyo's base URL and the key's account: list ids are unique only within one

    @classmethod
    def of(cls, ctx: Any) -> Ledger:
        """The ledger of the run's state folder, for the account its client talks to."""
        client = ctx.client
        account = getattr(getattr(client, "credentials", None), "account_key", "") or ""
        return cls(ctx.home, f"{getattr(client, 'base_url', '')}|{account}")

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(private_file(self.path)), timeout=30)  # the people's emails: owner-only
        db.execute(SCHEMA)
        return db

    def _key(self, list_id: str) -> str:
        return f"{self.account}|{list_id}" if self.account else list_id

    def record(self, list_id: str, emails: Iterable[str], now: float) -> None:
        """``emails`` were sent in a subscribe to ``list_id`` that Klaviyo accepted."""
        rows = [(self._key(list_id), email_key(e), now) for e in emails if e and e.strip()]
        db = self._db()
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO asked VALUES (?,?,?)", rows)
        finally:
            db.close()

    def holder(self, list_id: str, since: float) -> Callable[[sqlite3.Connection], int]:
        """For ``Plan.build``: mark the plan's rows about to be subscribed whose email was asked for
        ``list_id`` after ``since`` as ``sub_state = 'asked'`` (not sent); how many."""

        def hold(plan: sqlite3.Connection) -> int:
            if not self.path.is_file():
                return 0
            wanted = [k for (k,) in plan.execute("SELECT email_key FROM source WHERE sub_state = 'subscribe'")]
            asked: list[str] = []
            db = self._db()
            try:
                for start in range(0, len(wanted), CHUNK):
                    part = wanted[start:start + CHUNK]
                    asked += [k for (k,) in db.execute(
                        f"SELECT email_key FROM asked WHERE list_id = ? AND asked_at > ? AND email_key IN "
                        f"({','.join('?' * len(part))})", (self._key(list_id), since, *part))]
            finally:
                db.close()
            plan.executemany("UPDATE source SET sub_state = 'asked' WHERE sub_state = 'subscribe' AND email_key = ?",
                             [(k,) for k in asked])
            return len(asked)

        return hold


def awaiting(plan: sqlite3.Connection, sample: int) -> dict[str, Any]:
    """The plan's rows held as asked before: how many, and the first ``sample`` emails."""
    count = plan.execute("SELECT COUNT(*) FROM source WHERE sub_state = 'asked'").fetchone()[0]
    emails = plan.execute("SELECT email FROM source WHERE sub_state = 'asked' ORDER BY rowno LIMIT ?", (sample,))
    return {"count": int(count), "sample": [str(e) for (e,) in emails]}
