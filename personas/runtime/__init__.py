"""The persona runtime, above the graphs: load personas, assemble their context, drive runs.

- ``loader``: persona YAML files, validated against the catalog and their graph's ``SPEC``;
- ``context``: ``build_context`` (toolkit, guards, model, audit, connection);
- ``driver``: the one run driver (start, stream, pending approvals, resume, result) behind
  ``run_persona``, the CLI, the REPL and the evals.
"""

from .context import build_context
from .driver import Pending, RunDriver, RunResult, arun_persona, checkpointer, run_persona
from .loader import list_personas, load_persona, scan_personas

__all__ = [
    "Pending",
    "RunDriver",
    "RunResult",
    "arun_persona",
    "build_context",
    "checkpointer",
    "list_personas",
    "load_persona",
    "run_persona",
    "scan_personas",
]
