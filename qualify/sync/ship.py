"""Ship a station's runs to the fleet database (PostgreSQL) through the outbox, idempotently.

A run is shipped in batches, each one PostgreSQL transaction of upserts keyed by the rows' own
ids (run id, step id, a rank where SQLite has no key), followed by a note of how far it got in
the station's `sync_shipped`. A cut network or a stopped server loses the open batch only: it
was not committed there and is not noted here, so the next sync sends it again. A batch
committed there but not noted here (a crash between) is sent again too and changes nothing,
because every insert is an upsert on its key.

psycopg 3 is the client: the maintained PostgreSQL driver, whose `executemany` pipelines
batches in one round trip, and whose binary wheel needs no compiler or libpq on a station.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualify.errors import HarnessError, InputError
from qualify.store.db import Store, utc_now
from qualify.sync import schema
from qualify.sync.outbox import install_outbox, pending_runs

Hook = Callable[[str, int], None]
_NO_T = -1e308
COPY_FROM_ROWS = 200  # from this many rows a batch goes through COPY into a staging table


@dataclass
class SyncResult:
    """What one sync shipped."""

    target: str
    runs: int = 0
    batches: int = 0
    rows: int = 0
    per_table: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Return the rows shipped per second of the sync."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def count(self, table: str, n: int) -> None:
        """Add n rows of a table."""
        self.rows += n
        self.per_table[table] = self.per_table.get(table, 0) + n


def target_name(url: str) -> str:
    """Return the fleet database's identity without credentials: `host:port/dbname`."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: a malformed URL
        raise InputError(f"not a PostgreSQL URL: {exc}") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def connect(url: str) -> Any:
    """Open a connection that notices a dead peer within about half a minute."""
    import psycopg

    try:
        return psycopg.connect(
            url,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            tcp_user_timeout=30_000,
            application_name="qualify-sync",
            autocommit=True,
        )
    except psycopg.Error as exc:
        raise HarnessError(f"fleet database {target_name(url)}: {_first_line(exc)}") from None


