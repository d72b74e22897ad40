"""A secret pasted into a sync's source file stays out of what the sync prints and stores.

An invalid row is shown with its value and a problem that quotes it. Both used to quote the value
as the checks saw it, compacted (a phone's spaces and dashes dropped) or lower-cased (a consent
answer), and cut to 100 characters: a registered secret changed so is no longer found, and a key
cut in two is neither a key nor a registered secret. Found by grepping the real output and files.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env

WEBHOOK_SECRET = "whk-S3cret-Hook-77"  # registered (KLAVIYO_WEBHOOK_SECRET), not shaped like a key
KLAVIYO_KEY = "pk_DISTINCTklaviyo9a8b7c6d5e4f3a2b"  # shaped like a key
#: Any trace of them: the secret in any case, with or without its dashes; the key's first 11 characters.
TRACE = re.compile(rb"(?i)whk-?s3cret-?hook-?77|pk_DISTINCT")


def test_invalid_rows_never_show_a_secret_compacted_lowercased_or_cut(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "members.csv"
    padding = "x" * (100 - len("c@example.com,,") - 15)  # the key straddles the 100th character
    source.write_text(
        "email,first_name,last_name,phone_number,consent\n"
        f"a@example.com,Ann,Lee,+1 555 {WEBHOOK_SECRET},\n"  # a phone: compacted before it is checked
        f"b@example.com,Bo,Kim,,Maybe {WEBHOOK_SECRET}\n"  # a consent answer: lower-cased before it is read
        f"c@example.com,{padding},{KLAVIYO_KEY},,,one too many\n",  # a row of 6 fields, shown cut
        encoding="utf-8",
    )
    done = run_personas(
        [str(PERSONAS), "run", "segment-syncer", "--sandbox", "--input",
         f'{{"source": {{"kind": "csv", "path": "{source}"}}, "target": "VIP Customers"}}'],
        cwd=tmp_path, env=child_env(home, KLAVIYO_WEBHOOK_SECRET=WEBHOOK_SECRET), capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stdout + done.stderr  # finished in part: the three rows are invalid
    assert "invalid row 2: phone_number" in done.stdout and "invalid row 3: consent" in done.stdout
    assert "invalid row 4: row" in done.stdout, done.stdout
    assert not TRACE.search((done.stdout + done.stderr).encode()), done.stdout
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" and "sync" in p.parts for p in stored), stored  # the sync's own file
    leaked = {str(p): TRACE.findall(p.read_bytes()) for p in stored if TRACE.search(p.read_bytes())}
    assert not leaked, leaked
