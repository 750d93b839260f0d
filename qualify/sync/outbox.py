"""The station side of the fleet sync: an outbox of changed runs, filled by triggers.

Every transaction that changes a run (its row, a checkpoint after each item, its DUT verdicts,
criteria, events) bumps the run's version in `sync_outbox` inside that same transaction, so no
change can be committed without being noted. `sync_shipped` records, per fleet database, the
version each run was last shipped at and how far its append-only tables got.

The triggers are created here rather than in a migration because migrations are split on `;`,
which trigger bodies contain. `install_outbox` is idempotent; the first time it runs it marks
every existing run as changed, so runs recorded before it are shipped too.
"""

from __future__ import annotations

import sqlite3

from qualify.store.db import Store, utc_now

_BUMP = (
    "INSERT INTO sync_outbox (run_id, version, changed_at) VALUES ({ref}, 1, "
    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT(run_id) DO UPDATE SET "
    "version = version + 1, changed_at = excluded.changed_at"
)
# (trigger name, event, table, the row's run id)
_TRIGGERS = (
    ("sync_outbox_runs_insert", "AFTER INSERT", "runs", "NEW.id"),
    ("sync_outbox_runs_update", "AFTER UPDATE", "runs", "NEW.id"),
    ("sync_outbox_checkpoint_insert", "AFTER INSERT", "checkpoints", "NEW.run_id"),
    ("sync_outbox_checkpoint_update", "AFTER UPDATE", "checkpoints", "NEW.run_id"),
    ("sync_outbox_duts_update", "AFTER UPDATE", "duts", "NEW.run_id"),
    ("sync_outbox_criteria_insert", "AFTER INSERT", "criteria", "NEW.run_id"),
    ("sync_outbox_criteria_delete", "AFTER DELETE", "criteria", "OLD.run_id"),
    ("sync_outbox_events_insert", "AFTER INSERT", "events", "NEW.run_id"),
    ("sync_outbox_rollup_insert", "AFTER INSERT", "telemetry_rollup", "NEW.run_id"),
)


def install_outbox(store: Store) -> bool:
    """Create the outbox triggers if missing; return True if this call created them."""
    conn = store.conn
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    missing = [t for t in _TRIGGERS if t[0] not in have]
    if not missing:
        return False
    with store.transaction():
        for name, event, table, ref in missing:
            conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} {event} ON {table} BEGIN {_BUMP.format(ref=ref)}; END"
            )
        conn.execute(
            "INSERT INTO sync_outbox (run_id, version, changed_at) SELECT id, 1, ? FROM runs WHERE 1 "
            "ON CONFLICT(run_id) DO UPDATE SET version = version + 1",
            (utc_now(),),
        )
    return True


def pending_runs(conn: sqlite3.Connection, target: str) -> list[tuple[str, int]]:
    """Return (run id, version) of every run changed since it was last shipped to `target`."""
    return [
        (r[0], int(r[1]))
        for r in conn.execute(
            "SELECT o.run_id, o.version FROM sync_outbox o LEFT JOIN sync_shipped s "
            "ON s.run_id = o.run_id AND s.target = ? WHERE s.version IS NULL OR s.version < o.version "
            "ORDER BY o.changed_at, o.run_id",
            (target,),
        )
    ]
