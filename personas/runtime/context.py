"""Assemble a persona's run context: client, scoped toolkit with its guards, model, audit log.

``build_context`` is where the runtime meets the environment: it takes a resolved
:class:`~personas.kernel.config.Config` (or resolves one, once) and builds everything a run needs.
The toolkit is built once, already inside its guards (audit outermost, then approval, then dry
run), so no tool of a persona can run without them.
"""

from __future__ import annotations

import uuid
from typing import Any

from graphs import graph_spec
from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.audit_anchor import FileAnchor
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import Clock, SystemClock
from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.tools import Guard, KlaviyoToolkit
from personas.kernel.config import Config
from personas.kernel.context import PersonaContext, prompt_version
from personas.kernel.governance import ApprovalGuard, AuditGuard, DryRunGuard
from personas.kernel.models import ModelChoice, resolve_model
from personas.kernel.privacy import register_secrets
from personas.kernel.spec import PersonaSpec

from .loader import load_persona

__all__ = ["audit_anchor", "audit_log", "build_context", "vault_credentials"]

_AUDIT_LOGS: dict[str, AuditLog] = {}


def audit_anchor(config: Config) -> FileAnchor:
    """Where the audit log's HMAC key and head live: owner-only files under ``<home>/keys``."""
    return FileAnchor(config.path("keys"))


def audit_log(config: Config) -> AuditLog:
    """The state folder's audit log, anchored; one AuditLog (one SQLite connection) per file per process."""
    path = config.path("audit.sqlite")
    key = str(path)
    if key not in _AUDIT_LOGS:
        _AUDIT_LOGS[key] = AuditLog(path, anchor=audit_anchor(config))
    return _AUDIT_LOGS[key]


def build_context(
    persona: str | PersonaSpec,
    *,
    config: Config | None = None,
    client: Any = None,
    async_client: Any = None,
    sandbox: Any = None,
    model: ModelChoice | Any = None,
    replay: str | None = None,
    user: str | None = None,
    thread_id: str | None = None,
    audit: AuditLog | bool = True,
    dry_run: bool | None = None,
    clock: Clock | None = None,
    connection: str | None = None,
) -> PersonaContext:
    """A persona's context: scoped toolkit inside its guards, the Klaviyo client, the model.

    Klaviyo is ``client`` if given, else the ``sandbox`` in-process, else the stored ``connection``
    (or the config's), else ``KLAVIYO_API_KEY``/``KLAVIYO_BASE_URL`` from the config. The model is
    ``model`` if given, else live when the config has an OpenAI key, else the ``replay`` cassette,
    else none (the policy decides).
    """
    config = config or Config.from_env()
    register_secrets(config)
    spec = load_persona(persona, home=config.home) if isinstance(persona, str) else persona
    graph = graph_spec(spec.graph)
    thread = thread_id or f"{spec.name}-{uuid.uuid4().hex[:12]}"
    log = audit_log(config) if audit is True else (audit or None)
    connection = connection or spec.connection or config.connection
    if client is None:
        if sandbox is not None:
            client = sandbox.client()
        else:
            credentials = vault_credentials(connection, config) if connection else None
            client = KlaviyoClient(
                credentials=credentials, api_key=config.klaviyo_api_key, base_url=config.klaviyo_base_url
            )
            if client.credentials is None:
                raise ToolkitUsageError(
                    "No Klaviyo credentials: set KLAVIYO_API_KEY (and KLAVIYO_BASE_URL for a sandbox server), "
                    "or use the embedded sandbox (--sandbox)."
                )
    if isinstance(model, ModelChoice):
        choice = model
    elif model is not None:
        choice = ModelChoice(model, f"the model passed in code ({type(model).__name__})", "scripted")
    else:
        choice = resolve_model(spec.model, config, temperature=spec.temperature, replay=replay)
    base = KlaviyoToolkit(client, async_client, scopes=spec.scopes)
    ctx = PersonaContext(
        spec=spec,
        toolkit=base,
        settings=graph.settings.model_validate(spec.settings),
        model=choice,
        config=config,
        client=client,
        user=user or config.user,
        thread_id=thread,
        audit=log,
        clock=clock or SystemClock(),
        prompt_version=prompt_version(spec),
        sandbox=sandbox,
        connection=connection,
    )
    guards: list[Guard] = []
    if log is not None:
        guards.append(AuditGuard(log, ctx.audit_context))
    guards.append(ApprovalGuard(spec.approval, base.prepare))
    if dry_run if dry_run is not None else spec.approval.dry_run:
        guards.append(DryRunGuard())
    ctx.toolkit = base.guarded(*guards)
    return ctx


def vault_credentials(name: str, config: Config) -> Any:
    """Credentials stored in the vault under ``name``: an API key, or OAuth tokens that refresh
    themselves (OAuth needs ``KLAVIYO_CLIENT_ID`` and ``KLAVIYO_CLIENT_SECRET``)."""
    from klaviyo_toolkit.auth import BearerToken
    from klaviyo_toolkit.vault import Vault

    vault = Vault(config.path("vault.sqlite"))
    info = vault.info(name)
    if info.kind == "api_key":
        return vault.get_api_key(name)
    from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, VaultTokenSource

    if not config.client_id or not config.client_secret:
        raise ToolkitUsageError(
            f"{name!r} holds OAuth tokens; set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET so they can be refreshed."
        )
    oauth = OAuthConfig.for_base_url(
        config.klaviyo_base_url,
        client_id=config.client_id,
        client_secret=config.client_secret,
        redirect_uri="http://localhost",
    )
    return BearerToken(VaultTokenSource(vault, name, OAuthClient(oauth)))
