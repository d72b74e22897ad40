"""What the syncer reads: its input, the source's rows, and which Klaviyo list or segment a name means.

The file readers are generators: a CSV or JSON-lines file is read row by row (and a list's or
segment's members page by page, ``members.py``), so a source or list of any size never sits in
memory: the caller streams each piece into the plan's SQLite file (``plan.py``).

File rows become a :class:`Row` (valid: sent) or an :class:`InvalidRow` (reported with its row number,
the field, and the fix; never sent). Input that cannot work at all (no such file, no email column,
an email or consent column under a name that is not read, an unknown list) raises
:class:`SyncInputError` naming the field and the fix.

Example::

    request = parse_input({"source": {"kind": "csv", "path": "leads.csv"}, "target_list_id": "Xy12Ab"})
    for row in read_file(request.source, "consent", {"yes"}):
        ...

A list or segment is given by id or by name, and a name can look like an id (six letters and
digits: "Spring", "VIPs24"), so the shape of a value never decides alone (:func:`resolve_group`):
``id:Xy12Ab`` and ``name:Spring`` say which; so do the input's keys (``target_list_id`` and
``source.id`` hold ids, ``source.name`` names); ``target`` holds either, and a value there that
could be both is looked up as a name and read as an id, and refused if it is both.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from klaviyo_toolkit.errors import InvalidArgumentError
from klaviyo_toolkit.filters import quoted
from klaviyo_toolkit.json_text import JsonTextError, loads
from klaviyo_toolkit.limits import text_problem
from klaviyo_toolkit.redact import clip, redact_text
from klaviyo_toolkit.validation import canonical_email, canonical_phone, describe_hidden, email_problem, phone_problem

from .consent import NO_CONSENT, NO_CONSENT_KEYS, consent_key, consent_like, other_channel
from .csv_text import SEPARATORS, Lines, unclosed_quote

__all__ = [
    "InvalidRow", "Resolved", "Row", "SourceSpec", "SyncInputError", "SyncRequest", "check_file", "group_ref",
    "misnamed_column", "parse_input", "read_file", "resolve_group", "segment_hint", "validate_record",
]

FILE_KINDS = ("csv", "jsonl")
GROUP_KINDS = ("list", "segment")
KIND_ALIASES = {"csv": "csv", "jsonl": "jsonl", "json-lines": "jsonl", "jsonlines": "jsonl", "ndjson": "jsonl",
                "list": "list", "segment": "segment"}
#: Column names (normalized) accepted for each field.
ALIASES = {
    "email": ("email", "email_address", "e_mail", "e_mail_address"),
    "phone_number": ("phone_number", "phone", "mobile", "mobile_number"),
    "first_name": ("first_name", "firstname", "given_name"),
    "last_name": ("last_name", "lastname", "surname", "family_name"),
    "external_id": ("external_id", "externalid"),
}
#: What a phone number may carry that E.164 leaves out: spaces, brackets, dots and dashes are dropped.
PHONE_PUNCTUATION = re.compile(r"[\s().-]")


class SyncInputError(InvalidArgumentError):
    """The sync's input cannot work; the message names the field (or row) and the fix."""

    def __init__(self, field: str, fix: str) -> None:
        super().__init__("segment-sync input", [(field, fix)])


@dataclass(frozen=True)
class SourceSpec:
    """Where the rows come from: a file (``csv``/``jsonl`` and ``path``) or Klaviyo groups (``ids``,
    or ``names`` until the graph resolves them to ids)."""

    kind: str
    path: str | None = None
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def is_file(self) -> bool:
        return self.kind in FILE_KINDS


