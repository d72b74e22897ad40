"""What keeps an append cheap and still safe: the lock file kept open, the head record's bytes remembered.

Each test here is of a shortcut an append takes (``klaviyo_toolkit._files.HeldLockFile``,
``_HeadRecord``'s memory of the bytes it wrote): it fails if the shortcut misses what the plain way
(open, lock and close the file per append; decode and check every head record) would have caught.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from klaviyo_toolkit._files import HeldLockFile
from klaviyo_toolkit.audit import AuditContext, AuditHeadError, AuditLog, verify_log
from klaviyo_toolkit.audit_anchor import FileAnchor, Head
from klaviyo_toolkit.redact import redact_text

ROOT = Path(__file__).resolve().parents[1]


def locked_elsewhere(path: Path) -> bool:
    """Whether another process finds ``path`` locked right now."""
    probe = "import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\ntry:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n"  # noqa: E501
    return subprocess.run([sys.executable, "-c", probe, str(path)], check=False).returncode == 3


def waits_for(lock: HeldLockFile, release: threading.Event) -> bool:
    """Whether ``lock.hold()`` on another thread waits until ``release`` is set (the lock is held by
    someone else), rather than being granted at once."""
    got: list[float] = []

    def take() -> None:
        with lock.hold():
            got.append(time.monotonic())

    thread = threading.Thread(target=take)
    thread.start()
    time.sleep(0.3)
    released = time.monotonic()
    release.set()
    thread.join(10)
    return bool(got) and got[0] >= released


def test_a_held_lock_file_excludes_other_processes_and_is_released_between_holds(tmp_path: Path) -> None:
    lock = HeldLockFile(tmp_path / "sub" / ".x.lock")
    with lock.hold():
        assert locked_elsewhere(lock.path)
    assert not locked_elsewhere(lock.path), "unlocked between holds, though the file stays open"
    with lock.hold():
        assert locked_elsewhere(lock.path), "the kept descriptor locks again"
    lock.close()
    assert not locked_elsewhere(lock.path)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lock_file_deleted_or_replaced_between_holds_is_opened_again(tmp_path: Path, how: str) -> None:
    """Another process opening the path now locks the new file: our next hold must lock that one too."""
    lock = HeldLockFile(tmp_path / ".x.lock")
    with lock.hold():
        pass
    if how == "deleted":
        lock.path.unlink()
    else:
        (tmp_path / "other").write_bytes(b"")
        os.replace(tmp_path / "other", lock.path)
    theirs = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o600)  # as another appender opens it now
    fcntl.flock(theirs, fcntl.LOCK_EX)
    release = threading.Event()
    threading.Thread(target=lambda: (release.wait(10), os.close(theirs))).start()
    assert waits_for(lock, release), "our hold waited for theirs, on the file the path names"
    lock.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_opens_its_own_lock_file_and_waits_for_the_parent(tmp_path: Path) -> None:
    """A child sharing the parent's descriptor would be granted the parent's own lock at once."""
    lock = HeldLockFile(tmp_path / ".x.lock")
    stamp = tmp_path / "child"
    with lock.hold():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                with lock.hold():
                    stamp.write_text(str(time.monotonic()))
            finally:
                os._exit(0)
        time.sleep(0.3)
        released = time.monotonic()
    os.waitpid(pid, 0)
    assert float(stamp.read_text()) >= released, "the child waited for the parent's hold"
    assert not locked_elsewhere(lock.path), "the child's exit left the lock free"
    with lock.hold():  # the parent's descriptor still works after the child closed its copy
        assert locked_elsewhere(lock.path)


def test_an_audit_log_holds_its_lock_file_only_while_it_appends(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db", anchor=FileAnchor(tmp_path / "keys"))
    lock_path = tmp_path / ".audit.db.lock"
    seen: list[bool] = []
    save = log.anchor.save_head  # type: ignore[union-attr]
    log.anchor.save_head = lambda head: (seen.append(locked_elsewhere(lock_path)), save(head))[1]  # type: ignore
    log.record("get_lists", "ok")
    log.record("get_lists", "ok")
    assert seen == [True, True], "the head is saved under the lock"
    assert not locked_elsewhere(lock_path)
    log.close()
    assert verify_log(tmp_path / "audit.db", anchor=FileAnchor(tmp_path / "keys")).checked == 2


APPENDER = """
import sys
from pathlib import Path
from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.audit_anchor import FileAnchor

home = Path(sys.argv[1])
with AuditLog(home / "audit.db", anchor=FileAnchor(home / "keys")) as log:
    for i in range(int(sys.argv[2])):
        log.record("get_lists", "ok", context=AuditContext(user="other"), arguments={"i": i})
