"""The results store: one SQLite file in WAL mode, named migrations, one batched writer."""

from __future__ import annotations

import json
import logging
import os
import resource
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualify.errors import HarnessError, InputError
from qualify.files import FILE_SYSTEM_FULL, file_error, free_bytes
from qualify.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

STEP_COLUMNS = (
    "id",
    "run_id",
    "dut_serial",
    "stage",
    "name",
    "iteration",
    "status",
    "t_start",
    "t_end",
    "started_at",
    "ended_at",
    "message",
    "action",
    "seq",
)
MEASUREMENT_COLUMNS = ("step_id", "name", "value", "text", "unit", "low", "high", "verdict")
TELEMETRY_COLUMNS = ("run_id", "dut_serial", "t", "name", "value", "unit")
EVENT_COLUMNS = ("run_id", "t", "level", "source", "message")

SQLITE_FULL = 13
SQLITE_IOERR = 10
LOW_SPACE_BYTES = 1 << 20
"""Free space under which an I/O error writing the database is put down to a full file system."""


class StoreWriteError(HarnessError):
    """The results database could not be written: its file system is full, or a write failed.

    Whatever was committed before stays intact (SQLite rolls the failed transaction back).
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"results database {path}: {reason}")


def write_failure(path: Path, exc: sqlite3.Error) -> StoreWriteError | None:
    """Return the StoreWriteError an SQLite error means (full, file-size limit, I/O), else None.

    SQLite reports ENOSPC as SQLITE_FULL, but EFBIG (a file-size limit) and a failed growth of
    the WAL index only as an I/O error; the free space and the limit tell which it was.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code == SQLITE_FULL:
        return StoreWriteError(path, f"{FILE_SYSTEM_FULL} ({exc})")
    if code is None or code & 0xFF != SQLITE_IOERR:
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        sizes = [p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()]
        if sizes and max(sizes) + LOW_SPACE_BYTES >= limit:
            return StoreWriteError(path, f"the file-size limit ({limit} bytes) is reached ({exc})")
    free = free_bytes(path.parent)
    if free is not None and free < LOW_SPACE_BYTES:
        return StoreWriteError(path, f"{FILE_SYSTEM_FULL} ({exc})")
    return StoreWriteError(path, f"writing failed ({exc})")


def utc_now() -> str:
    """Return the current UTC time as ISO-8601 with a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({cols}) VALUES ({marks})"  # noqa: S608 - names come from code, values are bound


@dataclass
class Batch:
    """Rows gathered during one step, written in one transaction with the checkpoint."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    measurements: list[tuple[Any, ...]] = field(default_factory=list)
    telemetry: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps) + len(self.measurements) + len(self.telemetry) + len(self.events)


