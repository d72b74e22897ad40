"""The one run driver: start, stream, pending approvals, resume, result.

Every way of running a persona goes through :class:`RunDriver`: ``run_persona``/``arun_persona``
from code, ``personas run`` (with or without a terminal), the chat REPL and the eval runner. It
binds the persona's graph to a checkpointer and a thread, streams what the graph does, lists the
approvals a paused run waits for, and turns an answer into a resume ``Command`` after checking it
(a bad answer is refused and the run stays paused).

When checkpoints are written is the graph's choice (``GraphSpec.durability``). ``"sync"`` (the
default): after every step, before the next starts, so a killed run resumes at the step it was in.
``"exit"`` (the lead-magnet sequencer, whose every effect is idempotent): the input is checkpointed
before the first step, then LangGraph writes only where the run stops (its end, a pause, a failed
step), so a killed run resumes from its input and repeats reads, never an effect. Either way the
writes are made in the run's own thread (``saves.inline_saves``), since the run waits for them.

Example::

    from personas import run_persona
    result = run_persona("lead-magnet-sequencer", {"input": event}, sandbox=Sandbox())
    result.state["decision"]["sequence"], result.state["send"]["status"]
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from graphs import build, graph_spec
from personas.kernel.context import PersonaContext
from personas.kernel.errors import AnswerProblem, UsageProblem
from personas.kernel.governance import parse_answer
from personas.kernel.graphspec import CONTINUING, GraphSpec
from personas.kernel.privacy import RedactingSerde
from personas.kernel.spec import PersonaSpec

from .checkpoints import checkpointer
from .context import build_context
from .primed import known_empty, primed_start, remembered
from .saves import inline_saves
from .thread_lock import athread_lock, exclusive_lock, thread_lock_path

__all__ = ["Pending", "RunDriver", "RunResult", "arun_persona", "checkpointer", "left_to_run", "run_persona"]

#: What ``stream`` yields by default: node starts and ends, graph progress, state updates.
DEFAULT_MODES = ("updates", "custom", "tasks")


@dataclass(frozen=True)
class Pending:
    """One approval a paused run waits for: its interrupt id and what it shows."""

    id: str
    value: Any


@dataclass
class RunResult:
    """A finished or paused run: its thread, final state, and pending approvals (if paused)."""

    thread_id: str
    state: dict[str, Any]
    interrupts: list[Any]
    model: str
    pending: list[Pending] = field(default_factory=list)
    next: tuple[str, ...] = ()

    @property
    def paused(self) -> bool:
        return bool(self.interrupts)

    @property
    def status(self) -> str:
        """``done``; ``paused`` (waiting for approval); or ``stopped`` (failed or killed mid-way:
        ``RunDriver.retry()`` continues it from its last checkpoint)."""
        if self.interrupts:
            return "paused"
        return "stopped" if self.next else "done"


class RunDriver:
    """One persona run on one thread (see the module docstring).

    Args:
        context: the run's context (its ``thread_id`` names the thread).
        saver: the checkpointer; None keeps checkpoints in memory (the run cannot survive the process).
    """

    def __init__(self, context: PersonaContext, saver: Any = None) -> None:
        from langgraph.checkpoint.memory import InMemorySaver

        self.context = context
        self.spec: GraphSpec = graph_spec(context.spec.graph)
        self.saver: Any = saver if saver is not None else InMemorySaver(serde=RedactingSerde(InMemorySaver().serde))
        self.graph = build(self.spec.name, checkpointer=self.saver)
        self.config: dict[str, Any] = {
            "configurable": {"thread_id": context.thread_id},
            "recursion_limit": self.spec.recursion_limit,
            # in its checkpoints: whose run a thread holds, and under which approval policy it pauses
            "metadata": {"persona": context.spec.name, **policy_metadata(context.spec)},
        }
        #: Set when the last ``invoke``/``stream`` was given the input its thread had already finished:
        #: nothing ran, and the result is that run's (see :meth:`_held_run`).
        self.repeated = False

    # -- state -----------------------------------------------------------------------------------
    def snapshot(self) -> Any:
        return self.graph.get_state(self.config)

    def exists(self) -> bool:
        """Whether the thread has a checkpoint (a run started on it)."""
        snap = self.snapshot()
        return bool(snap.values) or bool(snap.tasks)

    def pending(self, snapshot: Any = None) -> list[Pending]:
        snap = snapshot if snapshot is not None else self.snapshot()
        return [Pending(i.id, i.value) for task in snap.tasks for i in task.interrupts]

    def result(self, snapshot: Any = None) -> RunResult:
        snap = snapshot if snapshot is not None else self.snapshot()
        pending = self.pending(snap)
        return RunResult(
            self.context.thread_id,
            dict(snap.values),
            [p.value for p in pending],
            self.context.model.description,
            pending,
            left_to_run(snap),
        )

    # -- answering approvals -----------------------------------------------------------------------
    def resume_command(self, answer: Any) -> Any:
        """A resume Command for the pending approvals, after checking every answer.

        ``answer`` is one answer (when one approval is pending), a list with one answer per pending
        approval in order, or a mapping from interrupt id or request fingerprint to answer. Each
        answer is bound to the request it answers (its fingerprint); one that names another request,
        or is not approve / reject / edit-with-args, raises AnswerProblem (a UsageProblem) and the run
        stays paused.
        """
        from langgraph.types import Command

        pending = self.pending()
        if not pending:
            raise AnswerProblem(f"thread {self.context.thread_id} is not waiting for an approval; nothing to resume")
        by_key = {p.id: p for p in pending} | {_fingerprint(p): p for p in pending if _fingerprint(p)}
        if isinstance(answer, Mapping) and answer and set(answer) <= set(by_key):
            pairs = [(by_key[k], a) for k, a in answer.items()]
        elif isinstance(answer, Sequence) and not isinstance(answer, (str, bytes)):
            if len(answer) != len(pending):
                raise AnswerProblem(
                    f"{len(pending)} approvals are pending; give {len(pending)} answers, not {len(answer)}"
                )
            pairs = list(zip(pending, answer, strict=True))
        elif len(pending) == 1:
            pairs = [(pending[0], answer)]
        else:
            listed = "; ".join(f"{_fingerprint(p)} ({_tool(p)})" for p in pending)
            raise AnswerProblem(
                f"{len(pending)} approvals are pending; answer each one, in order as a JSON list "
                f'(["approve", "reject"]) or by fingerprint ({{"sha256:...": "approve"}}): {listed}'
            )
        given: dict[str, Any] = {}
        for item, raw in pairs:
            try:
                decision = parse_answer(raw)
            except UsageProblem as exc:
                raise AnswerProblem(str(exc)) from None
            expected = _fingerprint(item)
            if decision.get("fingerprint") and expected and decision["fingerprint"] != expected:
                raise AnswerProblem(
                    f"the answer names request {decision['fingerprint']}, but the pending {_tool(item)} request "
                    f"is {expected}; nothing was resumed"
                )
            given[item.id] = {**decision, "fingerprint": expected} if expected else decision
        if len(given) != len(pending):
            missing = [_tool(p) for p in pending if p.id not in given]
            raise AnswerProblem(f"no answer for the pending {', '.join(missing)} request(s); nothing was resumed")
        return Command(resume=given[pending[0].id] if len(pending) == 1 else given)

    def _resuming(self, resume: Any) -> AbstractContextManager[None]:
        """Held while a resume reads what is pending and runs (``thread_lock``): two processes
        answering one pause at once send its request once; the second finds nothing to answer."""
        if resume is None:
            return nullcontext()
        return exclusive_lock(thread_lock_path(self.context.config.home, self.context.thread_id))

    def _aresuming(self, resume: Any) -> AbstractAsyncContextManager[None]:
        if resume is None:
            return nullcontext()
        return athread_lock(thread_lock_path(self.context.config.home, self.context.thread_id))

    def _payload(self, input: Mapping[str, Any] | None, resume: Any) -> Any:
        """What the graph is given: an answer to a pause, or a new input (checked by the graph's
        ``check_input`` first, so one no run could use is refused before a thread is made)."""
        if resume is not None:
            self._same_policy()
            return self.resume_command(resume)
        if input is not None and self.spec.check_input is not None:
            self.spec.check_input(input)
        return None if input is None else dict(input)

    def _same_policy(self) -> None:
        """AnswerProblem when the pause is answered under another approval policy than the one it paused
        under (another file of the persona's name, or its file edited meanwhile): a policy that does
        not ask for the paused request never reads the answer, so a rejection was not taken and the
        request was sent. Threads from before the policy was recorded are taken as they are."""
        was = (self.snapshot().metadata or {}).get(APPROVAL_POLICY)
        if not was or was == policy_metadata(self.context.spec)[APPROVAL_POLICY]:
            return
        source = (self.snapshot().metadata or {}).get(PERSONA_SOURCE)
        where = f" (from {source})" if source else ""
        raise AnswerProblem(
            f"thread {self.context.thread_id!r} paused under another approval policy of {self.context.spec.name}"
            f"{where} than the one given now: an answer is taken only by the policy that asked; nothing was "
            "resumed: answer it with the persona file it paused under"
        )

    @property
    def durability(self) -> Literal["sync", "exit"]:
        """When this run's checkpoints are written: the graph's ``GraphSpec.durability``."""
        return self.spec.durability

    def _begin(self, payload: Any) -> Any:
        """What to run: for an ``"exit"`` graph given a new input, the input is checkpointed first (as
        LangGraph's ``__start__`` step, so the thread exists and a killed run can be continued from
        it) and the run continues from there; anything else runs as given."""
        if self.durability != "exit" or not isinstance(payload, dict):
            return payload
        with remembered():  # inside invoke's primed_start: the loop's read of it comes from memory
            self.graph.update_state(self.config, payload, as_node="__start__")
        return None

    async def _abegin(self, payload: Any) -> Any:
        if self.durability != "exit" or not isinstance(payload, dict):
            return payload
        await self.graph.aupdate_state(self.config, payload, as_node="__start__")
        return None

    def _held_run(self, payload: Any) -> RunResult | None:
        """A thread holds one run (but a conversation's). Given a new input on a thread that has one,
        LangGraph would start from the old run's state (a value the new run does not set stays, and
        shows), so: the input the thread finished already is that run's result again, nothing run
        (a command repeated, as a redelivered webhook is); any other input is refused, saying what
        the thread holds and how to go on with it. None: a new thread, or not a new input. Inside
        ``primed_start``, the run's own read of a new thread then comes from memory."""
        self.repeated = False
        if not isinstance(payload, dict):
            return None
        if self.spec.conversation:  # each message goes on with the thread, unless it waits for an answer
            self._refuse_if_waiting(self.snapshot())
            return None
        found = self.saver.get_tuple(self.config)
        if found is None:
            known_empty(self.config)
            return None
        return self._judge(payload, found, self.snapshot(), list(self.saver.list(self.config, **self._first())))

    async def _aheld_run(self, payload: Any) -> RunResult | None:
        self.repeated = False
        if not isinstance(payload, dict):
            return None
        if self.spec.conversation:
            self._refuse_if_waiting(await self.graph.aget_state(self.config))
            return None
        found = await self.saver.aget_tuple(self.config)
        if found is None:
            return None
        started = [c async for c in self.saver.alist(self.config, **self._first())]
        return self._judge(payload, found, await self.graph.aget_state(self.config), started)

    def _refuse_if_waiting(self, snap: Any) -> None:
        """UsageProblem when a conversation's thread waits for an approval: a new message there would
        drop the pending request with no record of it (its audit row would say pending for ever) and
        leave the model's tool call unanswered, which OpenAI refuses on every later turn."""
        pending = self.pending(snap)
        if pending:
            tools = ", ".join(_tool(p) for p in pending)
            raise UsageProblem(
                f"thread {self.context.thread_id!r} is paused for an approval ({tools}): a new message would leave "
                "it unanswered; answer it first (--resume approve|reject); nothing was run"
            )

    def _first(self) -> dict[str, Any]:
        """How to list the checkpoint a thread's run started from (the oldest listed): an ``"exit"``
        graph has a few checkpoints, the first its input's (``_begin``); a ``"sync"`` graph one per
        step, and one with its input (source ``input``)."""
        return {} if self.durability == "exit" else {"filter": {"source": "input"}}

    def _judge(self, payload: dict[str, Any], found: Any, snap: Any, started: list[Any]) -> RunResult:
        """The finished run's result when ``payload`` is the input it started with (``started``: the
        checkpoints listed by :meth:`_first`, newest first); else UsageProblem."""
        ran = (found.metadata or {}).get("persona")  # a thread from before it was recorded: not named
        whose = f" of {ran}" if ran else ""
        values = started[-1].checkpoint["channel_values"] if started else {}
        given = values["__start__"] if isinstance(values.get("__start__"), dict) else {
            key: value for key, value in values.items() if not key.startswith(("__", "branch:"))}
        same = bool(started) and given == payload
        if self.pending(snap):
            what, go_on = "is paused for an approval", "; to go on with it, answer it (--resume approve|reject)"
        elif left_to_run(snap):
            what, go_on = "stopped before its end", "; to go on with it, continue it (--retry, or RunDriver.retry())"
        elif same and (not ran or ran == self.context.spec.name):
            self.repeated = True
            return self.result(snap)
        else:
            what, go_on = "finished", ""
        given = "its input again" if same else "a new input"
        raise UsageProblem(
            f"thread {self.context.thread_id!r} already holds a run{whose}, which {what}: {given} starts a new "
            f"run, on a new thread, so leave out the thread id (or give an unused one){go_on}; nothing was run"
        )

    def _config(self, payload: Any) -> dict[str, Any]:
        """The run's config; with :data:`CONTINUING` set when it continues what an attempt left (no
        new input, no answer to a pause)."""
        if payload is not None:
            return self.config
        return {**self.config, "configurable": {**self.config["configurable"], CONTINUING: True}}

    # -- running -----------------------------------------------------------------------------------
    def stream(
        self, input: Mapping[str, Any] | None = None, *, resume: Any = None, modes: Sequence[str] = DEFAULT_MODES
    ) -> Iterator[tuple[str, Any]]:
        """Run (or resume) and yield ``(mode, chunk)`` as the graph goes; then read :meth:`result`."""
        with self._resuming(resume):
            payload = self._payload(input, resume)
            with inline_saves(), primed_start():
                if self._held_run(payload) is not None:
                    return  # finished before: nothing runs; result() reads it
                yield from self.graph.stream(
                    self._begin(payload), self._config(payload), context=self.context, durability=self.durability,
                    stream_mode=list(modes),
                )

    async def astream(
        self, input: Mapping[str, Any] | None = None, *, resume: Any = None, modes: Sequence[str] = DEFAULT_MODES
    ) -> AsyncIterator[tuple[str, Any]]:
        async with self._aresuming(resume):
            payload = self._payload(input, resume)
            if await self._aheld_run(payload) is not None:
                return
            async for item in self.graph.astream(
                await self._abegin(payload), self._config(payload), context=self.context,
                durability=self.durability, stream_mode=list(modes),
            ):
                yield item

    def invoke(self, input: Mapping[str, Any] | None = None, *, resume: Any = None) -> RunResult:
        """Run (or resume) to the end or the next pause, and return the result."""
        with self._resuming(resume):
            payload = self._payload(input, resume)
            with inline_saves(), primed_start():
                if (held := self._held_run(payload)) is not None:
                    return held
                out = self.graph.invoke(
                    self._begin(payload), self._config(payload), context=self.context, durability=self.durability
                )
            return self._finished(out) or self.result()

    def retry(self) -> RunResult:
        """Continue a run that failed or was killed, from its last checkpoint (the failed step runs
        again; a killed run of an ``"exit"`` graph starts again from its input, told it continues).

        A run that finished has nothing to continue: its result is returned as it is, nothing runs
        again, so retrying until it succeeds stops once it has (``RunResult.status`` is ``done``).
        """
        snap = self.snapshot()
        if not snap.values and not snap.tasks:
            raise UsageProblem(f"thread {self.context.thread_id} has no run to continue; check the thread id")
        if self.pending(snap):
            raise UsageProblem(f"thread {self.context.thread_id} is waiting for an approval; answer it with --resume")
        if not left_to_run(snap):
            return self.result(snap)
        return self.invoke(None)

    async def ainvoke(self, input: Mapping[str, Any] | None = None, *, resume: Any = None) -> RunResult:
        async with self._aresuming(resume):
            payload = self._payload(input, resume)
            if (held := await self._aheld_run(payload)) is not None:
                return held
            out = await self.graph.ainvoke(
                await self._abegin(payload), self._config(payload), context=self.context, durability=self.durability
            )
            return self._finished(out) or self.result(await self.graph.aget_state(self.config))

    def _finished(self, out: Any) -> RunResult | None:
        """The result of a run that ended, from what ``invoke`` returned (its final state), without
        reading the checkpoint back; None when it paused (the snapshot then says what waits)."""
        if not isinstance(out, Mapping) or "__interrupt__" in out:
            return None
        return RunResult(self.context.thread_id, dict(out), [], self.context.model.description)


#: Checkpoint metadata: a digest of the approval policy a run was started under, and the persona's file.
APPROVAL_POLICY = "approval_policy"
PERSONA_SOURCE = "persona_source"


def policy_metadata(spec: PersonaSpec) -> dict[str, str]:
    """What a run's checkpoints record of the policy that answers its pauses (see ``_same_policy``)."""
    digest = hashlib.sha256(spec.approval.model_dump_json().encode()).hexdigest()[:16]
    return {APPROVAL_POLICY: digest, **({PERSONA_SOURCE: spec.source} if spec.source else {})}


def left_to_run(snapshot: Any) -> tuple[str, ...]:
    """The steps a thread has left (empty: it finished). LangGraph's ``next`` is not that: it leaves
    out a task whose writes were saved, so a run stopped after a step's writes and before its
    checkpoint (Ctrl-C in a loop of batches) showed ``next == ()``, read as finished, and could not be
    continued. Every task of the snapshot is left to run; ``invoke(None)`` applies the saved writes."""
    named = tuple(snapshot.next or ())
    return named or tuple(task.name for task in snapshot.tasks or () if not task.interrupts)


def _fingerprint(pending: Pending) -> str:
    return str(pending.value.get("fingerprint") or "") if isinstance(pending.value, Mapping) else ""


def _tool(pending: Pending) -> str:
    return str(pending.value.get("tool") or "?") if isinstance(pending.value, Mapping) else "?"


def _context(persona: str | PersonaSpec, context: PersonaContext | None, options: dict[str, Any]) -> PersonaContext:
    return context or build_context(persona, **options)


def run_persona(
    persona: str | PersonaSpec,
    input: Mapping[str, Any] | None,
    *,
    context: PersonaContext | None = None,
    saver: Any = None,
    resume: Any = None,
    **context_options: Any,
) -> RunResult:
    """Run (or, with ``resume=``, continue) a persona's graph once and return its result.

    ``saver`` defaults to the SQLite checkpointer in the state folder (``$PERSONAS_HOME``).
    """
    ctx = _context(persona, context, context_options)
    if saver is None:
        saver = checkpointer(ctx.config.path("checkpoints.sqlite"))
    return RunDriver(ctx, saver).invoke(input, resume=resume)


async def arun_persona(
    persona: str | PersonaSpec,
    input: Mapping[str, Any] | None,
    *,
    context: PersonaContext | None = None,
    saver: Any = None,
    resume: Any = None,
    **context_options: Any,
) -> RunResult:
    """Async twin of :func:`run_persona` (``ainvoke``). ``saver`` defaults to an in-memory
    checkpointer; pass an async one (e.g. ``AsyncSqliteSaver``) to keep runs across processes.
    """
    ctx = _context(persona, context, context_options)
    return await RunDriver(ctx, saver).ainvoke(input, resume=resume)
