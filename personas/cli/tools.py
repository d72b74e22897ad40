"""``personas tools list`` and ``personas tools schema``: see and count what a persona costs."""

from __future__ import annotations

import json
import shlex
from typing import Any

import typer

from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.kernel.context import select_operations, select_tools
from personas.runtime.loader import load_persona

from .common import command_group, config, indented

app = command_group("List Klaviyo tools and print their schemas as the model receives them.", no_args_is_help=True)


def _toolkit(include_beta: bool) -> Any:
    from klaviyo_toolkit.tools import KlaviyoToolkit

    return KlaviyoToolkit(scopes="*", include_beta=include_beta)


def tool_row(op: Any) -> dict[str, Any]:
    """The fields of the CLI contract for one operation."""
    rl = op.rate_limit
    return {
        "name": op.operation_id,
        "operation_id": op.operation_id,
        "method": op.method,
        "path": op.path,
        "tag": op.tag,
        "summary": op.summary,
        "scopes": list(op.scopes),
        "rate_limit": {"burst": rl.burst, "steady": rl.steady, "daily": rl.daily},
        "read_only": op.read_only,
        "destructive": op.destructive,
        "beta": op.beta,
        "aliases": list(op.aliases),
    }


def _selected_ops(persona: str | None, beta: bool) -> list[Any]:
    if persona:
        spec = load_persona(persona, home=config().home)
        return select_operations(KlaviyoToolkit(scopes=spec.scopes), spec.tools)
    return list(_toolkit(beta).catalog)


def _check_tag(tag: str, beta: bool) -> None:
    """Refuse a tag no operation has (exit 2), naming the tags there are; an empty list would look like
    a valid answer."""
    from personas.kernel.errors import UsageProblem

    wanted = tag.strip().lower()
    tags = sorted({op.tag for op in _toolkit(beta).catalog}, key=str.lower)
    if any(t.lower() == wanted for t in tags):
        return
    if not beta and any(op.tag.lower() == wanted for op in _toolkit(True).catalog):
        raise UsageProblem(f"--tag {tag}: only beta operations have this tag; add --beta")
    raise UsageProblem(f"--tag: no operation has the tag {tag!r}; the tags are: {', '.join(tags)}")


@app.command("list")
def list_tools(
    persona: str = typer.Option(None, "--persona", "-p", help="Only the tools this persona binds."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    beta: bool = typer.Option(False, "--beta", help="Include beta operations."),
    tag: str = typer.Option(None, "--tag", help="Only operations with this tag."),
) -> None:
    """List tools: name, method, path, scopes, rate limit, read-only/destructive."""
    ops = _selected_ops(persona, beta)
    if tag:
        _check_tag(tag, beta)
        ops = [op for op in ops if op.tag.lower() == tag.strip().lower()]
    if as_json:
        typer.echo(json.dumps([tool_row(op) for op in ops], indent=1))
        return
    from rich.console import Console
    from rich.markup import escape

    from klaviyo_toolkit.effects import operation_effects

    console = Console(highlight=False)
    console.print(f"{len(ops)} Klaviyo tools")
    for op in ops:  # two lines a tool, so nothing is cut whatever the terminal's width
        console.print(
            f"[bold]{op.operation_id}[/bold]  {op.method} {escape(op.path)}" + ("  (beta)" if op.beta else "")
        )
        effects = ", ".join(sorted(e.value for e in operation_effects(op)))
        scopes = " ".join(op.scopes) or "none (client API)"
        indented(console, f"{scopes} · {op.rate_limit} · {effects}", "dim")


@app.command("schema")
def schema(
    names: list[str] = typer.Argument(None, help="Tool names (operation ids or aliases)."),
    persona: str = typer.Option(
        None, "--persona", "-p", help="What this persona binds at the start of a conversation."
    ),
    all_tools: bool = typer.Option(False, "--all", help="Every tool."),
    beta: bool = typer.Option(False, "--beta", help="Include beta operations (with --all)."),
) -> None:
    """Print tool definitions exactly as sent to the model (OpenAI function calling, strict).

    Give tool names, --all or --persona: one of them.
    """
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from personas.kernel.errors import UsageProblem

    chosen = [what for what, given in (("tool names", names), ("--all", all_tools), ("--persona", persona)) if given]
    if len(chosen) > 1:  # each picks the tools on its own: the others would be ignored without a word
        named = shlex.join(names) if names else "get_profiles"
        raise UsageProblem(
            f"give tool names, --all or --persona, not {' and '.join(chosen)}: each picks the tools "
            f"on its own (e.g. personas tools schema {named}, or personas tools schema --all)"
        )
    if persona:
        spec = load_persona(persona, home=config().home)
        tools = select_tools(KlaviyoToolkit(scopes=spec.scopes), spec.tools)
        if spec.tools.search:  # the chat graph also binds find_tools and describe_tool
            from graphs.chat.graph import search_schemas

            tools = [*tools, *search_schemas()]
    elif all_tools:
        tools = _toolkit(beta).get_tools()
    elif names:
        kit = _toolkit(beta)
        tools = [kit.tool(n) for n in names]
    else:
        raise UsageProblem("name at least one tool, or pass --all or --persona PERSONA")
    definitions = [convert_to_openai_tool(t, strict=True) for t in tools]
    typer.echo(json.dumps(definitions, indent=1))
    compact = json.dumps(definitions, separators=(",", ":"))
    # on stderr, so standard output stays the JSON array: what these definitions cost in every request
    typer.echo(
        f"{len(definitions)} tool definitions, {len(compact):,} characters of JSON, about "
        f"{round(len(compact) / 4):,} tokens (4 characters a token) in every model request",
        err=True,
    )