class Store:
    """The run database. Only the engine's thread writes; readers may be other processes."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL", readonly: bool = False):
        self.path = Path(path)
        if synchronous not in ("NORMAL", "FULL"):
            raise InputError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        try:
            if readonly:
                if not self.path.exists():
                    raise InputError(f"no database at {self.path}")
                # query_only keeps us from writing; a plain (not mode=ro) connection may still
                # checkpoint the WAL when it is the last to close, so no -wal file lingers.
                writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
                mode = "rw" if writable else "ro"
                uri = f"file:{self.path.resolve()}?mode={mode}"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
                self.conn.execute("PRAGMA query_only=ON")
            else:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise file_error(self.path, exc, "create") from None
                self.conn = sqlite3.connect(str(self.path), isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self.migrate()
            elif not self._has_table("runs"):
                raise InputError(f"{self.path} is not a qualify database (no runs table)")
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "conn"):
                self.conn.close()
            failure = None if readonly else write_failure(self.path, exc)
            if failure is not None:
                raise failure from None
            raise InputError(f"cannot open database {self.path}: {exc}") from None
        except StoreWriteError:
            self.conn.close()
            raise
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _has_table(self, name: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; return the names applied now."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = {r[0] for r in self.conn.execute("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                for statement in sql.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, utc_now()),
                )
            applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one IMMEDIATE transaction; roll back on error.

        A write the file system refuses (full, file-size limit, I/O error) raises
        StoreWriteError; everything committed before it stays.
        """
        # A signal's KeyboardInterrupt lands between bytecodes, so it can leave an earlier
        # transaction open (after its BEGIN, before its COMMIT): none of it was committed.
        self._rollback()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise write_failure(self.path, exc) or exc from None
        try:
            yield self.conn
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                failure = write_failure(self.path, exc)
                if failure is not None:
                    raise failure from None
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            failure = write_failure(self.path, exc)
            raise failure or HarnessError(f"database {self.path}: commit failed: {exc}") from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # On a full disk or an I/O error SQLite may have rolled back already; a second
        # ROLLBACK would then hide the real error behind "no transaction is active".
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("rollback of %s failed", self.path, exc_info=True)

    # -- writes ---------------------------------------------------------------------------

    def insert_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Insert dict rows into a table in one transaction (for run setup, not hot paths)."""
        rows = list(rows)
        if not rows:
            return
        columns = tuple(rows[0])
        with self.transaction() as conn:
            conn.executemany(_insert_sql(table, columns), [tuple(r[c] for c in columns) for r in rows])

    def write_batch(self, batch: Batch, checkpoint: tuple[str, int, float, dict[str, Any]] | None) -> None:
        """Write a step's rows and the run's checkpoint atomically."""
        with self.transaction() as conn:
            self._write_batch(conn, batch, checkpoint)

    def write_run_start(
        self,
        rows: Sequence[tuple[str, list[dict[str, Any]]]],
        batch: Batch,
        checkpoint: tuple[str, int, float, dict[str, Any]],
    ) -> None:
        """Write a new run's rows ((table, dict rows) pairs), first batch and checkpoint atomically."""
        with self.transaction() as conn:
            for table, dicts in rows:
                if dicts:
                    columns = tuple(dicts[0])
                    conn.executemany(
                        _insert_sql(table, columns), [tuple(r[c] for c in columns) for r in dicts]
                    )
            self._write_batch(conn, batch, checkpoint)

    @staticmethod
    def _write_batch(
        conn: sqlite3.Connection, batch: Batch, checkpoint: tuple[str, int, float, dict[str, Any]] | None
    ) -> None:
        if batch.steps:
            conn.executemany(_insert_sql("steps", STEP_COLUMNS), batch.steps)
        if batch.measurements:
            conn.executemany(_insert_sql("measurements", MEASUREMENT_COLUMNS), batch.measurements)
        if batch.telemetry:
            conn.executemany(_insert_sql("telemetry", TELEMETRY_COLUMNS), batch.telemetry)
        if batch.events:
            conn.executemany(_insert_sql("events", EVENT_COLUMNS), batch.events)
        if checkpoint is not None:
            run_id, seq, t, state = checkpoint
            conn.execute(
                "INSERT INTO checkpoints (run_id, seq, t, state_json, saved_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET "
                "seq=excluded.seq, t=excluded.t, state_json=excluded.state_json, "
                "saved_at=excluded.saved_at",
                (run_id, seq, t, json.dumps(state, sort_keys=True), utc_now()),
            )

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set columns of a run row."""
        if not values:
            return
        allowed = {"status", "ended_at", "message", "started_at"}
        bad = set(values) - allowed
        if bad:
            raise ValueError(f"cannot update run columns {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), run_id))  # noqa: S608 - column names are from the allow-list above

    def set_verdicts(self, run_id: str, verdicts: dict[str, str]) -> None:
        """Store each DUT's final verdict."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE duts SET verdict = ? WHERE run_id = ? AND serial = ?",
                [(v, run_id, s) for s, v in verdicts.items()],
            )

    def replace_criteria(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace a run's criteria rows."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM criteria WHERE run_id = ?", (run_id,))
            for r in rows:
                conn.execute(
                    'INSERT INTO criteria (run_id, lot, name, value, "limit", confidence, verdict, basis) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        r["lot"],
                        r["name"],
                        r["value"],
                        r["limit"],
                        r["confidence"],
                        r["verdict"],
                        r["basis"],
                    ),
                )

    # -- reads ----------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        """Return a run row; a unique prefix of the id is accepted."""
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY started_at",
            (run_id, run_id + "%"),
        ).fetchall()
        exact = [r for r in rows if r["id"] == run_id]
        if exact:
            return dict(exact[0])
        if len(rows) == 1:
            return dict(rows[0])
        if not rows:
            raise InputError(f"no run {run_id!r} in {self.path}")
        raise InputError(f"run id prefix {run_id!r} matches {len(rows)} runs in {self.path}")

    def runs(self, lot: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest runs first, optionally of one lot."""
        if lot is None:
            cur = self.conn.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        else:
            cur = self.conn.execute(
                "SELECT * FROM runs WHERE lot = ? ORDER BY started_at DESC LIMIT ?", (lot, limit)
            )
        return [dict(r) for r in cur]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a parameterised query as dicts."""
        return [dict(r) for r in self.conn.execute(sql, params)]

    def checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """Return the last checkpoint of a run, or None."""
        row = self.conn.execute(
            "SELECT seq, t, state_json FROM checkpoints WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        state: dict[str, Any] = json.loads(row["state_json"])
        return state