"""


def test_rows_another_process_appends_between_two_of_ours_are_chained_after(tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    with AuditLog(tmp_path / "audit.db", anchor=anchor) as log:
        log.record("get_profiles", "ok", context=AuditContext(user="us"))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", APPENDER, str(tmp_path), "3"], check=True, env=env)
        ours = log.record("get_profiles", "ok", context=AuditContext(user="us"))
        assert ours.id == 5, "numbered after the other process's rows"
        assert ours.prev_hash == log.query(limit=2)[1].hash, "chained to the other process's last row"
    head = anchor.load_head()
    report = verify_log(tmp_path / "audit.db", anchor=anchor)
    assert report.ok and report.checked == 5 and head is not None and (head.rows, head.hash) == (5, ours.hash)


def rewrite_head(anchor: FileAnchor, **changes: object) -> None:
    """Write the head record again, in place, with ``changes`` to its JSON (its MAC kept unless changed)."""
    record = json.loads(anchor.head_path.read_bytes())
    record.update(changes)
    with anchor.head_path.open("r+b") as out:
        out.write(json.dumps(record).encode().ljust(256))


def test_a_head_record_changed_in_place_between_appends_is_refused(tmp_path: Path) -> None:
    """The head record's bytes are remembered after each append: other bytes are checked, not trusted."""
    anchor = FileAnchor(tmp_path / "keys")
    log = AuditLog(tmp_path / "audit.db", anchor=anchor)
    log.record("get_lists", "ok")
    log.record("get_lists", "ok")
    good = anchor.head_path.read_bytes()
    rewrite_head(anchor, rows=3)  # a row the log does not have, the MAC of row 2's
    with pytest.raises(AuditHeadError, match="was altered"):
        log.record("get_lists", "ok")
    anchor.head_path.write_bytes(good)  # put back as it was: the same bytes are the same head
    log.record("get_lists", "ok")
    assert log.count() == 3 and log.verify().ok


def test_a_head_record_replaced_by_another_logs_between_appends_is_refused(tmp_path: Path) -> None:
    """A genuine head (the same key) that another log saved: not the head of this one."""
    anchor = FileAnchor(tmp_path / "keys")
    log = AuditLog(tmp_path / "audit.db", anchor=anchor)
    log.record("get_lists", "ok")
    log.record("get_lists", "ok")
    mine = anchor.head_path.read_bytes()
    (tmp_path / "keys2").mkdir(mode=0o700)
    os.close(os.open(tmp_path / "keys2" / "audit.key", os.O_WRONLY | os.O_CREAT, 0o600))
    (tmp_path / "keys2" / "audit.key").write_bytes((tmp_path / "keys" / "audit.key").read_bytes())
    other = AuditLog(tmp_path / "other.db", anchor=FileAnchor(tmp_path / "keys2"))  # the same key
    other.record("get_profiles", "ok")
    other.record("get_profiles", "ok")
    theirs = (tmp_path / "keys2" / "audit.head").read_bytes()
    assert theirs != mine
    anchor.head_path.write_bytes(theirs)
    with pytest.raises(AuditHeadError, match="replaced by another"):
        log.record("get_lists", "ok")
    os.replace(tmp_path / "keys" / "audit.head", tmp_path / "aside")  # and back, as a new file (inode)
    (tmp_path / "keys" / "audit.head").write_bytes(mine)
    log.record("get_lists", "ok")
    assert log.count() == 3


def test_a_genuine_head_saved_elsewhere_naming_a_later_row_is_refused(tmp_path: Path) -> None:
    """A head another process (another anchor object) saved, MAC'd with the key, that this log does not
    reach (an older copy of the log put back, rows cut): not what this log remembers writing, so checked."""
    anchor = FileAnchor(tmp_path / "keys")
    log = AuditLog(tmp_path / "audit.db", anchor=anchor)
    row = log.record("get_lists", "ok")
    log.record("get_lists", "ok")
    FileAnchor(tmp_path / "keys").save_head(Head(9, row.hash))
    with pytest.raises(AuditHeadError, match="rows were cut from the end"):
        log.record("get_lists", "ok")
    FileAnchor(tmp_path / "keys").save_head(Head(1, "0" * 64))
    with pytest.raises(AuditHeadError, match="replaced by another"):
        log.record("get_lists", "ok")
    assert log.count() == 2


def test_a_text_found_clean_is_masked_once_a_secret_in_it_is_registered() -> None:
    """Clean short texts are remembered per set of registered secrets: a new secret checks them again."""
    from klaviyo_toolkit.redact import redact, register_secret

    secret = "echoed-back-" + os.urandom(6).hex()
    text = f"profile note {secret}"
    assert redact_text(text) == text and redact_text(text) == text  # clean now, and remembered as clean
    assert redact({"k": text}) == {"k": text}
    register_secret(secret)
    assert secret not in redact_text(text)
    assert secret not in json.dumps(redact({"k": text, secret: 1}))


def test_a_text_with_a_secret_shape_is_masked_every_time() -> None:

    key = "pk_" + "a1B2c3D4e5" * 3
    for _ in range(3):
        assert key not in redact_text(f"key {key}") and key not in redact_text(key)