@dataclass(frozen=True)
class SyncRequest:
    """A sync: from ``source`` into the list ``target_list_id`` (an id, or a name until resolved).

    ``mode`` is ``add-only`` (the safe default: nobody leaves the list) or ``mirror`` (members not in
    the source leave it, each batch after approval). ``target_name`` is the name the list was found
    by; ``target_unread`` says the target was given as a name or an id, no list has it as a name, and
    so it is taken as an id that only the first read of the list confirms.
    """

    source: SourceSpec
    target_list_id: str
    dry_run: bool = False
    mode: str = "add-only"
    target_name: str | None = None
    target_unread: bool = False
    target_opt_in: str | None = None  # "double_opt_in": a subscribe asks the person to confirm
    target_key: str = "target_list_id"  # the input's key the target was given under: errors name it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SyncRequest:
        src = data["source"]
        spec = SourceSpec(src["kind"], src.get("path"), tuple(src.get("ids") or ()), tuple(src.get("names") or ()))
        return cls(spec, data["target_list_id"], bool(data.get("dry_run")), str(data.get("mode") or "add-only"),
                   data.get("target_name"), bool(data.get("target_unread")), data.get("target_opt_in"),
                   str(data.get("target_key") or "target_list_id"))


@dataclass(frozen=True)
class Row:
    """A valid source row; ``email`` is as given, the plan matches it case-insensitively."""

    row: int
    email: str | None = None
    phone_number: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    consent: bool = False
    profile_id: str | None = None


#: How much of an invalid row's value is shown (after redaction).
SHOWN_CHARS = 100


@dataclass(frozen=True)
class InvalidRow:
    """A row that is reported and skipped: where, which field, and what to do about it."""

    row: int
    field: str
    value: str
    problem: str
    #: who the row still names when another field made it invalid (its email, its phone number in
    #: E.164 when that is valid, its external id): a mirror sync never removes that member
    email: str | None = None
    phone: str | None = None
    external_id: str | None = None

    def __post_init__(self) -> None:
        # Shown, kept in state and in the sync's file: a secret pasted into the source (a key in the
        # phone column) is masked, and masked whole, before the value is cut to what is shown.
        object.__setattr__(self, "value", clip(self.value, SHOWN_CHARS))
        object.__setattr__(self, "problem", redact_text(self.problem))


# -- input ----------------------------------------------------------------------------------------------
def _ids(source: Mapping[str, Any]) -> tuple[str, ...]:
    raw = source.get("ids", source.get("id"))
    items = raw if isinstance(raw, list) else [raw]
    ids = tuple(group_ref(i, "id") for i in items if isinstance(i, str) and split_ref(i)[1])
    if not ids or len(ids) != len(items):
        raise SyncInputError("source.id", "give the list's or segment's id or name as text (several as source.ids "
                                          "or source.names)")
    return ids


MODES = ("add-only", "mirror")
#: What a Klaviyo list or segment id looks like (six letters and digits). A value of another shape is
#: a name; one of this shape may be either ("Spring", "VIPs24" are names), so the shape never makes
#: a value an id: see :func:`group_ref`.
GROUP_ID_RE = re.compile(r"^[A-Za-z0-9]{6}$")
#: How a value says which it is: ``id:Xy12Ab`` or ``name:Spring`` (in ``target`` or a source's ids or names).
FORMS = ("id", "name")


def split_ref(value: str) -> tuple[str, str]:
    """(what ``value`` is: ``id``, ``name`` or ``either``, the id or name itself).

    ``id:`` and ``name:`` say which; otherwise a value shaped like an id may be either, and any other
    value is a name.
    """
    value = value.strip()
    for form in FORMS:
        if value.startswith(f"{form}:"):
            return form, value[len(form) + 1:].strip()
    return ("either" if GROUP_ID_RE.fullmatch(value) else "name"), value


def group_ref(value: str, declared: str) -> str:
    """``value`` as given under a key that says what it holds (``declared``: ``id``, ``name`` or
    ``either``): an id-shaped value under an ``id`` or ``name`` key gets that prefix, so that it is
    not also looked up as the other; an id key's value that cannot be an id stays a name."""
    form, text = split_ref(value)
    return f"{declared}:{text}" if form == "either" and declared in FORMS else value.strip()


def _same_group(a: str, b: str) -> bool:
    """Whether two values as given name the same list (an ``either`` one matches an id and a name alike)."""
    (form_a, text_a), (form_b, text_b) = split_ref(a), split_ref(b)
    return text_a == text_b and (form_a == form_b or "either" in (form_a, form_b))


