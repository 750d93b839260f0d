"""Keep a station database healthy over weeks: WAL checkpoints, telemetry retention, archiving.

- `wal_checkpoint`: the service runs PASSIVE checkpoints while runs write and TRUNCATE when the
  station is idle, so the WAL cannot grow without bound behind long-lived readers.
- `downsample_telemetry`: raw samples older than `raw_days` of a run's own time become
  min/max/mean per window in `telemetry_rollup`, in short transactions beside a running engine.
- `archive_runs`: moves ended runs and every row of theirs to an archive SQLite file.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualify.errors import InputError
from qualify.store.db import Store, StoreWriteError, write_failure

# Tables holding a run's rows, children before parents (foreign keys), with how to find them.
_RUN_TABLES: tuple[tuple[str, str], ...] = (
    ("measurements", "step_id IN (SELECT id FROM {db}steps WHERE run_id = ?)"),
    ("steps", "run_id = ?"),
    ("telemetry", "run_id = ?"),
    ("telemetry_rollup", "run_id = ?"),
    ("events", "run_id = ?"),
    ("criteria", "run_id = ?"),
    ("instruments", "run_id = ?"),
    ("duts", "run_id = ?"),
    ("checkpoints", "run_id = ?"),
    ("sync_outbox", "run_id = ?"),
    ("sync_shipped", "run_id = ?"),
    ("runs", "id = ?"),
)
WINDOWS_PER_TRANSACTION = 32


def wal_checkpoint(conn: sqlite3.Connection, mode: str = "PASSIVE") -> dict[str, int]:
    """Checkpoint the WAL; return SQLite's answer (busy, WAL frames, frames checkpointed)."""
    if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        raise ValueError(f"unknown checkpoint mode {mode!r}")
    busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return {"busy": int(busy), "wal_frames": int(log), "checkpointed": int(done)}


def downsample_telemetry(
    store: Store, *, raw_days: float, window_s: float = 600.0, run_ids: list[str] | None = None
) -> dict[str, int]:
    """Roll raw telemetry older than `raw_days` of each run's time into per-window min/max/mean.

    A window is rolled up whole, in the transaction that deletes its raw samples, so a crash
    leaves either the samples or their rollup, never both or neither.
    """
    if raw_days <= 0 or window_s <= 0:
        raise InputError("retention needs raw_days > 0 and window_s > 0")
    keep_s = raw_days * 86400.0
    ids = run_ids if run_ids is not None else [r["id"] for r in store.rows("SELECT id FROM runs")]
    rolled = deleted = 0
    for run_id in ids:
        span = store.rows("SELECT MIN(t) AS t0, MAX(t) AS t1 FROM telemetry WHERE run_id = ?", (run_id,))[0]
        if span["t0"] is None:
            continue
        cutoff = math.floor((span["t1"] - keep_s) / window_s) * window_s
        start = math.floor(span["t0"] / window_s) * window_s
        while start < cutoff:
            end = min(cutoff, start + window_s * WINDOWS_PER_TRANSACTION)
            with store.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO telemetry_rollup "
                    "(run_id, dut_serial, name, unit, t_start, t_end, n, min, max, mean) "
                    "SELECT run_id, dut_serial, name, unit, w * ?, w * ? + ?, COUNT(*), MIN(value), "
                    "MAX(value), AVG(value) FROM (SELECT *, CAST((t - ?) / ? AS INTEGER) + ? AS w "
                    "FROM telemetry WHERE run_id = ? AND t >= ? AND t < ?) "
                    "GROUP BY dut_serial, name, unit, w "
                    "ORDER BY w, dut_serial, name",
                    (
                        window_s,
                        window_s,
                        window_s,
                        start,
                        window_s,
                        round(start / window_s),
                        run_id,
                        start,
                        end,
                    ),
                )
                rolled += cur.rowcount
                cur = conn.execute(
                    "DELETE FROM telemetry WHERE run_id = ? AND t >= ? AND t < ?", (run_id, start, end)
                )
                deleted += cur.rowcount
            start = end
    return {"rollup_rows": rolled, "raw_deleted": deleted}


