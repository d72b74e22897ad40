"""Cassettes of model responses: record a live model once, replay it anywhere without a key.

A cassette is a readable JSON file (format 2)::

    {"version": 2,
     "provenance": {"kind": "recorded", "requested_model": "gpt-4.1-mini", "served_models": ["gpt-4.1-mini-2025-04-14"],
                    "base_url": "https://api.openai.com/v1", "date": "2026-11-27", "package_version": "0.1.0"}
                 | {"kind": "authored", "by": "...", "method": "...", "date": "..."},
     "schemas": {"sha256:...": {"type": "function", "function": {...}}},     # each bound tool, once
     "interactions": [{"request": {...the key...}, "response": {"content": "...", "tool_calls": [...]},
                       "evidence": {"id": "chatcmpl-...", "model": "...", "usage": {...}}}]}   # recorded only

**The key** of a request (:func:`request_key`) is everything that decides what a model answers:
the model asked for and its generation settings (temperature, ...), the messages (role, text,
tool calls, tool results), the bound tools with a digest of each one's full definition as sent,
``tool_choice``, ``strict`` and ``parallel_tool_calls``. Only what truly varies between two runs
of the same case is masked, and :data:`MASKS` is the one list of it. Requests are matched in
order; a request that does not match, a cassette with too few interactions, or one played only in
part is an error that says how to re-record it.

**Provenance** is checked when a cassette loads (:func:`check_provenance`): a recorded cassette
must carry, for every answer, the response id, the model that served it and the token usage, and
name the endpoint without credentials; an authored one (answers written by hand) must carry none of
that. A cassette whose fields disagree does not load, so hand-written answers cannot pass for a
model's.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from klaviyo_toolkit.json_text import json_type
from klaviyo_toolkit.redact import clip, is_secret_key, redact_text

__all__ = [
    "FORMAT",
    "MASKS",
    "Cassette",
    "CassetteError",
    "UnexpectedModelCall",
    "UnusableCassette",
    "check_provenance",
    "message_to_response",
    "normalise_messages",
    "package_version",
    "public_base_url",
    "request_key",
    "response_problems",
    "response_to_message",
    "scrub",
    "stored",
    "tool_definition",
]

FORMAT = 2

#: What is masked in a request before it is compared: only what differs between two runs of the same
#: case on different days. Names of weekdays are masked whole ("Monday", never "Monitor" or "Month").
MASKS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("ISO date-times", re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\b"),
     "<TIME>"),
    ("ISO dates", re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<DATE>"),
    ("full weekday names", re.compile(r"\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"),
     "<WEEKDAY>"),
    # an API error's request id (``[request 2fffbb8f-...]`` in a tool result): new on every call
    ("API error request ids", re.compile(r"\[request [0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\]"),
     "[request <ID>]"),
)

#: Bind arguments that are part of the key, with the value that means "not given".
BIND_KEYS = ("tool_choice", "strict", "parallel_tool_calls")


class CassetteError(Exception):
    """The cassette cannot answer this run; the message says how to re-record it."""


class UnusableCassette(CassetteError):
    """The cassette a run would replay is missing, does not load, or is not this case's: found before
    anything ran, so the file is the user's to fix, as any input is (exit code 2). A cassette that
    loads and then stops answering the run stays a :class:`CassetteError` (exit 1): the run failed.
    """

    exit_code = 2

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class UnexpectedModelCall(CassetteError):
    """The run asked the model where no cassette exists because none was expected (``kind: none``).

    Unlike a cassette that stopped matching, this is about what the graph did: it asked the model
    where it was expected not to, and no re-recording of an existing cassette can answer it.
    """


def scrub(text: str) -> str:
    """Secrets masked by the one redaction function (``klaviyo_toolkit.redact``)."""
    return redact_text(text)


def stored(value: Any) -> Any:
    """``value`` (JSON data) as a saved cassette holds it: :meth:`Cassette.save` scrubs the file's text, so a
    key-looking string in hand-written answers is masked there, and what the case file says must be compared
    in that form (else the cassette never "holds the case's answers" and re-authoring cannot fix it)."""
    return _fixed_json(value, scrub)


def _fixed_json(value: Any, fix: Any) -> Any:
    """``value`` with ``fix`` applied to its JSON text, or walked as data where that text no longer parses
    or changed shape: a secret-named key with a bare value (``"token": null``) is masked to ``***``."""
    try:
        fixed = json.loads(fix(json.dumps(value, indent=1, ensure_ascii=False)))
    except ValueError:
        return _walk(value, fix)
    return fixed if _shape(fixed) == _shape(value) else _walk(value, fix)


def mask(text: str) -> str:
    """``text`` scrubbed of secrets, with :data:`MASKS` applied."""
    text = scrub(text)
    for _, pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def content_text(content: Any) -> str:
    """A message's content as one string (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


