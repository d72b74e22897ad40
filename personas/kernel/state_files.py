"""The state files of ``$PERSONAS_HOME``, described once: what each is and what moving it aside loses.

Every message about one of them (a damaged file refused before it is opened, a SQLite error met on
it by whichever code) is made from its entry here, by
:class:`~klaviyo_toolkit.state_files.StateFile`, so it reads the same from the CLI, the REPL, the
service's recorded runs and the runtime's own checks. Light on purpose: the CLI imports it for
every error it reports.
"""

from __future__ import annotations

from klaviyo_toolkit.state_files import StateFile

__all__ = ["ACCEPT_LOSS", "CHECKPOINTS", "STATE_FILES", "SYNC_PLAN"]

#: The state files in ``$PERSONAS_HOME``, by name: what each is and what moving it aside loses. A SQLite
#: error on one of them (whichever code met it) is said with its path and the fix, the same way.
ACCEPT_LOSS = "personas audit accept-loss --reason TEXT"
STATE_FILES = {
    "audit.sqlite": StateFile(
        "the audit log",
        if_moved="its rows are no longer shown or verified, and a new log begins",
        then=f"accept the loss deliberately: {ACCEPT_LOSS} (until then its anchored head refuses every run)",
    ),
    "checkpoints.sqlite": StateFile(
        "the run checkpoints",
        if_moved="runs paused for approval or stopped midway can no longer be resumed, only started again; "
        "finished runs lose nothing",
    ),
    "service.sqlite": StateFile(
        "the record of unattended runs",
        if_moved="`personas runs` forgets past runs, pollers start again from --lookback, and a webhook delivery "
        "already seen could start its run again",
    ),
    "vault.sqlite": StateFile(
        "the vault",
        if_moved="stored connections and the audit log's key are lost: the log can no longer be verified",
        then="log in again (personas auth login NAME)",
    ),
    "campaign_reports.sqlite": StateFile(
        "the campaign report cache", if_moved="only cached figures, fetched again on the next run"
    ),
}
SYNC_PLAN = StateFile(
    "a segment sync's plan", if_moved="that sync run cannot be continued; start the sync again (it re-plans)"
)
#: The checkpoints, which the runtime checks before it opens them (``personas.runtime.checkpoints``).
CHECKPOINTS = STATE_FILES["checkpoints.sqlite"]
