"""``personas chat PERSONA``: a terminal REPL on prompt_toolkit and rich.

Tokens stream as the model writes them; each tool call is shown with its arguments and a compact
result; calls the persona's policy stops for approval (consent, identity, destructive, sending ...)
wait for the person (approve / edit / reject); slash commands manage the
session; history persists in ``$PERSONAS_HOME/chat_history``. Ctrl-C cancels the current turn
at once (a step already under way, such as a request sent to Klaviyo, finishes in the background
and is kept in the conversation; nothing after it runs), Ctrl-D (or /exit) leaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
import traceback
import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from rich.markup import escape

from graphs.chat import bound_tools
from klaviyo_toolkit.redact import StreamRedactor, clip, redact
from personas.kernel.config import Config
from personas.kernel.governance import approval_need, approval_policy
from personas.kernel.models import resolve_model
from personas.kernel.privacy import private_file
from personas.runtime.context import build_context
from personas.runtime.driver import RunDriver, checkpointer

from .approvals import approval_lines
from .common import shown, visible
from .conversation import InputGone, go_on_line, input_gone, klaviyo_of, sigint_ignored, take_up
from .errors import error_line

HELP = """Commands:
  /help      this help                 /tools     tools bound now
  /scopes    the persona's scopes      /new       start a new conversation
  /history   this conversation         /audit     calls made in this conversation
  /dry-run   [on|off] dry run: writes shown, not sent (alone: switch)
  /exit      leave (or Ctrl-D)         Ctrl-C cancels the current turn"""

NO_MODEL = (
    "No model is configured, so {name} cannot answer yet. To use one, set OPENAI_API_KEY (for another "
    "OpenAI-compatible endpoint also OPENAI_BASE_URL, and PERSONAS_MODEL for a model other than {model}) and "
    "start `personas chat {name}` again; or replay a recorded conversation with `personas chat {name} "
    "--replay CASSETTE`{tour}. Until then the tools work without a model: try /tools and /scopes."
)
#: How ``/tools`` marks a tool whose calls stop for approval (``approval_need``): all of them, or some.
_APPROVAL_FLAGS = {"always": " [red](approval)[/red]", "sometimes": " [red](approval for some arguments)[/red]"}
TOUR_HINT = ", or take the guided tour on the demo sandbox with `personas chat {name} --sandbox`"


#: How long leaving waits for a step a cancelled turn left under way before abandoning it (seconds).
LEAVE_GRACE = 3.0


class _BackgroundTurn:
    """The graph's stream for one turn, run in a thread so that Ctrl-C gives the prompt back at once.

    A step already under way (a model call, a request sent to Klaviyo) cannot be taken back: after
    ``stop()`` the thread lets it finish (its result stays in the conversation) and runs nothing more.
    """

    def __init__(self, driver: RunDriver, payload: Any, resume: Any) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stopping = threading.Event()
        # set when the work ends: waited on instead of Thread.join, which a Ctrl-C can leave saying the
        # thread is no longer alive while it still runs
        self.finished = threading.Event()
        self.thread = threading.Thread(
            target=self._work, args=(driver, payload, resume), name="personas-chat-turn", daemon=True
        )
        self.thread.start()

    def _work(self, driver: RunDriver, payload: Any, resume: Any) -> None:
        try:
            stream = driver.stream(payload, resume=resume, modes=("messages", "updates"))
            with contextlib.closing(stream):
                for item in stream:
                    if self.stopping.is_set():
                        break
                    self.items.put(("chunk", item))
        except BaseException as exc:
            self.items.put(("error", exc))
        finally:
            self.items.put(("done", None))
            self.finished.set()

    def __iter__(self) -> Any:
        while True:
            try:
                kind, item = self.items.get(timeout=0.1)  # a short wait, so Ctrl-C lands at once
            except queue.Empty:
                continue
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item

    def stop(self) -> None:
        self.stopping.set()

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the work to end (at most ``timeout`` seconds); whether it has."""
        return self.finished.wait(timeout)


