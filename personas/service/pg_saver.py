"""A ``PostgresSaver`` whose checkpoint writes are one SQL statement each.

Upstream ``put`` sends ``executemany`` of one blob upsert per channel, then the checkpoint upsert, in
pipeline mode (11 statements for the sequencer's last checkpoint, each bound, planned and executed
by the server, in one implicit transaction); ``put_writes`` one insert per write. Here the blob rows
go in through ``unnest`` of arrays in a data-modifying CTE of the checkpoint upsert, and a task's
writes likewise: one statement, one round trip, one commit, the same rows. The values are prepared
by upstream's own helpers (``_dump_blobs``, ``_dump_writes``, ``get_serializable_checkpoint_metadata``);
only the statements differ (tests/service/test_pg_saver.py compares the rows both write). A run's
read of the input checkpoint it has just written is answered from memory (``personas.runtime.primed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.types.json import Jsonb

from personas.runtime.primed import PrimedStart

__all__ = ["PUT_SQL", "PUT_WRITES_SQL", "OneStatementSaver", "PostgresCheckpointSaver"]

#: Upstream's ``UPSERT_CHECKPOINT_BLOBS_SQL`` (one row per array element) and ``UPSERT_CHECKPOINTS_SQL``.
PUT_SQL = """
WITH blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT %(thread_id)s, %(checkpoint_ns)s, b.channel, b.version, b.type, b.blob
    FROM unnest(%(channels)s::text[], %(versions)s::text[], %(types)s::text[], %(blobs)s::bytea[])
        AS b(channel, version, type, blob)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
VALUES (%(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s, %(checkpoint)s, %(metadata)s)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata
"""

_WRITES_SELECT = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(task_path)s, w.idx, w.channel, w.type, w.blob
FROM unnest(%(idxs)s::integer[], %(channels)s::text[], %(types)s::text[], %(blobs)s::bytea[])
    AS w(idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""

#: Upstream's ``UPSERT_CHECKPOINT_WRITES_SQL`` (``True``: only special writes, which replace) and
#: ``INSERT_CHECKPOINT_WRITES_SQL`` (``False``: a task's writes, kept as first written), over arrays.
PUT_WRITES_SQL = {
    True: _WRITES_SELECT
    + "DO UPDATE SET\n    channel = EXCLUDED.channel,\n    type = EXCLUDED.type,\n    blob = EXCLUDED.blob\n",
    False: _WRITES_SELECT + "DO NOTHING\n",
}


class OneStatementSaver(PostgresSaver):
    """``PostgresSaver`` with ``put`` and ``put_writes`` as one statement each (see the module)."""

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save the checkpoint and its new channel blobs atomically; the config that names it."""
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        copy = checkpoint.copy()
        copy["channel_values"] = copy["channel_values"].copy()
        # As upstream: primitives stay inline in the checkpoint, a delta snapshot leaves a `true` marker.
        blob_values = {}
        for k, v in checkpoint["channel_values"].items():
            if isinstance(v, _DeltaSnapshot):
                blob_values[k] = copy["channel_values"].pop(k)
                copy["channel_values"][k] = True
            elif v is None or isinstance(v, (str, int, float, bool)):
                pass
            else:
                blob_values[k] = copy["channel_values"].pop(k)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}
        rows = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "channels": [row[2] for row in rows],
            "versions": [row[3] for row in rows],
            "types": [row[4] for row in rows],
            "blobs": [row[5] for row in rows],
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": configurable.get("checkpoint_id"),
            "checkpoint": Jsonb(copy),
            "metadata": Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
        }
        with self._cursor() as cur:
            cur.execute(PUT_SQL, params)
        return {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint["id"]}
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes to a checkpoint in one statement (upstream's upsert-or-keep choice)."""
        if not writes:
            return
        upsert = all(w[0] in WRITES_IDX_MAP for w in writes)
        configurable = config["configurable"]
        rows = self._dump_writes(
            configurable["thread_id"], configurable["checkpoint_ns"], configurable["checkpoint_id"],
            task_id, task_path, writes,
        )
        # Rows sharing an idx (two special writes of one kind) conflict within the statement: upstream's
        # row-by-row upsert leaves the last, its insert the first; one statement must be given just that.
        by_idx: dict[int, tuple[Any, ...]] = {}
        for row in rows:
            if upsert:
                by_idx[row[5]] = row
            else:
                by_idx.setdefault(row[5], row)
        kept = list(by_idx.values())
        params = {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable["checkpoint_ns"],
            "checkpoint_id": configurable["checkpoint_id"],
            "task_id": task_id,
            "task_path": task_path,
            "idxs": [row[5] for row in kept],
            "channels": [row[6] for row in kept],
            "types": [row[7] for row in kept],
            "blobs": [row[8] for row in kept],
        }
        with self._cursor() as cur:
            cur.execute(PUT_WRITES_SQL[upsert], params)


class PostgresCheckpointSaver(PrimedStart, OneStatementSaver):
    """The project's PostgreSQL checkpointer: one statement per write, and a run's input handed back
    to it (``PrimedStart``) instead of read back."""

    stored_metadata = staticmethod(get_serializable_checkpoint_metadata)
