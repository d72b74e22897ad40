"""Generate the operation catalog from Klaviyo's OpenAPI spec.

The catalog is data: one record per operation (id, method, path, scopes, rate limit, filters,
aliases, read-only/destructive, stable/beta) and the *shape* of its arguments, from which the
toolkit builds both the pydantic argument model and the JSON:API envelope. Nothing else in the
project reads the spec, so the package works on machines that do not have it.

Usage::

    python -m klaviyo_toolkit.catalog.generate --spec ../shared/klaviyo-openapi
    python -m klaviyo_toolkit.catalog.generate --check   # exit 1 if the committed files differ
    python -m klaviyo_toolkit.catalog.generate --spec ~/Downloads/stable.json   # a newer revision

Moving to a newer revision: download Klaviyo's ``stable.json`` (and ``beta.json``) for it, run the
generator on it, run the tests; the client sends the new revision and the sandbox serves it (see the
README, "Moving to a new revision"). Constructs the generator does not know become JSON-text
arguments and are listed as notes, never a failure.

Outputs (all under ``klaviyo_toolkit/catalog/data/``, each saying on its first line that it is
generated): ``stable.operations.json`` and ``beta.operations.json`` (operations),
``stable.arguments.json`` and ``beta.arguments.json`` (each operation's arguments, read on first
use) and ``stable.schemas.json`` and ``beta.schemas.json`` (request/response JSON Schemas, for the
sandbox's validation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ._generator import Generator, Json, SpecError, header

__all__ = ["Generator", "SpecError", "generate", "json_schemas", "main"]

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "klaviyo-openapi"


def json_schemas(spec: Json) -> Json:
    """The spec's component schemas as JSON Schema 2020-12 `$defs`, for request/response checks.

    OpenAPI 3.0's `nullable` becomes a type list; descriptions and examples are dropped. `oneOf`
    is written as `anyOf`: the spec uses oneOf for shapes that overlap (three send-option objects
    that all accept `{}`), which a strict oneOf would reject in every real response.
    """

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        out: Json = {}
        for key, value in node.items():
            if key in ("description", "example", "examples", "x-readme", "title"):
                continue
            if key == "$ref":
                out["$ref"] = "#/$defs/" + value.rsplit("/", 1)[-1]
            elif key in ("properties", "$defs"):
                out[key] = {k: convert(v) for k, v in value.items()}
            elif key == "nullable":
                continue
            elif key == "oneOf":
                out["anyOf"] = convert(value)
            else:
                out[key] = convert(value)
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    components = spec.get("components") or {}
    defs = {name: convert(s) for name, s in (components.get("schemas") or {}).items()}
    for name, resp in (components.get("responses") or {}).items():
        content = resp.get("content") or {}
        if content:
            defs["Response" + name] = convert(next(iter(content.values()))["schema"])
    return defs


def render(stage: str, what: str, payload: Json) -> str:
    body = json.dumps(payload, indent=1, ensure_ascii=False)
    return '{"_generated": ' + json.dumps(header(stage, what)) + "," + body[1:] + "\n"


def spec_files(spec: Path) -> dict[str, Path | None]:
    """``{"stable": path, "beta": path or None}`` for a spec folder (or a ``stable.json`` given directly).

    Klaviyo publishes ``stable.json`` and ``beta.json`` (github.com/klaviyo/openapi); only the stable
    one is needed: without ``beta.json`` the catalog has no beta operations.
    """
    folder = spec.parent if spec.is_file() else spec
    stable = spec if spec.is_file() else spec / "stable.json"
    if not stable.exists():
        raise FileNotFoundError(
            f"no Klaviyo OpenAPI spec at {stable}; download stable.json from github.com/klaviyo/openapi"
        )
    beta = folder / "beta.json"
    return {"stable": stable, "beta": beta if beta.exists() else None}


def generate(spec_dir: Path, warnings: list[str] | None = None) -> dict[str, str]:
    """Return {file name: text} for every generated catalog file.

    Constructs this generator does not know (a newer spec's) fall back to JSON-text arguments and
    are reported in ``warnings`` (when given) instead of failing.
    """
    files: dict[str, str] = {}
    revision = ""
    for stage, path in spec_files(spec_dir).items():
        if path is None:
            spec: Json = {"info": {"version": f"{revision}.pre"}, "paths": {}, "components": {"schemas": {}}}
            raw = b""
            source = "none (no beta.json beside stable.json)"
        else:
            raw = path.read_bytes()
            spec = json.loads(raw)
            source = f"klaviyo-openapi/{stage}.json"
        gen = Generator(spec, stage)
        ops = gen.operations()
        if warnings is not None:
            warnings.extend(f"{stage}: {w}" for w in gen.warnings)
        revision = revision or str(spec["info"]["version"])
        meta = {
            "revision": spec["info"]["version"],
            "stage": stage,
            "source": source,
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "license": "Klaviyo OpenAPI spec, MIT License, Copyright (c) Klaviyo",
        }
        # Arguments are four fifths of the bytes and only needed when a tool is called or described in
        # full: kept in a file of their own, read on first use, so listing the tools parses 0.3 MB.
        files[f"{stage}.operations.json"] = render(
            stage,
            "operation records (arguments are in the .arguments.json beside)",
            {**meta, "count": len(ops), "operations": [{k: v for k, v in op.items() if k != "args"} for op in ops]},
        )
        files[f"{stage}.arguments.json"] = render(
            stage,
            "each operation's arguments, by operation id",
            {**meta, "count": len(ops), "arguments": {op["operation_id"]: op["args"] for op in ops}},
        )
        files[f"{stage}.schemas.json"] = render(
            stage,
            "JSON Schemas for request and response validation",
            {**meta, "$defs": json_schemas(spec)},
        )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC_DIR, help="folder with stable.json, beta.json")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="where to write the catalog")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on difference")
    args = parser.parse_args(argv)
    warnings: list[str] = []
    try:
        files = generate(args.spec, warnings)
    except FileNotFoundError as exc:  # no spec here: one line naming the folder and the fix
        print(f"error: {exc} (or give the folder with --spec DIR)", file=sys.stderr)
        return 2
    for warning in warnings:
        print("note: " + warning, file=sys.stderr)
    changed = []
    for name, text in files.items():
        target = args.out / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            changed.append(name)
            if not args.check:
                args.out.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    if args.check and changed:
        print("catalog out of date: " + ", ".join(changed) + " (run python -m klaviyo_toolkit.catalog.generate)")
        return 1
    print(("would change: " if args.check else "wrote: ") + (", ".join(changed) or "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
