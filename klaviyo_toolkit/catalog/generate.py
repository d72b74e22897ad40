"""Generate the operation catalog from Klaviyo's OpenAPI spec.

The catalog is data: one record per operation (id, method, path, scopes, rate limit, filters,
aliases, read-only/destructive, stable/beta) and the *shape* of its arguments, from which the
toolkit builds both the pydantic argument model and the JSON:API envelope. Nothing else in the
project reads the spec, so the package works on machines that do not have it.

Usage::

    python -m klaviyo_toolkit.catalog.generate --spec ../shared/klaviyo-openapi
    python -m klaviyo_toolkit.catalog.generate --check   # exit 1 if the committed files differ

Outputs (all under ``klaviyo_toolkit/catalog/data/``, each saying on its first line that it is
generated): ``stable.operations.json`` and ``beta.operations.json`` (operations) and ``stable.schemas.json`` and
``beta.schemas.json`` (request/response JSON Schemas, for the sandbox's validation).
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

    defs = {name: convert(s) for name, s in spec["components"]["schemas"].items()}
    for name, resp in spec["components"].get("responses", {}).items():
        content = resp.get("content") or {}
        if content:
            defs["Response" + name] = convert(next(iter(content.values()))["schema"])
    return defs


def render(stage: str, what: str, payload: Json) -> str:
    body = json.dumps(payload, indent=1, ensure_ascii=False)
    return '{"_generated": ' + json.dumps(header(stage, what)) + "," + body[1:] + "\n"


def generate(spec_dir: Path) -> dict[str, str]:
    """Return {file name: text} for every generated catalog file."""
    files: dict[str, str] = {}
    for stage in ("stable", "beta"):
        path = spec_dir / f"{stage}.json"
        raw = path.read_bytes()
        spec = json.loads(raw)
        gen = Generator(spec, stage)
        ops = gen.operations()
        meta = {
            "revision": spec["info"]["version"],
            "stage": stage,
            "source": f"klaviyo-openapi/{stage}.json",
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "license": "Klaviyo OpenAPI spec, MIT License, Copyright (c) Klaviyo",
        }
        files[f"{stage}.operations.json"] = render(
            stage, "operation records", {**meta, "count": len(ops), "operations": ops}
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
    files = generate(args.spec)
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
