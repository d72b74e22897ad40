"""Where a run's time over the bare calls goes: timers on the parts of a run (benchmarks only).

``graph_overhead.py`` compares a whole run with the same Klaviyo calls made bare. This splits the
difference into parts a change could aim at: the audit rows, LangGraph's loop with its checkpoint
at the end, the input's checkpoint (``RunDriver`` writes it before the run), building the run's
context, the nodes' own work (scoring, policy, the scripted model, the guards), our client around
each call, and the sandbox itself: the same requests, answered more slowly inside a run, where the
run's own code runs between them (caches, garbage collection). Each part is timed where it is
outermost (a part inside another, such as an audit row inside a client call, is taken out of the
outer one), summed per lead; the parts are means, so that they add up to the mean difference, and
what no timer covers is shown as "other".

The timers wrap methods for the length of a ``with timers(...)`` block and put them back after; they
add a few microseconds a call, to both sides.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The parts of a run over the bare calls, in the order printed: (column, what it is).
PARTS = (
    ("audit", "audit rows (the log's append, chain and head)"),
    ("LangGraph", "LangGraph's loop between the nodes, and the checkpoint where the run ends"),
    ("input ckpt", "the input's checkpoint, written before the run"),
    ("context", "build_context: persona, scoped toolkit, guards, the audit log's check"),
    ("nodes' own", "the nodes' work besides their calls: parsing, scoring, model, policy, guards"),
    (
        "client",
        "our client around each call (arguments, request, response; with an audit log, the hook that "
        "hands it the call), more than the bare calls'",
    ),
    ("sandbox", "the sandbox answering the same requests more slowly inside a run than back to back"),
)


@contextmanager
def timers(benchmark: Any, sandbox: Any) -> Iterator[Counter[str]]:
    """Seconds spent in each timed part while the block runs (the counter is emptied by the caller
    between leads). ``benchmark``: the module whose ``build_context`` a run calls; ``sandbox``: the
    :class:`~klaviyo_sandbox.Sandbox` the client talks to (its in-process transport is timed)."""
    from langgraph._internal._runnable import RunnableCallable
    from langgraph.pregel.main import Pregel

    from klaviyo_toolkit.audit import AuditLog
    from klaviyo_toolkit.client import KlaviyoClient
    from personas.runtime.driver import RunDriver

    spent: Counter[str] = Counter()
    inside: list[str] = []  # the parts being timed, outermost first

    def timed(part: str, fn: Callable[..., Any], when: Callable[[Any], bool] | None = None) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if part in inside or (when is not None and not when(args[0])):
                return fn(*args, **kwargs)
            inside.append(part)
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                inside.pop()
                spent[part] += elapsed
                if inside:  # taken out of the part it ran in (which is taken out of its own)
                    spent[f"{inside[-1]} less inner"] -= elapsed

        return wrapper

    patches: list[tuple[Any, str, Any]] = [
        (type(sandbox.transport()), "handle_request", "sandbox"),
        (AuditLog, "record", "audit"),
        (KlaviyoClient, "send", "client"),
        (KlaviyoClient, "prepare", "client"),
        (RunDriver, "_begin", "input ckpt"),
        (Pregel, "invoke", "graph"),
        (RunnableCallable, "invoke", "nodes"),
        (benchmark, "build_context", "context"),
    ]

    def a_node(runnable: Any) -> bool:
        """A graph's node function, inside a run's loop (not LangGraph's own channel writers)."""
        module = getattr(getattr(runnable, "func", None), "__module__", None) or ""
        return "graph" in inside and module.startswith("graphs.")

    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, part in patches:
            setattr(owner, name, timed(part, getattr(owner, name), a_node if part == "nodes" else None))
        yield spent
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def own(spent: Counter[str], part: str) -> float:
    """Seconds in ``part`` less the timed parts that ran inside it."""
    return spent[part] + spent[f"{part} less inner"]


def split(run: Counter[str], bare: Counter[str], over: float) -> dict[str, float]:
    """The parts of ``over`` (a run's mean seconds over the bare calls'), from the timers' sums per
    lead of a run (``run``) and of the bare calls (``bare``); "other" is what no part covers."""
    # Inside Pregel.invoke, the nodes (less their calls) and LangGraph's own (less the nodes); the
    # input's checkpoint is written through update_state, outside invoke.
    parts = {
        "audit": run["audit"],
        "LangGraph": own(run, "graph"),
        "input ckpt": own(run, "input ckpt"),
        "context": own(run, "context"),
        "nodes' own": own(run, "nodes"),
        "client": own(run, "client") - own(bare, "client"),
        "sandbox": run["sandbox"] - bare["sandbox"],
    }
    parts["other"] = over - sum(parts.values())
    return parts


def split_table(found: dict[str, dict[str, float]]) -> list[str]:
    """``graph_overhead.where_over``'s figures (ms per lead) as a table, with what each part is."""
    columns = ["over bare", *(part for part, _ in PARTS), "other"]
    width = max(len(name.removeprefix("graph, ")) for name in found)
    out = [f"{'set-up':{width}} " + " ".join(f"{c:>10}" for c in columns)]
    out += [
        f"{name.removeprefix('graph, '):{width}} " + " ".join(f"{parts[c]:10.2f}" for c in columns)
        for name, parts in found.items()
    ]
    return out + [f"{part}: {what}" for part, what in PARTS] + ["other: what no timer covers (the run's lines, noise)"]
