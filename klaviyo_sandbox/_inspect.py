"""Inspection endpoints outside Klaviyo's paths, for tests, demos and benchmarks.

GET  /sandbox                 what this sandbox is, its demo key and endpoints
GET  /sandbox/outbox          messages flows and campaigns "sent" (?to=&source=&status=)
POST /sandbox/reset           {"seed": 7, "demo_data": true}: start over
GET|PUT|DELETE /sandbox/faults  fault injection settings (new ones answer the calls the old hold)
POST /sandbox/keys            {"scopes": ["profiles:read"]} -> a new private key
DELETE /sandbox/keys/{key}    revoke a key
GET|DELETE /sandbox/requests  recent requests and call counts per operation
GET  /sandbox/state           resource counts per type
PUT  /sandbox/limits          {"factor": 0.1} or {"factor": null} (off)
POST /sandbox/tick            apply bulk jobs, asynchronous writes and deliveries that are due
POST /sandbox/settle          let everything pending finish now, as if time had passed
POST /sandbox/clock           {"advance": seconds} (only with a manual clock)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from klaviyo_toolkit.clock import ManualClock

from ._faults import Faults
from ._keys import DEMO_KEY, PUBLIC_KEY

if TYPE_CHECKING:
    from ._app import Sandbox


def _ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _err(detail: str, status: int = 400) -> Response:
    return JSONResponse({"errors": [{"status": status, "detail": detail}]}, status_code=status)


async def inspect_endpoint(sb: Sandbox, request: Request) -> Response:
    """Serve one ``/sandbox/...`` request (see module docstring)."""
    path = request.url.path.rstrip("/")
    method = request.method
    try:
        payload: Any = await request.json() if method in ("POST", "PUT") and await request.body() else {}
    except ValueError:
        return _err("the body must be JSON")
    with sb.store.lock:
        if path == "/sandbox" and method == "GET":
            return _ok(
                {
                    "name": "klaviyo-personas sandbox",
                    "revision": sb.catalog.revision,
                    "seed": sb.seed,
                    "demo_key": DEMO_KEY,
                    "public_key": PUBLIC_KEY,
                    "operations": len(sb.catalog),
                    "endpoints": [
                        line.strip()
                        for line in (__doc__ or "").splitlines()
                        if line.strip().startswith(("GET", "POST", "PUT", "DELETE"))
                    ],
                }
            )
        if path == "/sandbox/outbox":
            if method == "DELETE":
                sb.services.outbox.clear()
                sb.store.flush()
                return _ok({"deleted": True})
            q = request.query_params
            messages = sb.outbox(
                to=q.get("to"), source=q.get("source"), status=q.get("status"), profile_id=q.get("profile_id")
            )
            return _ok({"count": len(messages), "messages": messages})
        if path == "/sandbox/reset" and method == "POST":
            sb.reset(seed=payload.get("seed"), demo_data=payload.get("demo_data", True))
            return _ok({"reset": True, "seed": sb.seed})
        if path == "/sandbox/faults":
            # New settings over HTTP answer the slow calls the old ones hold (a client that gave up on
            # one no longer keeps the server from stopping until its delay ends).
            if method in ("PUT", "POST"):
                try:
                    replaced, sb.faults = sb.faults, Faults.from_json(payload)
                except (TypeError, ValueError) as exc:
                    return _err(str(exc))
                replaced.release()
            elif method == "DELETE":
                replaced, sb.faults = sb.faults, Faults()
                replaced.release()
            return _ok(sb.faults.to_json())
        if path == "/sandbox/keys" and method == "POST":
            scopes = payload.get("scopes")
            if scopes != "*" and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
                return _err('give "scopes": a list like ["profiles:read"], or "*"')
            key = sb.create_key(scopes, payload.get("name"))
            return _ok({"key": key, "scopes": scopes}, 201)
        if path.startswith("/sandbox/keys/") and method == "DELETE":
            sb.revoke_key(path.rsplit("/", 1)[-1])
            return _ok({"revoked": True})
        if path == "/sandbox/requests":
            if method == "DELETE":
                sb.log.clear()
                return _ok({"cleared": True})
            return _ok({"counts": dict(sb.call_counts), "recent": list(sb.requests)[-200:]})
        if path == "/sandbox/state":
            return _ok({t: sb.store.count(t) for t in sorted(sb.store.types())})
        if path == "/sandbox/limits" and method in ("PUT", "POST"):
            factor = payload.get("factor", 1.0) if isinstance(payload, dict) else payload
            good = factor is None or (
                isinstance(factor, (int, float)) and not isinstance(factor, bool) and 0 < factor < float("inf")
            )
            if not good:  # checked before either limiter changes: a refused factor leaves both as they were
                return _err(f"factor must be a number > 0, or null to turn limits off; got {json.dumps(factor)}")
            sb.limits.factor = None if factor is None else float(factor)
            sb.client_limiter.factor = sb.limits.factor
            sb.limits.reset()
            return _ok({"factor": sb.limits.factor})
        if path == "/sandbox/tick" and method == "POST":
            sb.tick()
            return _ok({"ticked": True})
        if path == "/sandbox/settle" and method == "POST":
            sb.settle()
            return _ok({"settled": True})
        if path == "/sandbox/clock" and method == "POST":
            if not isinstance(sb.clock, ManualClock):
                return _err("this sandbox runs on real time; start it with a manual clock to move time")
            sb.clock.advance(float(payload.get("advance", 0)))
            sb.tick()
            return _ok({"now": sb.clock.time()})
    return _err(f"no sandbox endpoint {method} {path}; see GET /sandbox", 404)
