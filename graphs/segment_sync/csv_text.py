"""How a CSV source's text is read: the separators it is sometimes saved with, and a quote never closed.

Python's ``csv`` reader (not strict) reads from an opening quote to the end of the file when the
quote is never closed: every later line became part of one value. With a header of three columns
that showed as "has 1 fields", which sent the person looking for a comma; where the field count
still matched (a quote opened in the last column, or in a name), the lines after it were silently
one person's name, and the people on them were never synced (a mirror sync would have removed them
from the list). Such a source is refused, nothing synced, naming the line the quote opens on and the
lines it took in.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["SEPARATORS", "Lines", "unclosed_quote"]

#: Separators a "CSV" file is sometimes saved with instead of commas, as a message names them.
SEPARATORS = {";": "semicolons (;)", "\t": "tabs", "|": "vertical bars (|)"}


class Lines:
    """A text file's lines for ``csv.reader``, that knows when the file has run out: a record read
    from a quote that is never closed is the one the file ends inside."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.ended = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._handle)
        except StopIteration:
            self.ended = True
            raise


def unclosed_quote(path: Path, first_line: int, last_line: int) -> str | None:
    """What is wrong when the CSV record on lines ``first_line`` to ``last_line`` (1-based, the
    file's last) of ``path`` opens a quote the file never closes; else None. Only the last record
    can (it runs to the end), so this reads that tail once, streaming, with the strict reader,
    which says so where the lenient one does not."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            for _ in csv.reader(itertools.islice(handle, first_line - 1, None), strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return (
                    f"line {first_line} of {path} opens a quote that is never closed, so lines {first_line} to "
                    f"{last_line} were read as one value and the people on them would not be synced; close "
                    "the quote (or take it out); nothing was synced"
                )
    return None
