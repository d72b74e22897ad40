"""Authored answers checked against the request they answer, as the model endpoint would.

A hand-written answer must be one a model could have given to that request: under ``tool_choice:
none`` it calls no tool, under a forced function it calls exactly that one, with
``parallel_tool_calls: false`` at most one; every call names a tool that was bound, and its
arguments validate against that tool's definition as it was sent (strict mode: every property
present, null for the ones not used, nothing else). The definitions come from the cassette, which
holds each bound tool's full schema, so the check is against what the graph actually bound.

Problems read like ``answer 2, call get_profiles: 'page_size' is a required property`` and, where
the fix is only the nulls strict mode needs, give the arguments to write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["answer_problems", "completed_args"]


def _validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(dict(schema))


def completed_args(schema: Mapping[str, Any], args: Any) -> Any:
    """``args`` with every missing nullable property of a strict schema given as null (nested objects too)."""
    if not isinstance(args, dict):
        return args
    props = schema.get("properties") or {}
    out = dict(args)
    for name, sub in props.items():
        types = sub.get("type")
        nullable = (isinstance(types, list) and "null" in types) or types == "null" or any(
            (alt or {}).get("type") == "null" for alt in sub.get("anyOf") or [])
        if name not in out and nullable:
            out[name] = None
        elif name in out and isinstance(out[name], dict):
            out[name] = completed_args(sub, out[name])
        elif name in out and isinstance(out[name], list) and isinstance(sub.get("items"), dict):
            out[name] = [completed_args(sub["items"], item) for item in out[name]]
    return out


def _path(error: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")


def answer_problems(request: Mapping[str, Any], response: Mapping[str, Any], schemas: Mapping[str, Any],
                    index: int) -> list[str]:
    """Why ``response`` is not an answer a model could give to ``request`` (empty when it is)."""
    where = f"answer {index}"
    bound = {name: schemas.get(ref) or {} for name, ref in (request.get("tools") or {}).items()}
    calls = list(response.get("tool_calls") or [])
    choice = request.get("tool_choice")
    problems: list[str] = []
    if calls and (choice == "none" or not bound):
        why = "tool_choice is none" if bound else "no tool was bound"
        problems.append(f"{where} calls {', '.join(c.get('name', '?') for c in calls)}, but {why}: no model can call "
                        "a tool here")
        return problems
    if choice == "required" and not calls:
        problems.append(f"{where} calls no tool, but tool_choice is required")
    if isinstance(choice, Mapping) and choice.get("function"):
        forced = choice["function"]
        if len(calls) != 1 or calls[0].get("name") != forced:
            problems.append(f"{where}: tool_choice forces one call of {forced}; the answer calls "
                            f"{[c.get('name') for c in calls] or 'nothing'}")
    if request.get("parallel_tool_calls") is False and len(calls) > 1:
        problems.append(f"{where} makes {len(calls)} tool calls, but parallel_tool_calls is false")
    for call in calls:
        name = call.get("name")
        if name not in bound:
            problems.append(f"{where} calls {name}, which was not bound (bound: {', '.join(sorted(bound))})")
            continue
        function = bound[name].get("function") or {}
        schema = function.get("parameters") or {}
        args = call.get("args") or {}
        errors = sorted(_validator(schema).iter_errors(args), key=lambda e: list(e.absolute_path))
        if not errors:
            continue
        strict = function.get("strict") or request.get("strict")
        for error in errors[:4]:
            at = _path(error)
            problems.append(f"{where}, call {name}: {(at + ': ') if at else ''}{error.message}"
                            + (" (strict mode: every argument is given, null when not used)"
                               if strict and error.validator == "required" else ""))
        fixed = completed_args(schema, args)
        if fixed != args and not list(_validator(schema).iter_errors(fixed)):
            problems.append(f"{where}, call {name}: write the arguments as "
                            f"{json.dumps(fixed, ensure_ascii=False, sort_keys=True)}")
    return problems
