"""Sandbox domain: email templates as Klaviyo's Templates API behaves.

- ``create_template`` accepts the editor types Klaviyo allows through the API (``CODE``,
  ``USER_DRAGGABLE`` with ``html``; ``SYSTEM_DRAGGABLE`` with a drag-and-drop ``definition``, whose
  HTML the sandbox renders from the definition's text) and stops at 1,000 templates like Klaviyo.
- ``update_template`` refuses the fields an editor type does not take (``html`` on a drag-and-drop
  template, ``definition`` on a code template).
- ``clone_template`` copies a template under a new name; ``render_template`` fills Django-style
  variables (``{{ first_name }}``, ``{{ person.first_name|default:'friend' }}``, ``{% if %}``) from
  the given context; missing variables render as nothing, as Klaviyo documents. A clone counts
  toward the 1,000 templates as a created template does.
- Templates assigned to campaign messages are non-reusable copies (``copy_template``) and are not
  listed by ``get_templates``.

Universal content and deletion stay with the generic engine.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Mapping
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import bad_request, iso
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder

Json = dict[str, Any]
_d = DomainBuilder("templates")
EDITOR_TYPES = ("CODE", "USER_DRAGGABLE", "SYSTEM_DRAGGABLE")
TEMPLATE_LIMIT = 1000
_VAR = re.compile(r"{{\s*(.*?)\s*}}")
_IF = re.compile(r"{%\s*if\s+(.+?)\s*%}((?:(?!{%\s*if\s).)*?){%\s*endif\s*%}", re.S)
_ELSE = re.compile(r"{%\s*else\s*%}")


def is_reusable(template: Resource) -> bool:
    """False for the copies Klaviyo makes when a template is assigned to a message."""
    return not template.private.get("message_copy")


def copy_template(
    svc: Services, template: Resource, now: float, *, name: str | None = None, message_copy: bool = False
) -> Resource:
    """A stored copy of ``template`` (a reusable clone, or a message's non-reusable copy)."""
    attrs = {k: v for k, v in template.attributes.items() if k not in ("created", "updated")}
    attrs.update({"name": name or attrs.get("name", ""), "created": iso(now), "updated": iso(now)})
    copy = Resource(
        "template",
        svc.store.new_id("template", now),
        attrs,
        {},
        now,
        now,
        {"message_copy": True, "source_template": template.id} if message_copy else {},
    )
    svc.store.put(copy)
    return copy


@_d.handles("create_template")
def create_template(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    editor = attrs.get("editor_type")
    if editor not in EDITOR_TYPES:
        raise bad_request(
            f"editor_type {editor!r} is not allowed; use one of {', '.join(EDITOR_TYPES)} (CODE for custom HTML).",
            pointer="/data/attributes/editor_type",
        )
    _check_content(editor, attrs, creating=True)
    _check_room(ctx)
    now = ctx.now
    stored: Json = {
        "name": attrs["name"],
        "editor_type": editor,
        "html": attrs.get("html"),
        "text": attrs.get("text"),
        "amp": attrs.get("amp"),
        "definition": attrs.get("definition"),
        "created": iso(now),
        "updated": iso(now),
    }
    if editor == "SYSTEM_DRAGGABLE":
        stored["html"] = definition_html(stored["definition"])
    res = Resource("template", ctx.store.new_id("template", now), stored, {}, now, now)
    ctx.store.put(res)
    return ctx.one(res)


def _check_room(ctx: Ctx) -> None:
    """A 400 once the account holds ``TEMPLATE_LIMIT`` templates: "creation will fail" (create_template)
    and "cloning will fail" (clone_template) alike, as Klaviyo documents for both."""
    reusable = sum(1 for t in ctx.store.iter("template") if is_reusable(t))
    if reusable >= TEMPLATE_LIMIT:
        verb = "clones" if ctx.op.operation_id == "clone_template" else "creates"
        raise bad_request(
            f"This account already has {reusable} templates; the API {verb} at most "
            f"{TEMPLATE_LIMIT}. Delete unused templates first.",
            pointer="/data",
        )


@_d.handles("get_templates")
def get_templates(ctx: Ctx) -> Reply:
    return ctx.many(t for t in ctx.store.iter("template") if is_reusable(t))


@_d.handles("update_template")
def update_template(ctx: Ctx) -> Reply:
    res = ctx.get("template")
    ctx.check_body_id(res.id)
    attrs = ctx.attrs
    _check_content(str(res.attributes.get("editor_type")), attrs, creating=False)
    for key in ("name", "html", "text", "amp", "definition"):
        if key in attrs and not (key == "name" and attrs[key] is None):
            res.attributes[key] = attrs[key]
    if res.attributes.get("editor_type") == "SYSTEM_DRAGGABLE" and "definition" in attrs:
        res.attributes["html"] = definition_html(res.attributes.get("definition"))
    res.attributes["updated"] = ctx.now_iso
    res.updated = ctx.now
    ctx.store.put(res)
    return ctx.one(res)


@_d.handles("clone_template")
def clone_template(ctx: Ctx) -> Reply:
    source = ctx.get("template", str(ctx.data["id"]))
    _check_room(ctx)
    name = ctx.attrs.get("name") or f"Clone of {source.attributes.get('name', '')}"
    return ctx.one(copy_template(ctx.svc, source, ctx.now, name=name))


@_d.handles("render_template")
def render_template(ctx: Ctx) -> Reply:
    template = ctx.get("template", str(ctx.data["id"]))
    context = ctx.attrs.get("context")
    if not isinstance(context, Mapping):
        raise bad_request(
            'context must be a JSON object of template variables, e.g. {"first_name": "Jane"}.',
            pointer="/data/attributes/context",
        )
    attrs = dict(template.attributes)
    for key in ("html", "text", "amp"):
        if isinstance(attrs.get(key), str):
            attrs[key] = render_text(attrs[key], context, escape=key != "text")
    rendered = Resource("template", template.id, attrs, {}, template.created, template.updated)
    return ctx.one(rendered)


# -- rendering --------------------------------------------------------------------------------------
def render_text(text: str, context: Mapping[str, Any], *, escape: bool = True) -> str:
    """Fill ``{{ var }}`` (dot paths, ``|default:'x'``, ``|upper``, ``|lower``, ``|title``) and
    ``{% if var %}...{% else %}...{% endif %}`` from ``context``; unknown variables are empty."""
    previous = None
    while previous != text:  # innermost if-blocks first, until none are left
        previous = text
        text = _IF.sub(lambda m: _if_block(m, context), text)

    def substitute(match: re.Match[str]) -> str:
        value = _expression(match.group(1), context)
        out = "" if value is None or value is False else str(value)
        return _html.escape(out) if escape else out

    return _VAR.sub(substitute, text)


def _if_block(match: re.Match[str], context: Mapping[str, Any]) -> str:
    condition, body = match.group(1), match.group(2)
    negate = condition.startswith("not ")
    truthy = bool(_expression(condition[4:] if negate else condition, context))
    parts = _ELSE.split(body, maxsplit=1)
    yes, no = parts[0], parts[1] if len(parts) > 1 else ""
    return yes if truthy != negate else no


def _expression(text: str, context: Mapping[str, Any]) -> Any:
    name, *filters = [part.strip() for part in text.split("|")]
    value = _lookup(name, context)
    for flt in filters:
        fname, _, arg = flt.partition(":")
        if fname == "default" and value in (None, "", False):
            value = arg.strip().strip("'\"")
        elif fname in ("upper", "lower", "title") and isinstance(value, str):
            value = getattr(value, fname)()
    return value


def _lookup(path: str, context: Mapping[str, Any]) -> Any:
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
        return path[1:-1]
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def definition_html(definition: Any) -> str:
    """A simple HTML rendering of a drag-and-drop definition: its text and HTML blocks, in order."""
    pieces: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("content", "html") and isinstance(value, str):
                    pieces.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(definition)
    return "<html><body>" + "".join(f"<div>{p}</div>" for p in pieces) + "</body></html>"


# -- checks ---------------------------------------------------------------------------------------
def _check_content(editor: str, attrs: Mapping[str, Any], *, creating: bool) -> None:
    if editor == "SYSTEM_DRAGGABLE":
        for key in ("html", "amp"):
            if attrs.get(key) is not None:
                raise bad_request(
                    f"{key} is not allowed for SYSTEM_DRAGGABLE templates; send a definition instead.",
                    pointer=f"/data/attributes/{key}",
                )
        if creating and not attrs.get("definition"):
            raise bad_request(
                "definition is required for SYSTEM_DRAGGABLE templates.", pointer="/data/attributes/definition"
            )
        return
    if attrs.get("definition") is not None:
        raise bad_request(
            f"definition is only for SYSTEM_DRAGGABLE templates; a {editor} template takes html.",
            pointer="/data/attributes/definition",
        )
    if creating and not attrs.get("html"):
        raise bad_request(
            f'html is required for {editor} templates, e.g. "<html><body>Hello</body></html>".',
            pointer="/data/attributes/html",
        )


DOMAIN = _d.build()