class Repl:
    """One chat session with a persona (see module docstring)."""

    def __init__(
        self,
        spec: Any,
        *,
        sandbox: Any = None,
        replay: str | None = None,
        input_fn: Any = None,
        model: Any = None,
        config: Config | None = None,
        suggestions: list[str] | None = None,
        tour: bool = True,
        thread: str | None = None,
    ) -> None:
        from rich.console import Console

        self.spec = spec
        self.sandbox = sandbox
        self.replay = replay
        self.settings = config or Config.from_env()
        self.console = Console(highlight=False)
        self.dry_run = spec.approval.dry_run
        self.saver = checkpointer(self.settings.path("checkpoints.sqlite"))
        self._home = self.settings.ensure_home()
        if model is None and replay:  # an explicit --replay wins over a live key
            model = resolve_model(
                spec.model, self.settings, temperature=spec.temperature, replay=replay, prefer_replay=True
            )
        self.model = model
        self.suggestions = list(suggestions or [])  # the guided tour's next messages (Enter sends one)
        self.tour = tour  # whether the guided tour exists for this persona (the chat persona's own)
        self._turn: _BackgroundTurn | None = None
        self.abandoned: str | None = None  # what was left under way when the session ended, if anything
        self._unfinished: str | None = None  # how the last turn ended early, until the conversation is mended
        self._new_context(thread)  # None: a new conversation; else an earlier one (checked by `personas chat`)
        self.session = input_fn or self._prompt_session()

    def _new_context(self, thread_id: str | None) -> None:
        """(Re)build the run context and its driver (a new conversation, or dry run toggled)."""
        self.ctx = build_context(
            self.spec,
            config=self.settings,
            sandbox=self.sandbox,
            replay=self.replay,
            dry_run=self.dry_run,
            model=self.model,
            thread_id=thread_id,
        )
        self.driver = RunDriver(self.ctx, self.saver)
        self.driver.config["metadata"].update(klaviyo_of(self.ctx, self.sandbox))  # refused elsewhere (--thread)

    @property
    def graph(self) -> Any:
        return self.driver.graph

    def _prompt_session(self) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        from klaviyo_toolkit.redact import redact_text

        class RedactedHistory(FileHistory):
            """The history file keeps what was typed with secrets masked, as checkpoints do."""

            def store_string(self, string: str) -> None:
                super().store_string(redact_text(string))

        return PromptSession(history=RedactedHistory(str(private_file(self._home / "chat_history"))))

    @property
    def config(self) -> dict[str, Any]:
        return self.driver.config

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        """The session: Ctrl-C cancels a turn even when the process was started with SIGINT ignored
        (a shell's background job, nohup), which Python would otherwise leave ignored."""
        if threading.current_thread() is not threading.main_thread():
            return self._session()
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return self._session()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _session(self) -> int:
        c = self.console
        c.print(f"[bold]{self.spec.name}[/bold] - {self.spec.description}")
        where = "the embedded sandbox" if self.sandbox is not None else (self.ctx.client.base_url)
        if self.ctx.model.model is None:
            c.print(f"Klaviyo: {where}.  Model: none.\n")
            c.print(self._no_model())
        else:
            c.print(f"Klaviyo: {where}.  Model: {escape(self.ctx.model.description)}.")
        if self.settings.openai_base_url and not self.settings.openai_api_key and not self.replay:
            c.print(f"[yellow]OPENAI_BASE_URL is {escape(self.settings.openai_base)} but OPENAI_API_KEY is not set, so "
                    "no model is used: set it too (a local server takes any value, such as 'local')[/yellow]")
        if self.suggestions:
            c.print(
                "\nNo model is configured, so this is a [bold]guided tour[/bold] on the demo sandbox: the "
                "answers are written by hand and replayed, while the tool calls, the approval you give and "
                "the refusal of an out-of-scope call are real. Press Enter to send each suggested message."
            )
        c.print("Type /help for commands.\n")
        take_up(self)  # an earlier conversation (--thread): the approval it was left waiting for, first
        while True:
            if self.suggestions:
                c.print(f"[dim]next: {escape(self.suggestions[0])}  (Enter to send it)[/dim]")
            try:
                text = self._ask("you> ")
            except EOFError:
                return self._leave()
            except KeyboardInterrupt:
                continue
            text = text.strip()
            if not text and self.suggestions:
                text = self.suggestions[0]
                c.print(f"you> {escape(text)}")
            if self.suggestions and text == self.suggestions[0]:
                self.suggestions.pop(0)
            if not text:
                continue
            if text.startswith("/"):
                try:
                    if self.command(text) == "exit":
                        return self._leave()
                except KeyboardInterrupt:  # e.g. while waiting for a cancelled turn's step to end
                    c.print("\n[yellow]command cancelled[/yellow]")
                continue
            if self.ctx.model.model is None:
                c.print(self._no_model())
                continue
            self.guarded(self.turn, {"messages": [HumanMessage(text)]})

    def guarded(self, work: Any, *args: Any) -> None:
        """Run a turn: Ctrl-C cancels it, an error is one line, and the REPL goes on either way."""
        try:
            work(*args)
        except KeyboardInterrupt:
            self._unfinished = "(turn cancelled by the user)"
            self.console.print("\n[yellow]turn cancelled[/yellow]")
        except Exception as exc:  # one line, and the REPL goes on (the traceback with --debug)
            self._unfinished = "(turn stopped by an error)"
            self._error(exc)

    def _leave(self) -> int:
        """Ctrl-D or /exit: a step a cancelled turn left under way gets a few seconds to finish (so its
        result and audit row are kept); then, or at once on Ctrl-C, it is abandoned and recorded as such.

        An abandoned step is still running in a worker thread that the interpreter would wait for at
        exit (a hung model call: minutes); ``abandoned`` tells ``personas chat`` to exit without waiting.
        """
        turn = self._turn
        if turn is not None and turn.running:
            what = self._step_under_way()
            with contextlib.suppress(KeyboardInterrupt):  # the Ctrl-C it invites may come while it is printed
                self.console.print(f"[dim](a {what} is still under way: waiting up to {LEAVE_GRACE:.0f} s for "
                                   "it; Ctrl-C leaves now)[/dim]")
                turn.wait(LEAVE_GRACE)
            if turn.running:
                self.abandoned = what
                with sigint_ignored():  # a further Ctrl-C must not cut the record short
                    self._record_abandoned(what)
                self.console.print(f"the {what} was abandoned (recorded in the conversation as cancelled)")
        self._turn = None
        if self.driver.exists():
            self.console.print(visible(go_on_line(self.spec.name, self.ctx.thread_id)), style="dim", markup=False,
                               soft_wrap=True)  # one line, to copy
        self.console.print("bye")
        return 0

    def _step_under_way(self) -> str:
        """What the cancelled turn is still doing: "model call" or "Klaviyo request"."""
        with contextlib.suppress(Exception):
            if "tool" in (self.graph.get_state(self.config).next or ()):
                return "Klaviyo request"
        return "model call"

    def _record_abandoned(self, what: str) -> None:
        """Record a step left under way: the conversation ends the turn with a note (as after Ctrl-C),
        and a Klaviyo request that may or may not have been sent gets an audit row saying so."""
        note = f"(turn cancelled by the user; the chat was left while a {what} was under way, which was abandoned)"
        try:
            if what == "Klaviyo request":
                snap = self.graph.get_state(self.config)
                messages = snap.values.get("messages", [])
                answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
                last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
                for call in (last.tool_calls if last is not None else []):
                    if call["id"] not in answered:
                        self.ctx.audit_record(
                            call["name"], "error", arguments=call["args"],
                            error="abandoned: the chat was left while this call was under way; "
                                  "it may or may not have reached Klaviyo",
                            extra={"note": note},
                        )
            self._unfinished = None
            self._mend(note)
        except Exception as exc:  # leaving must not fail; say what was not recorded
            self.console.print(f"[red]error:[/red] the abandoned step was not recorded: {shown(str(exc))}")

    def _no_model(self) -> str:
        tour = TOUR_HINT.format(name=self.spec.name) if self.tour and self.sandbox is None else ""
        return NO_MODEL.format(name=self.spec.name, model=self.spec.model, tour=tour)

    def _error(self, exc: Exception) -> None:
        if self.settings.debug:
            traceback.print_exception(exc)
        known = error_line(exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        debug = "`personas --debug chat ...` shows the traceback"
        message = known[0] if known else f"{type(exc).__name__}: {first} ({debug})"
        self.console.print(f"[red]error:[/red] {shown(message)}")

    def _discard_typeahead(self) -> bool:
        """Drop input typed or pasted before an approval request was on screen, so that it cannot
        answer the request: lines pasted in one go ("delete the list", "a") reach the terminal before
        the request they would approve exists. prompt_toolkit keeps keys read past the last prompt
        (its typeahead); the terminal keeps the rest. Whether anything was dropped."""
        dropped = False
        session_input = getattr(self.session, "input", None)
        if session_input is not None:
            from prompt_toolkit.input.typeahead import clear_typeahead, get_typeahead

            dropped = bool(get_typeahead(session_input))
            clear_typeahead(session_input)
        with contextlib.suppress(Exception):  # not a terminal (a pipe, a test's session): nothing queued there
            import select
            import termios

            fd = sys.stdin.fileno()
            if os.isatty(fd):
                dropped = dropped or bool(select.select([fd], [], [], 0)[0])
                termios.tcflush(fd, termios.TCIFLUSH)
        return dropped

    def _ask(self, prompt: str) -> str:
        if callable(self.session):
            return str(self.session(prompt))
        try:
            return str(self.session.prompt(prompt))
        except OSError as exc:  # EIO: the terminal hung up and SIGHUP was ignored (nohup); no one is there
            raise InputGone from exc

    def turn(self, payload: Any, resume: Any = None) -> None:
        self._settle()
        while True:
            self._stream(payload, resume)
            pending = self.driver.pending()
            if not pending:
                return
            payload, resume = None, [self._approve(item.value) for item in pending]

    def _stream(self, payload: Any, resume: Any = None) -> None:
        self._turn = _BackgroundTurn(self.driver, payload, resume)
        try:
            self._render(self._turn, sys.stdout)
        finally:
            self._turn.stop()  # nothing more runs once the turn is left (Ctrl-C, an error)

    def _render(self, chunks: Any, out: Any) -> None:
        streaming: StreamRedactor | None = None  # the answer as it streams, redacted whole (a key may span chunks)
        for mode, chunk in chunks:
            if mode == "messages":
                message, meta = chunk
                if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "agent" and message.content:
                    if streaming is None:
                        out.write("\n" + self.spec.name + "> ")
                        streaming = StreamRedactor()
                    piece = message.content if isinstance(message.content, str) else str(message.content)
                    out.write(visible(streaming.feed(piece)))
                    out.flush()
                continue
            if ((chunk or {}).get("__metadata__") or {}).get("cached"):
                # a resumed turn replays the results of the calls that ran before the pause: shown then
                continue
            for node, update in (chunk or {}).items():
                if not isinstance(update, dict):
                    continue
                for msg in update.get("messages", []) or []:
                    if isinstance(msg, AIMessage):
                        # Only the agent's tokens stream; another node's answer (the tool-call limit's)
                        # is printed whole, and an empty reply says so instead of printing nothing.
                        if node == "agent" and streaming is not None:
                            out.write(visible(streaming.end()) + "\n")
                            streaming = None
                        elif not msg.tool_calls:
                            said = msg.content if isinstance(msg.content, str) else str(msg.content or "")
                            said = said if said.strip() else "(no answer: the model's reply was empty; ask again)"
                            self.console.print(f"\n{self.spec.name}> {shown(said)}")
                        for call in msg.tool_calls:
                            given = {k: v for k, v in call["args"].items() if v is not None}
                            # masked as in the approval below it: a key the user gives is sent, never shown
                            args = json.dumps(redact(given), ensure_ascii=False)
                            name = shown(call["name"], lines=False)
                            self.console.print(f"  [cyan]→ {name}[/cyan] {shown(args[:300])}")
                    elif isinstance(msg, ToolMessage):
                        name = shown(str(msg.name), lines=False)
                        self.console.print(f"  [green]← {name}[/green] {shown(_compact(msg))}")
        if streaming is not None:
            out.write(visible(streaming.end()) + "\n")
        out.flush()

    def _approve(self, item: Any) -> dict[str, Any]:
        """Show one pending request in full (or summarised, with the full request in a file) and ask."""
        c = self.console
        item = item if isinstance(item, dict) else {}
        c.print(
            f"\n[bold red]Approval needed[/bold red]: {shown(str(item.get('tool')), lines=False)} - "
            f"{shown(str(item.get('summary')), lines=False)}"
        )
        if item.get("why"):  # may name Klaviyo data (the campaign that sends a template): one line, escaped
            c.print(f"  why: it {shown(str(item['why']), lines=False)}")
        for line in approval_lines(item, self._home / "approvals"):
            c.print("  " + shown(line))
        if self._discard_typeahead():
            c.print("[dim](what was typed before this request was shown is not taken as the answer)[/dim]")
        while True:
            try:
                answer = self._ask("approve / edit / reject? [a/e/r] ").strip().lower()
            except EOFError:  # Ctrl-D at the approval prompt: no; the terminal gone: no answer, still pending
                if input_gone(self.session):
                    raise InputGone from None
                c.print("reject (Ctrl-D)")
                return {"action": "reject", "reason": "Ctrl-D at the approval prompt"}
            if answer in ("a", "approve", "y", "yes"):
                return {"action": "approve"}
            if answer in ("r", "reject", "n", "no"):
                try:
                    reason = self._ask("reason (optional): ").strip()
                except EOFError:
                    reason = ""
                return {"action": "reject", "reason": reason or "rejected in chat"}
            if answer in ("e", "edit"):
                try:
                    text = self._ask("changed arguments as JSON (merged over the old): ").strip()
                except EOFError:
                    continue
                try:
                    args = json.loads(text) if text else None
                except json.JSONDecodeError as exc:
                    c.print(f"[red]not JSON ({exc.msg}); try again[/red]")
                    continue
                if isinstance(args, dict) and args:
                    return {"action": "edit", "args": args}
                c.print("[red]an edit needs a JSON object with at least one changed argument[/red]")
                continue
            c.print("[red]answer a (approve), e (edit) or r (reject)[/red]")

    def _wait_for_step(self) -> None:
        """Let the step a cancelled turn left under way (a model call, a request) finish."""
        if self._turn is not None and self._turn.running:
            self.console.print("[dim](waiting for the step already under way to finish)[/dim]")
            self._turn.wait()
        self._turn = None

    def _settle(self) -> None:
        """Before the conversation is used again: let a cancelled turn's last step end, then close the turn."""
        self._wait_for_step()
        if self._unfinished:
            note, self._unfinished = self._unfinished, None
            self._mend(note)

    def _mend(self, note: str) -> None:
        """After Ctrl-C or an error: drop the unfinished step, answer tool calls left open, end the turn.

        The conversation stays valid for the model (every tool call answered), and nothing of the
        abandoned turn runs later (a pending approval is dropped, not asked again).
        """
        from langgraph.graph import END

        snap = self.graph.get_state(self.config)
        for pending in self.driver.pending(snap):  # dropped, so answered "no" (and audited as such)
            value = pending.value if isinstance(pending.value, dict) else {}
            request = value.get("request") or {}
            self.ctx.audit_record(
                str(value.get("tool") or "?"),
                "rejected",
                method=request.get("method"),
                path=request.get("path"),
                arguments=value.get("args"),
                extra={"note": f"{note}: the pending approval was dropped"},
            )
        if snap.tasks:  # commit what finished; drop what did not (e.g. an approval left unanswered)
            self.graph.update_state(self.config, None, as_node=END)
            snap = self.graph.get_state(self.config)
        messages = snap.values.get("messages", [])
        last_message = messages[-1] if messages else None
        if not messages or (isinstance(last_message, AIMessage) and not last_message.tool_calls):
            return  # the turn had ended by itself
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        open_calls = [c for c in (last.tool_calls if last is not None else []) if c["id"] not in answered]
        closing = [
            ToolMessage("Not run: the turn ended before this call was made.", tool_call_id=c["id"], name=c["name"])
            for c in open_calls
        ]
        self.graph.update_state(self.config, {"messages": [*closing, AIMessage(note)]}, as_node="tool")
        self.graph.update_state(self.config, None, as_node=END)  # the tool node's edge queued the agent: drop it

    # -- slash commands --------------------------------------------------------------------
    def _dry_state(self) -> str:
        return "on" if self.dry_run else "off"

    def command(self, text: str) -> str | None:
        c = self.console
        name = text.split()[0].lower()
        if name in ("/exit", "/quit"):
            return "exit"
        if name == "/help":
            c.print(HELP, markup=False)  # plain text: "[on|off]" is not a Rich tag
        elif name == "/tools":
            self._settle()
            snap = self.graph.get_state(self.config)
            tools = bound_tools(self.ctx, snap.values.get("loaded_tools") or [])
            for tool in tools:
                if hasattr(tool, "operation"):
                    need = approval_need(approval_policy(self.ctx.toolkit) or self.spec.approval, tool.operation)
                    flag = _APPROVAL_FLAGS.get(need, "")
                    c.print(f"  {tool.name}{flag} - {escape(tool.operation.summary)}")
                else:
                    c.print(f"  {tool['function']['name']} - {escape(tool['function']['description'])}")
            klaviyo = sum(1 for tool in tools if hasattr(tool, "operation"))
            others = [tool["function"]["name"] for tool in tools if not hasattr(tool, "operation")]
            extra = f" + {', '.join(others)}" if others else ""
            c.print(f"{len(tools)} tools bound: {klaviyo} Klaviyo tool{'s' if klaviyo != 1 else ''}{extra}")
        elif name == "/scopes":
            c.print(shown("scopes: " + (", ".join(self.spec.scopes) or "none (every Klaviyo call is refused)")))
        elif name == "/new":
            self._settle()  # the old conversation's pending approval is recorded as dropped, not left open
            self._new_context(f"{self.spec.name}-{uuid.uuid4().hex[:12]}")
            c.print(f"new conversation {self.ctx.thread_id}")
        elif name == "/history":
            self._settle()
            messages = self.graph.get_state(self.config).values.get("messages", [])
            for msg in messages:
                who = {"human": "you", "ai": self.spec.name, "tool": f"tool {msg.name}"}.get(msg.type, msg.type)
                text = (
                    _compact(msg)
                    if isinstance(msg, ToolMessage)
                    else (msg.content if isinstance(msg.content, str) else str(msg.content))
                )
                calls = ", ".join(tc["name"] for tc in getattr(msg, "tool_calls", []) or [])
                c.print(shown(f"{who}: {clip(text, 300, more='')}".rstrip() + (f" [calls: {calls}]" if calls else "")))
            if not messages:
                c.print("no messages yet")
        elif name == "/audit":
            if self.ctx.audit is None:
                c.print("no audit log in this session")
            else:
                rows = self.ctx.audit.query(thread_id=self.ctx.thread_id, limit=50)
                for row in reversed(rows):  # oldest first, as the conversation went
                    line = f"  {row.time:%H:%M:%S} {row.tool} {row.status} {row.method or ''} {row.path or ''}"
                    c.print(shown(f"{line} {row.http_status or ''}".rstrip(), lines=False))
                if not rows:
                    c.print("no calls in this conversation yet")
        elif name == "/dry-run":
            words = text.split()[1:]
            wanted = {"on": True, "off": False}.get(words[0].lower()) if len(words) == 1 else None
            if words and wanted is None:
                c.print(f"/dry-run takes on or off (or nothing, to switch); dry run stays {self._dry_state()}")
                return None
            self.dry_run = (not self.dry_run) if wanted is None else wanted
            self._new_context(self.ctx.thread_id)
            c.print(f"dry run {'on: writes are shown, not sent' if self.dry_run else 'off: writes are sent'}")
        else:
            c.print(f"unknown command {name}; /help lists them")
        return None


def _compact(msg: ToolMessage) -> str:
    text = msg.content if isinstance(msg.content, str) else str(msg.content)
    text = text.replace('<untrusted-data source="klaviyo:' + str(msg.name) + '">', "").replace("</untrusted-data>", "")
    text = " ".join(text.split())
    return clip(text, 241)