def ensure_schema(conn: Any) -> None:
    """Create the fleet schema if missing (serialised, so stations may start together)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(4242001)")
        conn.execute(schema.CENTRAL_SCHEMA)


def sync_to_postgres(
    db_path: str | Path,
    url: str,
    *,
    batch_rows: int = 5000,
    hook: Hook | None = None,
) -> SyncResult:
    """Ship every run changed since the last sync to the fleet database at `url`.

    `hook(event, batch)` is called with "before_commit" and "after_commit" around every batch
    (tests use it to cut the connection at a chosen point). Raises HarnessError when the fleet
    database cannot be reached or goes away: what was committed stays, the next sync continues.
    """
    import psycopg

    target = target_name(url)
    result = SyncResult(target)
    start = time.monotonic()
    store = Store(db_path)
    try:
        install_outbox(store)
        pg = connect(url)
        try:
            ensure_schema(pg)
            shipper = _Shipper(store, pg, target, result, batch_rows, hook)
            for run_id, version in pending_runs(store.conn, target):
                shipper.ship_run(run_id, version)
                result.runs += 1
        except psycopg.Error as exc:
            raise HarnessError(
                f"fleet database {target}: {_first_line(exc)} (after {result.batches} batches, "
                f"{result.rows} rows; they are kept and the next sync continues)"
            ) from None
        finally:
            pg.close()
    finally:
        store.close()
        result.seconds = time.monotonic() - start
    return result


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _cols(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _select(table: str, columns: Sequence[str], rest: str) -> str:
    """Return `SELECT columns FROM table rest`; names come from this package, values are bound."""
    return f"SELECT {_cols(columns)} FROM {table} {rest}"  # noqa: S608 - names from code


@dataclass(frozen=True)
class _Upsert:
    """An idempotent insert into a fleet table: rows keyed by `key`, updated or left alone."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    update: bool

    def conflict(self) -> str:
        if not self.update:
            return f"ON CONFLICT ({_cols(self.key)}) DO NOTHING"
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in self.columns if c not in self.key)
        return f"ON CONFLICT ({_cols(self.key)}) DO UPDATE SET {sets}"

    def values_sql(self) -> str:
        marks = ", ".join("%s" for _ in self.columns)
        return f"INSERT INTO {self.table} ({_cols(self.columns)}) VALUES ({marks}) {self.conflict()}"  # noqa: S608 - names from code

    def write(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """Write rows: a few with one pipelined statement each, many through COPY and one upsert."""
        if len(rows) < COPY_FROM_ROWS:
            cur.executemany(self.values_sql(), rows)
            return
        stage = f"qualify_stage_{self.table}"
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {self.table}) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {stage} ({_cols(self.columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cols = _cols(self.columns)
        cur.execute(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {stage} {self.conflict()}")  # noqa: S608 - names from code


def _upsert(table: str, columns: Sequence[str], key: Sequence[str], update: bool) -> _Upsert:
    return _Upsert(table, tuple(columns), tuple(key), update)


_Write = tuple[str, "_Upsert | str", list[tuple[Any, ...]]]


class _Shipper:
    def __init__(
        self, store: Store, pg: Any, target: str, result: SyncResult, batch_rows: int, hook: Hook | None
    ) -> None:
        self.store = store
        self.sq = store.conn
        self.pg = pg
        self.target = target
        self.result = result
        self.batch_rows = max(1, batch_rows)
        self.hook = hook or (lambda event, n: None)

    # -- one batch = one PostgreSQL transaction, then a note here ---------------------------

    def _batch(self, writes: list[_Write], note: dict[str, Any], run_id: str) -> None:
        with self.pg.transaction(), self.pg.cursor() as cur:
            # The station forgets a batch once it is acknowledged: the acknowledgement must mean
            # durable, whatever the server's default (synchronous_commit=off loses the last ones).
            cur.execute("SET LOCAL synchronous_commit TO on")
            for _table, op, rows in writes:
                if not rows:
                    continue
                if isinstance(op, str):
                    cur.executemany(op, rows)
                else:
                    op.write(cur, rows)
            self.hook("before_commit", self.result.batches + 1)
        self.result.batches += 1
        for table, op, rows in writes:
            if not isinstance(op, str):
                self.result.count(table, len(rows))
        self._note(run_id, note)
        self.hook("after_commit", self.result.batches)

    def _note(self, run_id: str, values: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO sync_shipped (target, run_id, version, shipped_at) VALUES (?, ?, 0, ?) "
                "ON CONFLICT(target, run_id) DO NOTHING",
                (self.target, run_id, utc_now()),
            )
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                conn.execute(
                    f"UPDATE sync_shipped SET {sets}, shipped_at = ? WHERE target = ? AND run_id = ?",  # noqa: S608 - column names from this module
                    (*values.values(), utc_now(), self.target, run_id),
                )

    def _shipped(self, run_id: str) -> dict[str, Any]:
        row = self.sq.execute(
            "SELECT steps_seq, telemetry_t, events_n, rollup_id FROM sync_shipped "
            "WHERE target = ? AND run_id = ?",
            (self.target, run_id),
        ).fetchone()
        if row is None:
            return {"steps_seq": -1, "telemetry_t": None, "events_n": 0, "rollup_id": 0}
        return dict(zip(("steps_seq", "telemetry_t", "events_n", "rollup_id"), row, strict=True))

    # -- a run ----------------------------------------------------------------------------

    def ship_run(self, run_id: str, version: int) -> None:
        mark = self._shipped(run_id)
        self._batch(self._head(run_id), {}, run_id)
        self._steps(run_id, int(mark["steps_seq"]))
        self._telemetry(run_id, mark["telemetry_t"])
        self._events(run_id, int(mark["events_n"]))
        self._rollups(run_id, int(mark["rollup_id"]))
        # The run's row, verdicts and criteria again, as they are now, and the version shipped.
        self._batch(self._head(run_id, criteria=True), {"version": version}, run_id)

    def _head(self, run_id: str, criteria: bool = False) -> list[_Write]:
        run = self.sq.execute(_select("runs", schema.RUN_COLUMNS, "WHERE id = ?"), (run_id,)).fetchall()
        duts = self.sq.execute(
            _select("duts", schema.DUT_COLUMNS, "WHERE run_id = ? ORDER BY rowid"), (run_id,)
        ).fetchall()
        inst = self.sq.execute(
            _select("instruments", schema.INSTRUMENT_COLUMNS, "WHERE run_id = ? ORDER BY rowid"),
            (run_id,),
        ).fetchall()
        station = run[0][4] if run else None
        host = run[0][12] if run else None
        writes: list[_Write] = [
            (
                "stations",
                _upsert("stations", ("name", "host", "source_db", "last_sync_at"), ("name",), True),
                [(station, host, str(self.store.path.resolve()), utc_now())] if run else [],
            ),
            ("runs", _upsert("runs", schema.RUN_COLUMNS, ("id",), True), [tuple(r) for r in run]),
            (
                "duts",
                _upsert("duts", schema.DUT_COLUMNS, ("run_id", "serial"), True),
                [tuple(r) for r in duts],
            ),
            (
                "instruments",
                _upsert("instruments", ("ord", *schema.INSTRUMENT_COLUMNS), ("run_id", "ord"), True),
                [(i + 1, *r) for i, r in enumerate(inst)],
            ),
        ]
        if criteria:
            crit = self.sq.execute(
                _select("criteria", schema.CRITERIA_COLUMNS, "WHERE run_id = ? ORDER BY rowid"),
                (run_id,),
            ).fetchall()
            # Criteria are replaced whole when a run ends: drop ranks beyond the current count.
            writes.append(
                ("criteria", "DELETE FROM criteria WHERE run_id = %s AND ord > %s", [(run_id, len(crit))])
            )
            writes.append(
                (
                    "criteria",
                    _upsert("criteria", ("ord", *schema.CRITERIA_COLUMNS), ("run_id", "ord"), True),
                    [(i + 1, *r) for i, r in enumerate(crit)],
                )
            )
        return writes

    def _steps(self, run_id: str, after_seq: int) -> None:
        while True:
            steps = self.sq.execute(
                _select("steps", schema.STEP_COLUMNS, "WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
                (run_id, after_seq, self.batch_rows),
            ).fetchall()
            if not steps:
                return
            last_seq = int(steps[-1][-1])
            meas = self.sq.execute(
                _select(
                    "measurements",
                    schema.MEASUREMENT_COLUMNS,
                    "WHERE step_id IN (SELECT id FROM steps WHERE run_id = ? AND seq > ? AND seq <= ?) "
                    "ORDER BY step_id, rowid",
                ),
                (run_id, after_seq, last_seq),
            ).fetchall()
            ranked, rank, prev = [], 0, None
            for m in meas:
                rank = rank + 1 if m[0] == prev else 1
                prev = m[0]
                ranked.append((rank, *m))
            self._batch(
                [
                    (
                        "steps",
                        _upsert("steps", schema.STEP_COLUMNS, ("id",), False),
                        [tuple(s) for s in steps],
                    ),
                    (
                        "measurements",
                        _upsert(
                            "measurements", ("ord", *schema.MEASUREMENT_COLUMNS), ("step_id", "ord"), False
                        ),
                        ranked,
                    ),
                ],
                {"steps_seq": last_seq},
                run_id,
            )
            after_seq = last_seq

    def _telemetry(self, run_id: str, after_t: float | None) -> None:
        # Samples are shipped in whole run-time instants: every row at one `t` is written by one
        # engine transaction, so `t` is a watermark that never splits a sample.
        t0 = _NO_T if after_t is None else float(after_t)
        while True:
            upper = self.sq.execute(
                "SELECT t FROM telemetry WHERE run_id = ? AND t > ? ORDER BY t LIMIT 1 OFFSET ?",
                (run_id, t0, self.batch_rows - 1),
            ).fetchone()
            t1 = float(upper[0]) if upper is not None else float("inf")
            rows = self.sq.execute(
                _select(
                    "telemetry",
                    schema.TELEMETRY_COLUMNS,
                    "WHERE run_id = ? AND t > ? AND t <= ? ORDER BY t, rowid",
                ),
                (run_id, t0, t1),
            ).fetchall()
            if not rows:
                return
            ranked, rank, prev = [], 0, None
            for r in rows:
                rank = rank + 1 if r[1] == prev else 1
                prev = r[1]
                ranked.append((r[0], r[1], rank, *r[2:]))
            last_t = float(rows[-1][1])
            cols = ("run_id", "t", "ord", "dut_serial", "name", "value", "unit")
            self._batch(
                [("telemetry", _upsert("telemetry", cols, ("run_id", "t", "ord"), False), ranked)],
                {"telemetry_t": last_t},
                run_id,
            )
            if upper is None:
                return
            t0 = last_t

    def _events(self, run_id: str, shipped: int) -> None:
        while True:
            rows = self.sq.execute(
                _select("events", schema.EVENT_COLUMNS, "WHERE run_id = ? ORDER BY rowid LIMIT ? OFFSET ?"),
                (run_id, self.batch_rows, shipped),
            ).fetchall()
            if not rows:
                return
            cols = ("run_id", "ord", "t", "level", "source", "message")
            ranked = [(r[0], shipped + i + 1, *r[1:]) for i, r in enumerate(rows)]
            self._batch(
                [("events", _upsert("events", cols, ("run_id", "ord"), False), ranked)],
                {"events_n": shipped + len(rows)},
                run_id,
            )
            shipped += len(rows)

    def _rollups(self, run_id: str, after_id: int) -> None:
        while True:
            rows = self.sq.execute(
                _select(
                    "telemetry_rollup",
                    ("id", *schema.ROLLUP_COLUMNS),
                    "WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                ),
                (run_id, after_id, self.batch_rows),
            ).fetchall()
            if not rows:
                return
            cols = ("source_id", *schema.ROLLUP_COLUMNS)
            self._batch(
                [
                    (
                        "telemetry_rollup",
                        _upsert("telemetry_rollup", cols, ("run_id", "source_id"), True),
                        [tuple(r) for r in rows],
                    )
                ],
                {"rollup_id": int(rows[-1][0])},
                run_id,
            )
            after_id = int(rows[-1][0])
