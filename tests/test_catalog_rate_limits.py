"""Each operation's rate limits in the catalog are the lower of the spec's two statements of them.

Klaviyo's spec states an operation's limits twice: ``x-klaviyo-ratelimit`` and the description's
"*Rate limits*:" block. They disagree for some operations (Upload Image From File: 500/d against
100/d); a client that trusts the higher one is refused by Klaviyo once the lower one is spent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from klaviyo_toolkit.catalog import generate, load_catalog

SPEC_DIR = generate.DEFAULT_SPEC_DIR
WINDOWS = {"s": "burst", "m": "steady", "d": "daily"}


def _both_statements(op: dict[str, object]) -> tuple[dict[str, int], dict[str, int]]:
    """``(x-klaviyo-ratelimit, description)`` as ``{window: calls}``, read independently of the generator."""
    ext = {}
    for text in dict(op.get("x-klaviyo-ratelimit") or {}).values():  # type: ignore[call-overload]
        count, unit = str(text).split("/")
        ext[WINDOWS[unit.strip()[0]]] = int(count)
    own = str(op.get("description") or "").split("Rate limits when using")[0]
    prose = {WINDOWS[u]: int(n) for n, u in re.findall(r"(?:Burst|Steady|Daily):\s*`(\d+)/([smd])`", own)}
    return ext, prose


def test_every_operation_keeps_the_lower_of_the_specs_two_rate_limits() -> None:
    if not (SPEC_DIR / "stable.json").exists():
        pytest.skip(f"Klaviyo's spec is not at {SPEC_DIR} (only CI and developers have ../shared)")
    catalog = load_catalog(include_beta=True)
    wrong = []
    for stage in ("stable", "beta"):
        spec = json.loads((SPEC_DIR / f"{stage}.json").read_text(encoding="utf-8"))
        for item in spec["paths"].values():
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                ext, prose = _both_statements(op)
                want = {w: min(n for n in (ext.get(w), prose.get(w)) if n is not None) for w in {*ext, *prose}}
                limits = catalog.get(op["operationId"]).rate_limit
                got = {"burst": limits.burst, "steady": limits.steady, "daily": limits.daily}
                if {w: n for w, n in got.items() if n is not None} != want:
                    wrong.append((op["operationId"], ext, prose, got))
    assert not wrong, wrong
    assert catalog.get("upload_image_from_file").rate_limit.daily == 100  # the spec's 500/d is the looser


def _spec_with(limits: dict[str, tuple[str, str]]) -> dict[str, object]:
    """A one-operation-per-window spec whose extension says the first rate and its prose the second."""
    paths = {}
    for window, (ext, prose) in limits.items():
        rates = {"burst": "10/s", "steady": "150/m", window: ext}
        text = {"burst": "`10/s`", "steady": "`150/m`", window: f"`{prose}`"}
        lines = "".join(f"<br>{w.title()}: {t}" for w, t in text.items())
        paths[f"/api/{window}-things"] = {
            "get": {
                "operationId": f"get_{window}_things",
                "summary": "Get Things",
                "description": f"Get things.<br><br>*Rate limits*:{lines}\n\n**Scopes:**\n`lists:read`",
                "tags": ["Things"],
                "x-klaviyo-ratelimit": rates,
                "x-klaviyo-scopes": ["lists:read"],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {"openapi": "3.0.2", "info": {"version": "2026-07-15"}, "paths": paths, "components": {"schemas": {}}}


def test_the_generator_keeps_the_lower_limit_whichever_statement_gives_it(tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    spec = _spec_with({"burst": ("3/s", "5/s"), "steady": ("90/m", "60/m"), "daily": ("500/d", "100/d")})
    (spec_dir / "stable.json").write_text(json.dumps(spec), encoding="utf-8")
    out = tmp_path / "data"
    notes: list[str] = []
    generate.generate(spec_dir, notes)
    assert generate.main(["--spec", str(spec_dir), "--out", str(out)]) == 0
    text = (out / "stable.operations.json").read_text(encoding="utf-8")
    records = {r["operation_id"]: r["rate_limit"] for r in json.loads(text)["operations"]}
    assert records["get_burst_things"]["burst"] == 3  # the extension was the lower
    assert records["get_steady_things"]["steady"] == 60  # the prose was the lower
    assert records["get_daily_things"]["daily"] == 100
    assert any("get_daily_things: daily limit is 500 in x-klaviyo-ratelimit but 100" in n for n in notes), notes
