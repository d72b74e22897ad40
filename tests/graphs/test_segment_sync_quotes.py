"""A CSV source with a quote that is never closed is refused before anything is synced.

Python's lenient CSV reader read from such a quote to the end of the file as one value: the people
on the lines after it were never read, and a mirror sync would have removed them from the list. A
quote that is closed, however many lines its value spans, is read as it always was.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graphs.segment_sync import SyncInputError, read_file
from graphs.segment_sync.sources import SourceSpec

from .test_segment_sync import WRITES, World, run

MEMBERS = ["a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com"]


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        # the quote opens a middle column: the field count no longer matches the header's
        ('email,first_name,consent\na1@example.com,"Ann,yes\na2@example.com,Bo,yes\na3@example.com,Cy,yes\n', 2, 4),
        # the last column: the count matches, the consent value holds the lines after it
        ('email,first_name,consent\na1@example.com,Ann,yes\na2@example.com,Bo,"yes\na3@example.com,Cy,yes\n', 3, 4),
        # a two-column file: the name holds the lines after it, and the row looked valid
        ('email,first_name\na1@example.com,Ann\na2@example.com,"Bo\na3@example.com,Cy\na4@example.com,Di', 3, 5),
        # the first line after the header, the file's last line without its newline
        ('email,first_name\n"a1@example.com,Ann\na2@example.com,Bo', 2, 3),
    ],
    ids=["middle-column", "last-column", "matching-count", "first-row"],
)
def test_a_quote_never_closed_is_refused_naming_its_lines_and_nothing_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, first: int, last: int
) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    world = World(tmp_path)
    list_id = world.new_list("Target", MEMBERS)
    path = world.home / "unclosed.csv"
    path.write_text(text, encoding="utf-8")
    world.reset_counts()
    said = (f"source.path: line {first} of {path} opens a quote that is never closed, so lines {first} to {last} "
            "were read as one value")
    with pytest.raises(SyncInputError, match=re.escape(said)) as raised:
        run(world.context(f"unclosed-{first}-{last}", subscribe_with_consent=True),
            {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id})
    assert "close the quote" in str(raised.value) and "nothing was synced" in str(raised.value)
    assert not [op for op in world.sb.call_counts if op in WRITES], world.sb.call_counts
    world.settle()
    assert world.members(list_id) == set(MEMBERS), "a mirror sync removed nobody"


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_closed_quote_over_several_lines_is_read_as_one_value(tmp_path: Path, where: str) -> None:
    spanning = 'a2@example.com,"Bo\nand ""Bea""\n",yes'
    rows = ["a1@example.com,Ann,yes", spanning, "a3@example.com,Cy,yes"]
    if where == "end":
        rows = [rows[0], rows[2], spanning]
    path = tmp_path / "spanning.csv"
    path.write_text("email,first_name,consent\n" + "\n".join(rows), encoding="utf-8")
    read = list(read_file(SourceSpec(kind="csv", path=str(path)), "consent", {"yes"}))
    assert [type(r).__name__ for r in read] == ["Row", "Row", "Row"], read
    bo = next(r for r in read if getattr(r, "email", "") == "a2@example.com")
    assert (bo.first_name or "").strip() == 'Bo\nand "Bea"', bo
    assert all(getattr(r, "consent", False) for r in read), "the values after the spanning one are in place"