def parse_input(payload: Any, default_mode: str = "add-only") -> SyncRequest:
    """Validate the sync's input; raises SyncInputError naming the field and the fix.

    The target list and a list or segment source are given by id or by name (``target`` or
    ``target_list_id``; ``source.id``/``ids`` or ``source.name``/``names``); names are resolved by
    the graph. ``target`` holds a name or an id; the other keys say which, and ``id:X`` or ``name:X``
    says it anywhere (see :func:`group_ref`). ``mode`` is ``add-only`` or ``mirror`` (default: the
    persona's ``mode`` setting).
    """
    example = ('{"source": {"kind": "csv", "path": "examples/vip-members.csv"}, "target": "VIP Customers", '
               '"mode": "add-only"}')
    if not isinstance(payload, Mapping):
        raise SyncInputError("input", f"give a JSON object, e.g. {example}")
    unknown = sorted(set(payload) - {"source", "target", "target_list_id", "mode", "dry_run"})
    if unknown:
        raise SyncInputError(unknown[0], "unknown key; the input has source, target (a list's name or id), mode "
                                         "(add-only or mirror) and dry_run")
    mode = payload.get("mode", default_mode)
    if mode not in MODES:
        raise SyncInputError("mode", f"{mode!r}; use add-only (only add; the default) or mirror (also remove "
                                     "members not in the source, after approval)")
    if "target" in payload and "target_list_id" in payload:
        raise SyncInputError("target", "give target or target_list_id, not both")
    source = payload.get("source")
    if not isinstance(source, Mapping):
        raise SyncInputError("source", f"missing; say where the rows come from, e.g. {example}")
    path = source.get("path")
    raw_kind = str(source.get("kind") or "").strip().lower()
    if not raw_kind and isinstance(path, str):
        raw_kind = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(Path(path).suffix.lower(), "")
    kind = KIND_ALIASES.get(raw_kind)
    if kind is None:
        raise SyncInputError("source.kind", f"{raw_kind or 'missing'}; use csv or jsonl (with path), or list or "
                                            "segment (with id)")
    field = "target" if "target" in payload or "target_list_id" not in payload else "target_list_id"
    target = payload.get(field)
    if not isinstance(target, str) or not split_ref(target)[1]:
        raise SyncInputError(field, "give the name or id of the Klaviyo list to sync into (personas list shows "
                                    "none; get_lists does), e.g. \"VIP Customers\"")
    target = group_ref(target, "either" if field == "target" else "id")
    dry_run = payload.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise SyncInputError("dry_run", "use true (show the plan, send nothing) or false")
    if kind in FILE_KINDS:
        if not isinstance(path, str) or not path.strip():
            raise SyncInputError("source.path", f"give the path of the {kind} file")
        if not Path(path).is_file():
            raise SyncInputError("source.path", f"no file at {path}; give the path of a readable {kind} file")
        spec = SourceSpec(kind, str(Path(path).resolve()))  # a run continued from another folder reads the same file
    else:
        names = _names(source) if ("name" in source or "names" in source) else _ids(source)
        spec = SourceSpec(kind, names=names)  # ids or names; the graph resolves names to ids
        if kind == "list" and any(_same_group(target, group) for group in spec.names):
            raise SyncInputError("source", "is the target list itself; sync from another list or a segment")
    return SyncRequest(spec, target, dry_run, str(mode), target_key=field)


def _names(source: Mapping[str, Any]) -> tuple[str, ...]:
    raw = source.get("names", source.get("name"))
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(n, str) and split_ref(n)[1] for n in items):
        raise SyncInputError("source.name", "give the list's or segment's name as text (or a list of names)")
    return tuple(group_ref(n, "name") for n in items)


@dataclass(frozen=True)
class Resolved:
    """A list or segment found: its ``id``, the ``reads`` it took, the ``name`` it was found by (if it
    was), and ``unread``: given as a name or an id, no group has that name, so it is taken as an id
    that the first read of its members confirms (no call spent on that here)."""

    id: str
    reads: int
    name: str | None = None
    unread: bool = False
    opt_in: str | None = None  # a list's opt_in_process, when the name lookup read it (free)