def archive_runs(
    db: str | Path, before: str, archive_db: str | Path, *, vacuum: bool = False
) -> dict[str, int]:
    """Move runs that started before `before` (ISO-8601) and have ended into `archive_db`.

    Each run is copied (replacing any copy a crashed earlier attempt left) and committed in the
    archive first, then deleted here: a crash in between leaves the run in both, never in none,
    and running archive_runs again finishes the move. `db` must exist and differ from
    `archive_db`; the archive is created when missing. Returns the rows moved per table.
    """
    cutoff = parse_before(before)
    db, archive_db = Path(db), Path(archive_db)
    if not db.is_file():
        raise InputError(f"no database at {db}")
    if archive_db.exists() and archive_db.resolve() == db.resolve():
        raise InputError(f"the archive {archive_db} is the database itself; give another file")
    source = Store(db)
    try:
        Store(archive_db).close()  # create or migrate the archive
        moved: dict[str, int] = {"runs": 0}
        conn = source.conn
        conn.execute("ATTACH DATABASE ? AS arch", (str(archive_db.resolve()),))
        try:
            runs = source.rows(
                "SELECT id FROM runs WHERE started_at < ? AND status != 'running' ORDER BY started_at",
                (cutoff,),
            )
            for run in runs:
                rid = run["id"]
                try:
                    with source.transaction():
                        for table, where in _RUN_TABLES:
                            conn.execute(f"DELETE FROM arch.{table} WHERE {where.format(db='arch.')}", (rid,))  # noqa: S608 - names from this module
                        for table, where in reversed(_RUN_TABLES):
                            cols = _shared_columns(conn, table)
                            cur = conn.execute(
                                f"INSERT INTO arch.{table} ({cols}) SELECT {cols} FROM main.{table} "  # noqa: S608 - names from this module
                                f"WHERE {where.format(db='main.')}",
                                (rid,),
                            )
                            moved[table] = moved.get(table, 0) + cur.rowcount
                except StoreWriteError as exc:
                    raise StoreWriteError(
                        archive_db,
                        f"{exc.reason}; {moved['runs']} run(s) were moved, the rest are still in {db}",
                    ) from None
                with source.transaction():
                    for table, where in _RUN_TABLES:
                        conn.execute(f"DELETE FROM main.{table} WHERE {where.format(db='main.')}", (rid,))  # noqa: S608 - names from this module
        finally:
            conn.execute("DETACH DATABASE arch")
        if vacuum:
            try:
                conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                failure = write_failure(db, exc)
                if failure is None:
                    raise
                raise StoreWriteError(
                    db, f"{failure.reason}; the runs were moved, only VACUUM failed"
                ) from None
    finally:
        source.close()
    return moved


def parse_before(before: str) -> str:
    """Return an ISO-8601 date or time as the UTC text `runs.started_at` compares against.

    A date means its midnight UTC; a time without a zone is UTC.
    """
    try:
        when = datetime.fromisoformat(before.strip())
    except ValueError:
        raise InputError(
            f"--before {before!r}: give an ISO-8601 date or time, e.g. 2026-01-01 or 2026-01-01T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shared_columns(conn: sqlite3.Connection, table: str) -> str:
    main = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]
    arch = {r[1] for r in conn.execute(f"PRAGMA arch.table_info({table})")}
    return ", ".join(f'"{c}"' for c in main if c in arch)


def table_counts(db: str | Path) -> dict[str, Any]:
    """Return the row count of every run table (for tests and the docs' figures)."""
    store = Store(db, readonly=True)
    try:
        return {t: store.rows(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t, _ in _RUN_TABLES}  # noqa: S608 - names from this module
    finally:
        store.close()
