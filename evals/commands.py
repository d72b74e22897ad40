"""How a suite is named in a command the user is told to run (``personas eval SUITE --case ID --author``).

A bare name always means the shipped suite (``chat`` is ``evals/suites/chat``), so a hint that names a
suite loaded from a folder elsewhere (a copy, the user's own suite, one whose ``suite.yaml`` sets another
``name``) must give its path: else following the fix would rewrite the shipped suite's cassette instead.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .case import SUITES_DIR, Suite

__all__ = ["suite_arg"]


def suite_arg(suite: Suite) -> str:
    """``suite`` as ``personas eval`` takes it back: its name when the name resolves to this very folder,
    else its folder as a path (``./x`` for a relative one, quoted for the shell)."""
    folder = Path(suite.path)
    shipped = SUITES_DIR / suite.name
    try:
        if (shipped / "suite.yaml").exists() and shipped.resolve() == folder.resolve():
            return suite.name
    except OSError:  # pragma: no cover - a folder that cannot be resolved is named by its path
        pass
    text = str(folder)
    if not folder.is_absolute() and not text.startswith((".", "~")):
        text = f"./{text}"
    return shlex.quote(text)