def _find(kit: Any, op: str, attribute: str, value: str) -> tuple[list[dict[str, Any]], int]:
    """The groups whose ``attribute`` (name or id) equals ``value``, and the calls it took."""
    found: list[dict[str, Any]] = []
    calls = 0
    for page in kit.pages(op, filter=f"equals({attribute},{quoted(value)})"):
        calls += 1
        found.extend(page.data or [])
    return found, calls


def _opt_in(found: list[dict[str, Any]]) -> str | None:
    return (found[0].get("attributes") or {}).get("opt_in_process") if len(found) == 1 else None


def resolve_group(kit: Any, kind: str, value: str, field: str) -> Resolved:
    """The list or segment ``value`` names (see :func:`split_ref`), in the fewest reads.

    An id (``id:X``) costs none. A name costs one lookup. A value that may be either costs the same
    one name lookup: no group named so, it is taken as an id (its members' read checks it); named so
    by the group with that id, it is that group. Only when another group has it as its name is the
    id looked up too: if both exist, the input is refused, naming both and how to choose.
    """
    form, text = split_ref(value)
    if form == "id":
        return Resolved(text, 0)
    op = "get_lists" if kind == "list" else "get_segments"
    named, reads = _find(kit, op, "name", text)
    if form == "either":
        others = [r for r in named if str(r["id"]) != text]
        if not others:
            return Resolved(text, reads, text if named else None, unread=not named, opt_in=_opt_in(named))
        owner = [r for r in named if str(r["id"]) == text]
        if not owner:
            owner, more = _find(kit, op, "id", text)
            reads += more
        if owner:
            owned = (owner[0].get("attributes") or {}).get("name")
            ids = ", ".join(str(r["id"]) for r in others)
            raise SyncInputError(field, f"{text!r} is the id of {kind} {owned!r} and the name of {kind}"
                                        f"{'s' if len(others) > 1 else ''} {ids}; say which you mean: "
                                        f"\"id:{text}\" or \"name:{text}\"")
        named = others
    if len(named) == 1:
        return Resolved(str(named[0]["id"]), reads, text, opt_in=_opt_in(named))
    if named:
        ids = ", ".join(str(r["id"]) for r in named)
        raise SyncInputError(field, f"{len(named)} {kind}s are named {text!r} ({ids}); give the id instead (as "
                                    f"\"id:{named[0]['id']}\")")
    known = [str(r["attributes"].get("name")) for page in kit.pages(op) for r in page.data or []]
    raise SyncInputError(field, f"no {kind} is named {text!r}{segment_hint(kit, kind, 'name', text)}; {kind}s: "
                                f"{', '.join(known[:20]) or 'none'}")


def segment_hint(kit: Any, kind: str, attribute: str, value: str) -> str:
    """Why no list has that name or id when a segment has (one read, on this error path only): Klaviyo
    computes a segment's members from its definition, so a sync can read it but never add to it."""
    if kind != "list" or not _find(kit, "get_segments", attribute, value)[0]:
        return ""
    return (f" ({value!r} is a segment: its members follow its definition and cannot be added or removed; sync into "
            f'a list, or read the segment as the source: {{"kind": "segment", "{attribute}": {json.dumps(value)}}})')


# -- file rows ------------------------------------------------------------------------------------------
def normalize_name(name: Any) -> str:
    return str(name or "").strip().lower().replace(" ", "_").replace("-", "_")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _escaped(value: str) -> str:
    """``value`` with unseen characters escaped (``\\u200b``), redacted first: escaping could split a secret."""
    return redact_text(value).encode("unicode_escape").decode()


