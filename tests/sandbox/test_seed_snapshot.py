"""The day's demo account kept on disk (``klaviyo_sandbox.domains.demo.snapshot``): a sandbox loaded
from it holds exactly what building it holds; a damaged snapshot, a folder others may write, a store
that is not fresh and ``KLAVIYO_SANDBOX_SEED_CACHE=off`` all build the account instead."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox.domains.demo import snapshot
from klaviyo_toolkit.clock import ManualClock

NEW_YORK = ZoneInfo("America/New_York")
#: 2026-03-10 15:00 in New York: a day no other test keeps a snapshot of.
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=NEW_YORK).timestamp()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The snapshot folder, in this test's own temp folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("KLAVIYO_SANDBOX_SEED_CACHE", raising=False)
    return tmp_path / f"klaviyo-sandbox-{os.getuid()}"


def built(seed: int = 42, now: float = NOW, monkeypatch: pytest.MonkeyPatch | None = None) -> Sandbox:
    """The account built from scratch (snapshots off)."""
    assert monkeypatch is not None
    with monkeypatch.context() as m:
        m.setenv("KLAVIYO_SANDBOX_SEED_CACHE", "off")
        return Sandbox(seed=seed, rate_limit_factor=None, clock=ManualClock(start=now))


def test_a_sandbox_loaded_from_the_snapshot_holds_what_building_it_holds(folder: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    [kept] = list(folder.glob("demo-2026-03-10-*.marshal"))
    assert kept.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    loaded = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW + 3600))  # later that day
    reference = built(monkeypatch=monkeypatch)
    assert first.store.state() == reference.store.state()
    assert loaded.store.state() == reference.store.state(), "every resource, ordinal, value, index and the rng"
    # nothing in the account happens after the start of its day, so the day alone names it
    start = dt.datetime(2026, 3, 10, tzinfo=NEW_YORK).timestamp()
    late = [(r.type, r.id) for t in loaded.store.types() for r in loaded.store.iter(t)
            if max(r.created, r.updated) >= start]
    assert late == [], "the Default tag group was made at seeding time"
    # it goes on as a built one does: the same random part of the next id (its time part is the clock's)
    made = [sb.client().call("create_profile", email="after.snapshot@example.com").data["id"]
            for sb in (loaded, reference)]
    assert made[0][10:] == made[1][10:]


def test_another_day_or_seed_is_another_snapshot(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    next_day = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW + 86_400))
    other_seed = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(start=NOW))
    assert len(list(folder.glob("demo-*.marshal"))) == 3
    assert next_day.store.state() == built(42, NOW + 86_400, monkeypatch).store.state()
    assert other_seed.store.state() == built(7, NOW, monkeypatch).store.state()


@pytest.mark.parametrize("damage", [b"", b"not marshal data", "truncated", "another shape"])
def test_a_damaged_snapshot_is_built_again_and_replaced(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                         damage: bytes | str) -> None:
    Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    [kept] = list(folder.glob("demo-*.marshal"))
    whole = kept.read_bytes()
    if damage == "another shape":  # marshal data, but its resources whole and its ordinals not
        import marshal
        resources, _ordinals, *rest = marshal.loads(whole)
        damage = marshal.dumps((resources, [("profile",)], *rest))
    kept.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else damage)  # type: ignore[operator]
    again = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    assert again.store.state() == built(monkeypatch=monkeypatch).store.state()
    assert kept.read_bytes() == whole, "written again whole"


def test_a_folder_others_may_write_is_not_used(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    assert list(folder.iterdir()) == [] and snapshot.folder() is None
    assert sb.store.count("profile") == 2000, "built instead"


def test_off_builds_every_time_and_a_store_that_is_not_fresh_is_never_restored(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built(monkeypatch=monkeypatch)
    assert not folder.exists() or list(folder.iterdir()) == []
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    assert snapshot.key(sb.store, 42, dt.date(2026, 3, 10)) is None
    assert not snapshot.load(sb.store, snapshot.key(Sandbox(demo_data=False).store, 42, dt.date(2026, 3, 10)) or "")
    with pytest.raises(ValueError, match="only a fresh store"):
        sb.store.restore(sb.store.state())


def test_the_snapshots_used_last_are_kept(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_MAX_KEPT", 2)
    Sandbox(seed=1, rate_limit_factor=None, clock=ManualClock(start=NOW))
    Sandbox(seed=2, rate_limit_factor=None, clock=ManualClock(start=NOW))
    [first] = [p for p in folder.glob("demo-*.marshal") if p.stat().st_mtime_ns == min(
        q.stat().st_mtime_ns for q in folder.glob("demo-*.marshal"))]
    Sandbox(seed=1, rate_limit_factor=None, clock=ManualClock(start=NOW))  # loaded: used last
    Sandbox(seed=3, rate_limit_factor=None, clock=ManualClock(start=NOW))
    kept = sorted(folder.glob("demo-*.marshal"))
    assert len(kept) == 2 and first in kept, "seed 1's was loaded after seed 2's was written"


def test_a_writer_killed_mid_write_leaves_nothing_behind_once_another_writes(folder: Path) -> None:
    """Its temporary file (10 MB) is removed by the next write once it is old; one being written now is not."""
    folder.mkdir(mode=0o700)
    killed, writing = folder / ".demo-2026-03-10-abc.123.tmp", folder / ".demo-2026-03-10-abc.456.tmp"
    killed.write_bytes(b"half a snapshot")
    writing.write_bytes(b"being written")
    os.utime(killed, (NOW, os.stat(killed).st_mtime - 3600))
    Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(start=NOW))
    assert not killed.exists() and writing.exists()
    assert len(list(folder.glob("demo-*.marshal"))) == 1