_DEFINITIONS: dict[tuple[int, bool | None], tuple[Any, dict[str, Any]]] = {}


def tool_definition(tool: Any, strict: bool | None = None) -> dict[str, Any]:
    """The tool's definition exactly as an OpenAI-compatible endpoint receives it (ChatOpenAI's conversion).

    A Klaviyo tool's definition depends only on its operation, so it is converted once per operation
    (the cache keeps the operation alive, so its id is never reused while cached).
    """
    from langchain_core.utils.function_calling import convert_to_openai_tool

    operation = getattr(tool, "operation", None)
    if operation is None or isinstance(tool, dict):
        return convert_to_openai_tool(tool, strict=strict)
    key = (id(operation), strict)
    hit = _DEFINITIONS.get(key)
    if hit is None or hit[0] is not operation:
        if len(_DEFINITIONS) > 4096:
            _DEFINITIONS.clear()
        hit = (operation, convert_to_openai_tool(tool, strict=strict))
        _DEFINITIONS[key] = hit
    copy: dict[str, Any] = json.loads(json.dumps(hit[1]))
    return copy


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def digest(definition: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(definition).encode()).hexdigest()[:16]


def normalise_messages(messages: Sequence[BaseMessage], masked: bool = True) -> list[dict[str, Any]]:
    """Messages as compared: role, text, the AI's tool calls, a tool result's tool and status."""
    fix = mask if masked else scrub
    out = []
    for msg in messages:
        item: dict[str, Any] = {"role": msg.type, "text": fix(content_text(msg.content))}
        if isinstance(msg, AIMessage) and msg.tool_calls:
            item["tool_calls"] = [{"name": c["name"], "args": _fixed(c["args"], fix)}
                                  for c in msg.tool_calls]
        if isinstance(msg, ToolMessage):
            item["tool"] = msg.name
            if msg.status != "success":
                item["status"] = msg.status
        out.append(item)
    return out


def _fixed(args: Any, fix: Any) -> Any:
    """Tool-call arguments with ``fix`` applied to their JSON text (as the key has always been made);
    where masking left text that no longer parses, or swallowed keys (a key block cut before its END
    line runs to the end of the text), walked as data instead: each string fixed, secret-named keys masked."""
    text = _canonical(args)
    data = json.loads(text)
    try:
        fixed = json.loads(fix(text))
    except ValueError:
        return _walk(data, fix)
    return fixed if _shape(fixed) == _shape(data) else _walk(data, fix)


def _shape(value: Any) -> Any:
    """Keys and lengths without the strings: what masking JSON text must leave as it was."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, dict):
        return {fix(str(k)): "***" if is_secret_key(str(k)) and v not in (None, "", True, False) else _walk(v, fix)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return fix(value) if isinstance(value, str) else value


def _tool_choice(value: Any) -> Any:
    """``tool_choice`` as ChatOpenAI sends it: a function name becomes ``{"function": name}``;
    ``any`` is ``required``."""
    if value in (None, "auto", "none", "required"):
        return value
    if value in ("any", True):
        return "required"
    if isinstance(value, str):
        return {"function": value}
    if isinstance(value, Mapping):
        name = (value.get("function") or {}).get("name") if isinstance(value.get("function"), Mapping) else None
        return {"function": name or value.get("name")}
    return str(value)


def request_key(
    messages: Sequence[BaseMessage],
    tools: Sequence[Any] = (),
    *,
    model: str = "",
    settings: Mapping[str, Any] | None = None,
    bind: Mapping[str, Any] | None = None,
    schemas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparable form of one model request (see the module docstring).

    ``schemas`` (when given) collects each tool's full definition under its digest, for the cassette.
    """
    bind = dict(bind or {})
    strict = bind.get("strict")
    tool_digests: dict[str, str] = {}
    for tool in tools:
        definition = tool_definition(tool, strict=strict)
        name = str(definition.get("function", {}).get("name"))
        tool_digests[name] = digest(definition)
        if schemas is not None:
            schemas[tool_digests[name]] = definition
    key: dict[str, Any] = {
        "model": model,
        "settings": {k: v for k, v in sorted((settings or {}).items()) if v is not None},
        "tool_choice": _tool_choice(bind.pop("tool_choice", None)),
        "strict": bind.pop("strict", None),
        "parallel_tool_calls": bind.pop("parallel_tool_calls", None),
        "tools": dict(sorted(tool_digests.items())),
        "messages": normalise_messages(messages),
    }
    other = {k: v for k, v in bind.items() if v is not None and k not in ("tools", "ls_structured_output_format")}
    if other:  # anything else bound (stop, response_format, ...) is part of the request too
        key["bind"] = json.loads(_canonical(other))
    return key