def _named(record: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """Who a row (keys normalized) names, whatever else is wrong with it: its email, phone number
    (E.164, only when it is a valid one: as Klaviyo holds it) and external id, for :class:`InvalidRow`."""
    email, phone, external_id = (next((_text(record.get(a)) for a in ALIASES[f] if _text(record.get(a))), None)
                                 for f in ("email", "phone_number", "external_id"))
    compact = PHONE_PUNCTUATION.sub("", phone or "")
    return email, canonical_phone(compact) if phone and not phone_problem(compact) else None, external_id


def validate_record(rowno: int, record: Mapping[str, Any], consent_column: str,
                    consent_values: set[str]) -> Row | InvalidRow:
    """One row (keys already normalized) as a Row, or an InvalidRow saying what to fix.

    An InvalidRow carries the row's email, phone number and external id whatever made it invalid:
    they are still evidence that the person is in the source, so a mirror sync never removes them
    for it (a phone-only member's row with a typo in its consent cell was removed before).
    """
    values = {field: next((_text(record.get(a)) for a in names if _text(record.get(a))), None)
              for field, names in ALIASES.items()}
    email, phone = values["email"], values["phone_number"]

    def bad(field: str, value: str, problem: str) -> InvalidRow:
        return InvalidRow(rowno, field, value, problem, *_named(record))  # made only for an invalid row

    for key in (*(a for names in ALIASES.values() for a in names), consent_column):
        if isinstance(record.get(key), (dict, list)):  # a JSON-lines value no column could hold
            kind = "an object" if isinstance(record[key], dict) else "a list"
            return bad(key, str(record[key]), f'is {kind}, not text; give it as one value ("ann@example.com", "yes")')
    for field, value in (("email", email), ("phone_number", phone)):
        if value is not None and describe_hidden(value):
            return bad(field, _escaped(value),
                       f"contains characters that cannot be seen ({describe_hidden(value)}); remove them")
    # The toolkit's shared checks, at least as strict as Klaviyo: a row Klaviyo would refuse is
    # reported here, with its row number, and never sent (one such row can sink a whole batch).
    if email is not None and (problem := email_problem(email)):
        return bad("email", email, f"{problem}; or leave the email empty and give a phone_number")
    email = canonical_email(email) if email else None  # "jose\u0301@" is "jos\u00e9@": compared, sent as one
    if phone is not None:
        compact = PHONE_PUNCTUATION.sub("", phone)
        if problem := phone_problem(compact):
            # quoted as written, not compacted: a secret in it is found only as it was given
            return bad("phone_number", phone, problem.replace(repr(compact), repr(phone)))
        phone = canonical_phone(compact)  # "+44 (0)20 ..." is +4420...: the form Klaviyo holds and matches
    if email is None and phone is None:
        return bad("email", "", "no email (and no phone_number); every row needs an email, or a phone_number "
                                "for SMS-only contacts")
    for field in ("first_name", "last_name", "external_id"):  # Klaviyo refuses them: reported here, never sent
        if (value := values[field]) is not None and (problem := text_problem(value)):
            return bad(field, _escaped(value), problem)
    given = _text(record.get(consent_column)) or ""
    said = given.lower()
    consent = consent_key(said) in {consent_key(v) for v in consent_values}
    if not consent and consent_key(said) not in NO_CONSENT_KEYS:  # "maybe", "Yes please": never guessed either way
        return bad(consent_column, given, (  # as written: a secret lower-cased is not found
            f"{clip(given, 40)!r} is neither a value meaning consent ({', '.join(sorted(consent_values))}) nor one "
            f"meaning none ({', '.join(v or 'empty' for v in NO_CONSENT)}); write one of them, so consent is not "
            "guessed"))
    return Row(rowno, email, phone, values["external_id"], values["first_name"], values["last_name"], consent)


def check_file(spec: SourceSpec, consent_column: str | None = None) -> list[str]:
    """Fail fast on a file that cannot work (unreadable, empty, no email column, or an email or consent
    column under a name that is not read: :func:`misnamed_column`); its column names (a CSV's)."""
    assert spec.path is not None
    path = Path(spec.path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next((line for line in handle if line.strip()), None)
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except OSError as exc:
        raise SyncInputError("source.path", f"cannot read {path} ({exc.strerror}); check the path and permissions") \
            from None
    if first is None:
        raise SyncInputError("source.path", f"{path} is empty; it needs rows with an email column")
    if spec.kind == "jsonl":
        try:  # the first object's keys stand for the file's
            record = loads(first)
        except JsonTextError:
            return []  # reported on its line
        if isinstance(record, dict) and (problem := misnamed_column([str(k) for k in record], consent_column, "key")):
            raise SyncInputError("source.path", f"{path} {problem}")
        return []
    header = next(csv.reader([first]))
    columns = [normalize_name(c) for c in header]
    if problem := ambiguous_columns(columns):
        raise SyncInputError("source.path", f"{path} {problem}")
    known = set(ALIASES["email"]) | set(ALIASES["phone_number"])
    if not known & set(columns):
        for mark, name in SEPARATORS.items():  # Excel in many locales saves "CSV" with semicolons
            if known & {normalize_name(c) for c in next(csv.reader([first], delimiter=mark))}:
                raise SyncInputError("source.path", f"{path} is separated by {name}, not commas; save it as CSV "
                                                    "with commas (in Excel: CSV UTF-8 (Comma delimited))")
    if problem := misnamed_column(header, consent_column):
        raise SyncInputError("source.path", f"{path} {problem}")
    if not known & set(columns):
        shown = ", ".join(c for c in columns if c) or "none"
        raise SyncInputError("source.path", f"{path} has no email column (its columns: {shown}); name a column "
                                            "'email' (or 'phone_number' for SMS-only contacts) in the first line")
    return columns


def misnamed_column(header: list[str], consent_column: str | None, word: str = "column") -> str | None:
    """Why a header (names as given) would be misread, or None: it has no email column but one that
    looks like it ("Customer Email"), or (with ``consent_column``, when consent is read) no column of
    that name but one that looks like it ("Email Consent"). Read as they are, every row of the first
    would be "no email" (and a mirror sync would remove those people), and every row of the second
    "no consent"; the person renames the column instead."""
    names = [normalize_name(c) for c in header]
    accepted = ", ".join(ALIASES["email"])
    if not set(ALIASES["email"]) & set(names):
        like = [c.strip() for c, n in zip(header, names, strict=True)
                if "mail" in n.replace("_", "") and not consent_like(n)]
        if like:
            return (f"has no email {word} the syncer reads (the names it takes, in any case, spaces for "
                    f"underscores: {accepted}), but "
                    f"{', '.join(repr(c) for c in like)} looks like one; rename it to 'email' in the first "
                    f"{'line' if word == 'column' else 'object'}, so its addresses are read")
    if consent_column and consent_column not in names:
        like = [c.strip() for c, n in zip(header, names, strict=True)
                if consent_like(n) and n not in ALIASES["email"] and not other_channel(n)]
        if like:
            return (f"has no {consent_column!r} {word}, but {', '.join(repr(c) for c in like)} looks like the "
                    f"consent {word}; rename it to {consent_column!r}, or set the persona's consent_column "
                    f"setting to its name ({normalize_name(like[0])}), so its consent is read")
    return None


def ambiguous_columns(columns: list[str], word: str = "column") -> str | None:
    """Why a header (names normalized) cannot be read without guessing, or None: a name given twice,
    or two names for one field (``email`` and ``e_mail``). Python keeps one of them and drops the
    other's values without a word; the person says which column holds the field instead."""
    seen: dict[str, int] = {}
    for n, name in enumerate(columns, 1):
        if name and name in seen:
            return (f"has the {word} {name!r} twice ({word}s {seen[name]} and {n}); keep one, or rename the other, "
                    "so no value is dropped unseen")
        seen.setdefault(name, n)
    for field, names in ALIASES.items():
        given = [c for c in columns if c in names]
        if len(given) > 1:
            return (f"has {len(given)} {word}s for {field} ({', '.join(given)}); keep one, or rename the others, "
                    "so no value is dropped unseen")
    return None


def _read_csv(path: Path, consent_column: str, consent_values: set[str]) -> Iterator[Row | InvalidRow]:
    rowno = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(lines := Lines(handle))
            header: list[str] = []
            while not any(header):
                line = next(reader, None)
                if line is None:
                    return
                header = [normalize_name(c) for c in line]
            rowno = starts = reader.line_num
            for values in reader:
                rowno, first, starts = rowno + 1, starts + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                record = dict(zip(header, values, strict=False))
                if lines.ended and starts > first and (problem := unclosed_quote(path, first, starts)):
                    raise SyncInputError("source.path", problem)  # a mirror would remove who those lines name
                if len(values) != len(header):
                    # An unquoted comma shifts every later value one column on: "Smith, John,yes" put
                    # " John" in the consent column. Such a row is reported, never guessed at.
                    yield InvalidRow(
                        rowno, "row", ",".join(values),
                        f"has {len(values)} fields where the header has {len(header)}; quote a value that "
                        'contains a comma ("Smith, John") or add the missing ones', *_named(record))
                    continue
                yield validate_record(rowno, record, consent_column, consent_values)
    except UnicodeDecodeError:  # raised where a chunk read ahead fails, not at the row: found anew
        raise not_utf8(path) from None
    except csv.Error as exc:
        raise SyncInputError("source.path", f"row {rowno + 1} of {path} is not valid CSV ({exc}); fix that row") \
            from None


def _read_jsonl(path: Path, consent_column: str, consent_values: set[str]) -> Iterator[Row | InvalidRow]:
    lineno = 0
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line in handle:
                lineno += 1
                if not line.strip():
                    continue
                try:
                    record = loads(line)  # strict: a key twice ("consent": "yes", "consent": "no") is not guessed at
                except JsonTextError as exc:
                    yield InvalidRow(lineno, "line", line.strip(),
                                     f"not valid JSON ({exc.reason}); each line must be one object like "
                                     '{"email": "ann@example.com"}')
                    continue
                if not isinstance(record, dict):
                    yield InvalidRow(lineno, "line", line.strip(), f"a JSON {type(record).__name__}, not an "
                                     'object; each line must be one object like {"email": "ann@example.com"}')
                    continue
                normalized = {normalize_name(k): v for k, v in record.items()}
                if problem := ambiguous_columns(list(map(normalize_name, record)), "key"):
                    keys = ", ".join(repr(k) for k in record)
                    yield InvalidRow(lineno, "line", line.strip(), clip(f"{problem} (its keys: {keys})", 400),
                                     *_named(normalized))
                    continue
                yield validate_record(lineno, normalized, consent_column, consent_values)
    except UnicodeDecodeError:  # raised where a chunk read ahead fails, not at the line: found anew
        raise not_utf8(path) from None


def not_utf8(path: Path) -> SyncInputError:
    """The error for a file that is not UTF-8, naming its first line (as an editor numbers lines) that is
    not, and the bytes there. A text reader decodes a chunk ahead of the row it is at, so the row it
    was reading when decoding failed can be thousands of rows before the one to fix."""
    with path.open("rb") as handle:
        for n, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                near = raw[max(0, exc.start - 20):exc.end + 20].decode("utf-8", "backslashreplace").strip()
                return SyncInputError("source.path", (
                    f"line {n} of {path} is not UTF-8 text (byte {exc.start + 1} of the line: {near}); "
                    "save it as UTF-8 (in Excel: CSV UTF-8 (Comma delimited))"))
    return SyncInputError("source.path", f"{path} is not UTF-8 text; save it as UTF-8 (CSV UTF-8)")


def read_file(spec: SourceSpec, consent_column: str, consent_values: set[str]) -> Iterator[Row | InvalidRow]:
    """The file's rows, one at a time (a generator: nothing is read before it is asked for); a file
    gone since the sync started (a run continued after it was moved) is an error saying so."""
    assert spec.path is not None
    if not Path(spec.path).is_file():
        raise SyncInputError("source.path", f"no file at {spec.path} any more (there when the sync started); put it "
                                            "back and continue the run, or start the sync again")
    reader = _read_csv if spec.kind == "csv" else _read_jsonl
    return reader(Path(spec.path), consent_column, consent_values)
