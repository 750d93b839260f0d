"""Measurement ingestion: the store's writer against raw sqlite3.executemany of the same rows.

Both write the same 200 000 measurement rows (and their step rows, written first and not
timed) into a fresh database with qualify's schema, WAL journal, synchronous=NORMAL, one
transaction. Ours is Store.write_batch, which also enforces the foreign keys the store keeps
on; the anchor is a plain connection's executemany (SQLite's default: foreign keys off).
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import uuid
from pathlib import Path

from common import Figure, best_of

from qualify.store.db import MEASUREMENT_COLUMNS, STEP_COLUMNS, Batch, Store, _insert_sql
from qualify.store.migrations import MIGRATIONS

RUN = "bench-run"
RUN_ROW = (
    "INSERT INTO runs (id, plan, plan_version, plan_sha256, station, seed, status, started_at, "
    "software_version, host, plan_path, station_path, station_sha256) "
    f"VALUES ('{RUN}', 'p', '1', 'x', 's', 0, 'running', 't', 'v', 'h', 'p', 's', 'x')"
)


def _rows(steps: int, per_step: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    rng = random.Random(1)
    step_rows, meas = [], []
    for i in range(steps):
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        step_rows.append(
            (sid, RUN, f"DUT{i % 64}", "stage", f"s{i}", 1, "pass", 0.0, 1.0, "t", "t", None, "a", i)
        )
        meas += [(sid, f"m{k}", rng.random(), None, "V", 0.0, 10.0, "pass") for k in range(per_step)]
    return step_rows, meas


def measure(rows: int = 200_000, repeats: int = 3) -> list[Figure]:
    """Return rows per second of the store's writer against raw executemany."""
    steps, meas = _rows(rows // 50, 50)
    tmp = Path(tempfile.mkdtemp(prefix="qualify-ingest-"))
    counter = iter(range(10_000))

    def ours() -> None:
        store = Store(tmp / f"ours{next(counter)}.db")
        store.conn.execute(RUN_ROW)
        store.write_batch(Batch(steps=steps), None)
        elapsed, _ = best_of(1, lambda: store.write_batch(Batch(measurements=meas), None))
        store.close()
        times.append(elapsed)

    def raw() -> None:
        conn = sqlite3.connect(tmp / f"raw{next(counter)}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in MIGRATIONS[0][1].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(RUN_ROW)
        conn.execute("BEGIN")
        conn.executemany(_insert_sql("steps", STEP_COLUMNS), steps)
        conn.execute("COMMIT")

        def insert() -> None:
            conn.execute("BEGIN")
            conn.executemany(_insert_sql("measurements", MEASUREMENT_COLUMNS), meas)
            conn.execute("COMMIT")

        elapsed, _ = best_of(1, insert)
        conn.close()
        times.append(elapsed)

    best: dict[str, float] = {}
    for name, fn in (("ours", ours), ("raw", raw)) * repeats:
        times: list[float] = []
        fn()
        best[name] = min(best.get(name, float("inf")), times[0])
    return [
        Figure(
            "measurement ingestion vs raw executemany",
            len(meas) / best["ours"] / 1e3,
            len(meas) / best["raw"] / 1e3,
            "k rows/s",
            0.8,
            target_text=">= 0.8x",
            notes=[f"{len(meas)} rows, one transaction, best of {repeats} interleaved runs"],
        )
    ]
