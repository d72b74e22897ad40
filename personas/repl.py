"""``personas chat PERSONA``: a terminal REPL on prompt_toolkit and rich.

Tokens stream as the model writes them; each tool call is shown with its arguments and a compact
result; destructive calls stop for approval (approve / edit / reject); slash commands manage the
session; history persists in ``$PERSONAS_HOME/chat_history``. Ctrl-C cancels the current turn,
Ctrl-D (or /exit) leaves.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

HELP = """Commands:
  /help      this help                 /tools     tools bound now
  /scopes    the persona's scopes      /new       start a new conversation
  /history   this conversation         /audit     calls made in this conversation
  /dry-run   toggle dry run (writes shown, not sent)
  /exit      leave (or Ctrl-D)         Ctrl-C cancels the current turn"""

NO_MODEL = (
    "No model is configured, so this persona cannot chat yet. Set OPENAI_API_KEY (and, for another "
    "OpenAI-compatible endpoint, OPENAI_BASE_URL and PERSONAS_MODEL) and run `personas chat` again, or "
    "replay recorded responses with `personas chat PERSONA --replay CASSETTE`. Tools, scopes and the sandbox "
    "work without a model: try /tools and /scopes."
)


class Repl:
    """One chat session with a persona (see module docstring)."""

    def __init__(
        self, spec: Any, *, sandbox: Any = None, replay: str | None = None, input_fn: Any = None, model: Any = None
    ) -> None:
        from rich.console import Console

        from .runtime import build_context, checkpointer, home

        self.spec = spec
        self.sandbox = sandbox
        self.replay = replay
        self.console = Console(highlight=False)
        self.dry_run = spec.approval.dry_run
        self.saver = checkpointer()
        self._home = home()
        self._build_context = build_context
        self.model = model
        self.ctx = build_context(spec, sandbox=sandbox, replay=replay, dry_run=self.dry_run, model=model)
        from graphs import build

        self.graph = build("chat", checkpointer=self.saver)
        self.session = input_fn or self._prompt_session()

    def _prompt_session(self) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        return PromptSession(history=FileHistory(str(self._home / "chat_history")))

    @property
    def config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": self.ctx.thread_id}, "recursion_limit": 100}

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        c = self.console
        c.print(f"[bold]{self.spec.name}[/bold] - {self.spec.description}")
        where = "the embedded sandbox" if self.sandbox is not None else (self.ctx.client.base_url)
        c.print(f"Klaviyo: {where}.  Model: {self.ctx.model.description}.")
        if self.ctx.model.model is None:
            c.print(NO_MODEL)
        c.print("Type /help for commands.\n")
        while True:
            try:
                text = self._ask("you> ")
            except EOFError:
                c.print("bye")
                return 0
            except KeyboardInterrupt:
                continue
            text = text.strip()
            if not text:
                continue
            if text.startswith("/"):
                if self.command(text) == "exit":
                    return 0
                continue
            if self.ctx.model.model is None:
                c.print(NO_MODEL)
                continue
            try:
                self.turn({"messages": [HumanMessage(text)]})
            except KeyboardInterrupt:
                self._cancel()
                c.print("\n[yellow]turn cancelled[/yellow]")

    def _ask(self, prompt: str) -> str:
        if callable(self.session):
            return str(self.session(prompt))
        return str(self.session.prompt(prompt))

    def turn(self, payload: Any) -> None:
        from langgraph.types import Command

        while True:
            self._stream(payload)
            pending = self._interrupts()
            if not pending:
                return
            answers = [self._approve(item) for item in pending]
            payload = Command(resume=answers[0] if len(answers) == 1 else None)
            if len(answers) > 1:
                snap = self.graph.get_state(self.config)
                ids = [i.id for task in snap.tasks for i in task.interrupts]
                payload = Command(resume=dict(zip(ids, answers, strict=True)))

    def _stream(self, payload: Any) -> None:
        out = sys.stdout
        streaming = False
        for mode, chunk in self.graph.stream(payload, self.config, context=self.ctx, durability="sync",
                                             stream_mode=["messages", "updates"]):
            if mode == "messages":
                message, meta = chunk
                if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "agent" and message.content:
                    if not streaming:
                        out.write("\n" + self.spec.name + "> ")
                        streaming = True
                    out.write(message.content if isinstance(message.content, str) else str(message.content))
                    out.flush()
                continue
            for node, update in (chunk or {}).items():
                if not isinstance(update, dict):
                    continue
                for msg in update.get("messages", []) or []:
                    if node == "agent" and isinstance(msg, AIMessage):
                        if streaming:
                            out.write("\n")
                            streaming = False
                        elif msg.content and not msg.tool_calls:
                            self.console.print(f"\n{self.spec.name}> {msg.content}")
                        for call in msg.tool_calls:
                            args = json.dumps({k: v for k, v in call["args"].items() if v is not None}, ensure_ascii=False)
                            self.console.print(f"  [cyan]→ {call['name']}[/cyan] {args[:300]}")
                    elif isinstance(msg, ToolMessage):
                        self.console.print(f"  [green]← {msg.name}[/green] {_compact(msg)}")
        if streaming:
            out.write("\n")
        out.flush()

    def _interrupts(self) -> list[Any]:
        snap = self.graph.get_state(self.config)
        return [i.value for task in snap.tasks for i in task.interrupts]

    def _approve(self, item: Any) -> dict[str, Any]:
        c = self.console
        request = item.get("request", {}) if isinstance(item, dict) else {}
        c.print(f"\n[bold red]Approval needed[/bold red]: {item.get('tool')} - {item.get('summary')}")
        c.print(f"  {request.get('method')} {request.get('path')}")
        if request.get("params"):
            c.print(f"  params: {json.dumps(request['params'])}")
        if request.get("body") is not None:
            c.print(f"  body: {json.dumps(request['body'], ensure_ascii=False)[:1200]}")
        while True:
            answer = self._ask("approve / edit / reject? [a/e/r] ").strip().lower()
            if answer in ("a", "approve", "y", "yes"):
                return {"action": "approve"}
            if answer in ("r", "reject", "n", "no"):
                reason = self._ask("reason (optional): ").strip()
                return {"action": "reject", "reason": reason or "rejected in chat"}
            if answer in ("e", "edit"):
                text = self._ask("new arguments as JSON (merged over the old): ").strip()
                try:
                    args = json.loads(text or "{}")
                except json.JSONDecodeError as exc:
                    c.print(f"[red]not JSON ({exc.msg}); try again[/red]")
                    continue
                if isinstance(args, dict):
                    return {"action": "edit", "args": args}
                c.print("[red]give a JSON object[/red]")

    def _cancel(self) -> None:
        """After Ctrl-C: close any tool calls left without answers so the conversation stays valid."""
        snap = self.graph.get_state(self.config)
        messages = snap.values.get("messages", [])
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if last is not None and last.tool_calls:
            closing = [ToolMessage("Cancelled by the user before it ran.", tool_call_id=c["id"], name=c["name"])
                       for c in last.tool_calls if c["id"] not in answered]
            if closing:
                self.graph.update_state(self.config, {"messages": [*closing, AIMessage("(turn cancelled)")]},
                                        as_node="agent")

    # -- slash commands --------------------------------------------------------------------
    def command(self, text: str) -> str | None:
        c = self.console
        name = text.split()[0].lower()
        if name in ("/exit", "/quit"):
            c.print("bye")
            return "exit"
        if name == "/help":
            c.print(HELP)
        elif name == "/tools":
            from graphs.chat import bound_tools

            snap = self.graph.get_state(self.config)
            tools = bound_tools(self.ctx, snap.values.get("loaded_tools") or [])
            for tool in tools:
                if hasattr(tool, "operation"):
                    flag = " [red](approval)[/red]" if tool.operation.destructive else ""
                    c.print(f"  {tool.name}{flag} - {tool.operation.summary}")
                else:
                    c.print(f"  {tool['function']['name']} - {tool['function']['description']}")
            c.print(f"{len(tools)} tools bound")
        elif name == "/scopes":
            c.print("scopes: " + ", ".join(self.spec.scopes))
        elif name == "/new":
            self.ctx = self._build_context(self.spec, sandbox=self.sandbox, replay=self.replay, dry_run=self.dry_run,
                                           thread_id=f"{self.spec.name}-{uuid.uuid4().hex[:12]}", model=self.model)
            c.print(f"new conversation {self.ctx.thread_id}")
        elif name == "/history":
            for msg in self.graph.get_state(self.config).values.get("messages", []):
                who = {"human": "you", "ai": self.spec.name, "tool": "tool"}.get(msg.type, msg.type)
                text = msg.content if isinstance(msg.content, str) else str(msg.content)
                calls = ", ".join(tc["name"] for tc in getattr(msg, "tool_calls", []) or [])
                c.print(f"{who}: {text[:300]}" + (f" [calls: {calls}]" if calls else ""))
        elif name == "/audit":
            if self.ctx.audit is None:
                c.print("no audit log in this session")
            else:
                for row in self.ctx.audit.query(thread_id=self.ctx.thread_id, limit=20):
                    c.print(f"  {row.time:%H:%M:%S} {row.tool} {row.status} {row.http_status or ''}")
        elif name == "/dry-run":
            self.dry_run = not self.dry_run
            thread = self.ctx.thread_id
            self.ctx = self._build_context(self.spec, sandbox=self.sandbox, replay=self.replay, dry_run=self.dry_run,
                                           thread_id=thread, model=self.model)
            c.print(f"dry run {'on: writes are shown, not sent' if self.dry_run else 'off'}")
        else:
            c.print(f"unknown command {name}; /help lists them")
        return None


def _compact(msg: ToolMessage) -> str:
    text = msg.content if isinstance(msg.content, str) else str(msg.content)
    text = text.replace('<untrusted-data source="klaviyo:' + str(msg.name) + '">', "").replace("</untrusted-data>", "")
    text = " ".join(text.split())
    return text[:240] + ("…" if len(text) > 240 else "")
