"""Running personas unattended and scaling them out, above the runtime and below the CLI.

- ``service``: :class:`Service` (config, run store, checkpointer, metrics) records runs and drives
  them through the one ``RunDriver``;
- ``store``: the durable run records, cursors and seen deliveries (SQLite or PostgreSQL); ``owners``:
  which process holds a SQLite run (an owner and a lease), and whether it is gone;
- ``app``: the Starlette app of ``personas serve`` (``POST /webhooks/klaviyo``, ``/healthz``, ``/metrics``);
- ``queues``: procrastinate on PostgreSQL, or threads in one process; ``tasks``: the procrastinate app;
- ``schedule``: personas' cron schedules in the account's time zone; ``watch``: polling for events;
- ``postgres``: connections and LangGraph's PostgreSQL checkpointer; ``metrics``: Prometheus.

Nothing here is imported by ``import personas`` or ``personas --help``: its server dependencies
(the ``[server]`` extra) load when a service command runs.
"""