def response_to_message(response: Mapping[str, Any], index: int,
                        evidence: Mapping[str, Any] | None = None) -> AIMessage:
    calls = [
        {"name": c["name"], "args": c.get("args", {}), "id": c.get("id") or f"call_{index}_{i}", "type": "tool_call"}
        for i, c in enumerate(response.get("tool_calls") or [])
    ]
    meta = {"model_name": evidence.get("model"), "id": evidence.get("id")} if evidence else {}
    return AIMessage(content=response.get("content") or "", tool_calls=calls, response_metadata=meta)


def message_to_response(message: AIMessage) -> dict[str, Any]:
    return {
        "content": scrub(content_text(message.content)),
        "tool_calls": [{"name": c["name"], "args": c["args"], "id": c.get("id")} for c in message.tool_calls],
    }


def evidence_of(message: AIMessage) -> dict[str, Any]:
    """What the endpoint said about an answer: response id, the model that served it, token usage."""
    meta = dict(message.response_metadata or {})
    usage = dict(message.usage_metadata or {}) if message.usage_metadata else None
    if usage is None and isinstance(meta.get("token_usage"), Mapping):
        raw = meta["token_usage"]
        usage = {"input_tokens": raw.get("prompt_tokens"), "output_tokens": raw.get("completion_tokens"),
                 "total_tokens": raw.get("total_tokens")}
    return {
        "id": meta.get("id") or message.id,
        "model": meta.get("model_name") or meta.get("model"),
        "usage": {k: usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")} if usage else None,
        "finish_reason": meta.get("finish_reason"),
    }


def public_base_url(url: str | None) -> str:
    """``url`` without user, password, query or fragment (where credentials hide)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("klaviyo-personas")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        return "unknown"


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: Any) -> _dt.date | None:
    """``value`` as a day if it is a ``YYYY-MM-DD`` string naming a real one, else None."""
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        return None


def response_problems(response: Mapping[str, Any], n: int) -> list[str]:
    """Where an interaction's ``response`` has a field of the wrong JSON type (a hand edit, a bad merge).

    ``content`` is text (or null) and ``tool_calls`` a list of ``{name: text, args: object}``; anything
    else would reach the graph as a message no model sends.
    """
    problems = []
    content = response.get("content")
    if content is not None and not isinstance(content, str):
        problems.append(f"interaction {n}: response.content is {json_type(content)}; it must be a string (the "
                        "answer's text, \"\" for none)")
    calls = response.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        problems.append(f"interaction {n}: response.tool_calls is {json_type(calls)}; it must be a list of "
                        "{name, args} objects ([] for none)")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        where = f"interaction {n}: response.tool_calls[{i}]"
        if not isinstance(call, Mapping):
            problems.append(f"{where} is {json_type(call)}; it must be an object {{name, args}}")
        elif not isinstance(call.get("name"), str) or not call["name"]:
            problems.append(f"{where}.name is {json_type(call.get('name'))}; it must be the tool's name (a string)")
        elif call.get("args") is not None and not isinstance(call["args"], Mapping):
            problems.append(f"{where}.args is {json_type(call['args'])}; it must be an object of arguments")
    return problems


def check_provenance(data: Mapping[str, Any]) -> list[str]:
    """Why a cassette's provenance does not agree with its contents (empty when it does)."""
    prov = data.get("provenance")
    if not isinstance(prov, Mapping):
        return ["it does not say where it came from (provenance.kind recorded|authored)"]
    kind = prov.get("kind")
    interactions = [i for i in data.get("interactions") or [] if isinstance(i, Mapping)]
    problems: list[str] = []
    latest = _dt.datetime.now(_dt.UTC).date() + _dt.timedelta(days=1)  # a day's slack for time zones
    if kind == "authored":
        for field_name in ("by", "method", "date"):
            if not prov.get(field_name):
                problems.append(f"an authored cassette names who wrote it and how: provenance.{field_name} is missing")
        written = _day(prov.get("date")) if prov.get("date") else latest
        if written is None or written > latest:
            problems.append(f"provenance.date {prov['date']!r}: an authored cassette gives the day it was written, "
                            "YYYY-MM-DD, not in the future")
        for name in ("served_models", "requested_model", "base_url"):
            if name in prov:
                problems.append(f"an authored cassette has no {name}: no model answered it")
        with_evidence = [n for n, i in enumerate(interactions, 1) if i.get("evidence")]
        if with_evidence:
            problems.append(f"an authored cassette carries response evidence (interaction {with_evidence[0]}); "
                            "hand-written answers have no response id or usage")
    elif kind == "recorded":
        for field_name in ("requested_model", "base_url", "package_version"):
            if not prov.get(field_name):
                problems.append(f"a recorded cassette names {field_name} (provenance.{field_name} is missing)")
        day = _day(prov.get("date"))
        if day is None:
            problems.append("a recorded cassette gives its date as YYYY-MM-DD (provenance.date)")
        elif day > latest:
            problems.append(f"provenance.date {prov['date']} is in the future; a recorded cassette gives the day it "
                            "was recorded")
        if prov.get("base_url") and public_base_url(str(prov["base_url"])) != prov["base_url"]:
            problems.append("provenance.base_url holds credentials, a query or a fragment; keep scheme, host and path")
        served = prov.get("served_models")
        if not isinstance(served, list) or not served or not all(isinstance(s, str) and s for s in served):
            problems.append("a recorded cassette lists the models that answered (provenance.served_models)")
            served = []
        seen: set[str] = set()
        for n, item in enumerate(interactions, 1):
            ev = item.get("evidence")
            if not isinstance(ev, Mapping):
                problems.append(f"interaction {n} has no evidence (response id, served model, usage): "
                                "a recorded answer keeps what the endpoint returned")
                continue
            if not isinstance(ev.get("id"), str) or not ev["id"]:
                problems.append(f"interaction {n}: evidence.id (the response id) is missing")
            if not isinstance(ev.get("model"), str) or not ev["model"]:
                problems.append(f"interaction {n}: evidence.model (the model that served it) is missing")
            else:
                seen.add(ev["model"])
            usage = ev.get("usage")
            if not isinstance(usage, Mapping) or not all(
                type(usage.get(k)) is int and usage[k] >= 0 for k in ("input_tokens", "output_tokens")  # not a bool
            ):
                problems.append(f"interaction {n}: evidence.usage (input_tokens, output_tokens) is missing")
        if served and seen and set(served) != seen:
            problems.append(f"provenance.served_models {sorted(served)} is not what the answers say "
                            f"({sorted(seen)})")
    else:
        problems.append("it does not say where it came from (provenance.kind recorded|authored)")
    return problems


@dataclass
class Cassette:
    """An ordered list of (request, response) pairs with where they came from."""

    path: Path
    provenance: dict[str, Any]
    interactions: list[dict[str, Any]] = field(default_factory=list)
    rerecord_hint: str = ""
    position: int = 0
    schemas: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, rerecord_hint: str = "") -> Cassette:
        """The cassette at ``path``; :class:`UnusableCassette` naming the file and the fix if it is
        missing or does not load (``rerecord_hint`` says how to write it again)."""
        p = Path(path)
        hint = rerecord_hint or "check --replay's file, or re-record it with a live model (personas eval --record)"

        def unusable(what: str) -> UnusableCassette:
            return UnusableCassette(f"cassette {p} {what}; {hint}", p)

        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise unusable("does not exist") from None
        except ValueError as exc:
            raise unusable(f"is not valid JSON ({exc})") from None
        except OSError as exc:
            raise unusable(f"cannot be read ({exc.strerror or exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise unusable("has no 'interactions' list")
        if "version" not in data:
            missing = "'version' and 'provenance' fields" if "provenance" not in data else "'version' field"
            raise unusable(f"has no {missing} (a format {FORMAT} cassette says what it is and where its answers "
                           "came from)")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise UnusableCassette(f"cassette {p}: version is {json.dumps(version)} ({json_type(version)}); it must "
                                   f"be the number {FORMAT}; {hint}", p)
        if version != FORMAT:
            raise unusable(f"is format {version}, not {FORMAT} (whose keys hold the model, settings, tools, "
                           "tool_choice and strict)")
        problems = check_provenance(data)
        found = data.get("schemas")
        schemas: dict[str, Any] = found if isinstance(found, dict) else {}
        for n, item in enumerate(data["interactions"], 1):
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict) \
                    or not isinstance(item.get("response"), dict):
                problems.append(f"interaction {n} needs a request and a response")
                continue
            problems += response_problems(item["response"], n)
            tools = item["request"].get("tools") or {}
            if not isinstance(tools, dict):  # a hand edit: it would stop the whole run, not only this case
                problems.append(f"interaction {n}: request.tools is {json_type(tools)}; it must be an object "
                                "{tool name: sha256 digest of its definition under schemas}")
                continue
            for name, ref in tools.items():
                if not isinstance(ref, str) or ref not in schemas or digest(schemas[ref]) != ref:
                    problems.append(f"interaction {n}: the definition of tool {name} ({ref}) is missing or altered")
        if problems:
            raise unusable(f"does not load: {'; '.join(problems[:4])}"
                           + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""))
        return cls(p, dict(data["provenance"]), list(data["interactions"]), hint, schemas=dict(schemas))

    @classmethod
    def new(cls, path: str | Path, provenance: dict[str, Any]) -> Cassette:
        return cls(Path(path), dict(provenance), [])

    @property
    def kind(self) -> str:
        return str(self.provenance.get("kind"))

    def describe(self) -> str:
        p = self.provenance
        if p.get("kind") == "recorded":
            served = ", ".join(p.get("served_models") or []) or "?"
            asked = p.get("requested_model")
            via = f" (asked for {asked})" if asked and asked not in (p.get("served_models") or []) else ""
            return (f"recorded from {served}{via} at {p.get('base_url')} on {p.get('date')}, "
                    f"klaviyo-personas {p.get('package_version')}")
        return f"authored by hand ({p.get('method', 'written by the maintainers')}, {p.get('date')})"

    def next_response(
        self, request: dict[str, Any], schemas: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The next answer and its evidence, if ``request`` is the next one recorded (``schemas``: its tools'
        definitions by digest, to show what changed)."""
        if not self.interactions and self.provenance.get("kind") == "none":
            raise UnexpectedModelCall(f"the run asked the model, and there is no cassette at {self.path} to answer it: "
                                f"{self.rerecord_hint}")
        if self.position >= len(self.interactions):
            raise CassetteError(
                f"cassette {self.path} has {len(self.interactions)} responses but the run asked for more; "
                f"the prompt or graph changed: {self.rerecord_hint}"
            )
        expected = self.interactions[self.position]["request"]
        if expected != request:
            model = ""
            if {k for k in set(expected) | set(request) if expected.get(k) != request.get(k)} == {"model"}:
                model = (f" It answers requests for model {expected.get('model')!r} and this run asks for "
                         f"{request.get('model')!r}: set PERSONAS_MODEL={expected.get('model')} to replay it.")
            raise CassetteError(
                f"request {self.position + 1} does not match cassette {self.path}; {self.rerecord_hint}.{model}\n"
                f"{self.diff(expected, request, schemas or {})}"
            )
        item = self.interactions[self.position]
        self.position += 1
        return dict(item["response"]), item.get("evidence")

    def diff(self, expected: Mapping[str, Any], request: Mapping[str, Any], schemas: Mapping[str, Any]) -> str:
        """A unified diff of two keys; a changed tool shows its definitions' difference, not only the digests."""
        def shown(key: Mapping[str, Any], schemas: Mapping[str, Any]) -> list[str]:
            body = dict(key)
            body["tools"] = {n: schemas.get(d, d) for n, d in (key.get("tools") or {}).items()}
            return json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False).splitlines()

        lines = difflib.unified_diff(shown(expected, self.schemas), shown(request, schemas), "cassette",
                                     "this run", lineterm="", n=1)
        return clip("\n".join(lines), 3000, more="")

    def record(self, request: dict[str, Any], response: dict[str, Any], evidence: Mapping[str, Any] | None = None,
               schemas: Mapping[str, Any] | None = None) -> None:
        item: dict[str, Any] = {"request": request, "response": response}
        if evidence:
            item["evidence"] = dict(evidence)
        self.interactions.append(item)
        self.schemas.update(schemas or {})
        self.position = len(self.interactions)

    def check_finished(self) -> None:
        """Raise if some recorded responses were never asked for (the run took another path)."""
        if self.position != len(self.interactions):
            raise CassetteError(
                f"cassette {self.path} was played only in part ({self.position} of {len(self.interactions)} "
                f"responses used); {self.rerecord_hint}"
            )

    def body(self) -> dict[str, Any]:
        used = {d for i in self.interactions for d in (i["request"].get("tools") or {}).values()}
        if self.kind == "recorded":
            served = sorted({str((i.get("evidence") or {}).get("model")) for i in self.interactions
                             if (i.get("evidence") or {}).get("model")})
            self.provenance["served_models"] = served
        return {"version": FORMAT, "provenance": self.provenance,
                "schemas": {d: self.schemas[d] for d in sorted(used) if d in self.schemas},
                "interactions": self.interactions}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # scrubbed as data where scrubbing the text would break it: a file that does not load is a lost recording
        text = json.dumps(_fixed_json(self.body(), scrub), indent=1, ensure_ascii=False)
        self.path.write_text(text + "\n", encoding="utf-8")
