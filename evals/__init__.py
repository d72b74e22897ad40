"""Evals for personas: suites of cases replayed against the in-process sandbox (``personas eval``).

A suite is a folder under ``evals/suites/`` with ``suite.yaml`` and one YAML file per case; a
case names a persona (or graph), its input, the sandbox state, and what must hold afterwards:
the calls made (trajectory matching), decision fields in the final state, the outbox and lists.
Cassettes hold the model's responses, authored by hand or recorded, and say which. See
``evals/README.md`` for the case format.

Example::

    from evals import load_suite, run_suite
    result = run_suite(load_suite("lead_magnet"))
    print(result.pass_rate, result.ok)

Names are imported lazily, so ``personas --help`` does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Case": "evals.case",
    "CaseFileError": "evals.case",
    "Suite": "evals.case",
    "discover_suites": "evals.case",
    "load_suite": "evals.case",
    "CallSpec": "evals.matchers",
    "MatchContext": "evals.matchers",
    "match_trajectory": "evals.matchers",
    "match_value": "evals.matchers",
    "Fixture": "evals.fixtures",
    "build_fixture": "evals.fixtures",
    "CaseResult": "evals.results",
    "SuiteResult": "evals.results",
    "pass_at_k": "evals.results",
    "check_case": "evals.checks",
    "judge": "evals.checks",
    "compare_sets": "evals.compare",
    "stamp_case": "evals.author",
    "run_case": "evals.runner",
    "run_suite": "evals.runner",
    "write_reports": "evals.report",
    "author_case": "evals.author",
    "record_case": "evals.author",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evals' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
