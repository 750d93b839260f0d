"""Fleet sync against a real PostgreSQL: union of stations, a cut mid-sync, idempotence, increments."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qualify.errors import HarnessError
from qualify.sync import schema
from qualify.sync.ship import sync_to_postgres
from tests.cli.conftest import run_qualify
from tests.sync.conftest import PgServer, copy_db, other_station

# What each table holds in both databases, in SQLite's column names; ordered for hashing.
TABLES: dict[str, tuple[str, ...]] = {
    "runs": schema.RUN_COLUMNS,
    "duts": schema.DUT_COLUMNS,
    "steps": schema.STEP_COLUMNS,
    "measurements": schema.MEASUREMENT_COLUMNS,
    "telemetry": schema.TELEMETRY_COLUMNS,
    "events": schema.EVENT_COLUMNS,
    "criteria": schema.CRITERIA_COLUMNS,
    "instruments": schema.INSTRUMENT_COLUMNS,
}


def _select(table: str) -> str:
    return f"SELECT {', '.join(repr_col(c) for c in TABLES[table])} FROM {table}"


def repr_col(c: str) -> str:
    return f'"{c}"'


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in r) for r in rows),
        key=repr,
    )


def station_rows(dbs: list[Path]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    for db in dbs:
        conn = sqlite3.connect(db)
        try:
            for t in TABLES:
                out[t].extend(conn.execute(_select(t)).fetchall())
        finally:
            conn.close()
    return {t: _norm(rows) for t, rows in out.items()}


def fleet_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: _norm(conn.execute(_select(t)).fetchall()) for t in TABLES}


def digest(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, tuple[int, str]]:
    return {t: (len(r), hashlib.sha256(repr(r).encode()).hexdigest()) for t, r in rows.items()}


@pytest.fixture
def two_stations(station_dbs: dict[str, Path], tmp_path: Path) -> list[Path]:
    out = []
    for name, db in station_dbs.items():
        folder = tmp_path / name
        folder.mkdir()
        out.append(copy_db(db, folder))
    return out


def test_sync_ships_union_and_again_adds_nothing(two_stations: list[Path], fleet_url: str) -> None:
    first = [sync_to_postgres(db, fleet_url) for db in two_stations]
    assert all(r.runs == 2 for r in first)
    want = digest(station_rows(two_stations))
    assert digest(fleet_rows(fleet_url)) == want
    assert want["telemetry"][0] > 1000 and want["measurements"][0] > 100
    again = [sync_to_postgres(db, fleet_url) for db in two_stations]
    assert [r.rows for r in again] == [0, 0] and [r.runs for r in again] == [0, 0]
    assert digest(fleet_rows(fleet_url)) == want
    with psycopg.connect(fleet_url) as conn:
        stations = {r[0] for r in conn.execute("SELECT name FROM stations")}
    assert stations == {"line1-st1", "line1-st2"}


@pytest.mark.parametrize(
    ("event", "at_batch", "mode", "batch_rows"),
    [
        ("after_commit", 4, "fast", 60),
        ("before_commit", 7, "immediate", 60),
        ("before_commit", 4, "immediate", 300),
    ],
)
def test_server_stopped_mid_sync_loses_nothing(
    two_stations: list[Path], pg_server: PgServer, event: str, at_batch: int, mode: str, batch_rows: int
) -> None:
    """Batches of 60 rows go as pipelined inserts, of 300 through COPY; both survive the cut."""
    url = pg_server.create_db()
    stopped: list[int] = []

    def cut(ev: str, n: int) -> None:
        if ev == event and n == at_batch and not stopped:
            stopped.append(n)
            pg_server.stop(mode)

    try:
        with pytest.raises(HarnessError, match=r"fleet database 127\.0\.0\.1:.*next sync continues"):
            sync_to_postgres(two_stations[0], url, batch_rows=batch_rows, hook=cut)
    finally:
        if stopped:
            pg_server.start()
    assert stopped == [at_batch]
    # Some of the first station is there, not all of it.
    partial = digest(fleet_rows(url))
    assert 0 < partial["telemetry"][0] < digest(station_rows(two_stations[:1]))["telemetry"][0]
    results = [sync_to_postgres(db, url, batch_rows=batch_rows) for db in two_stations]
    assert results[0].rows > 0
    want = digest(station_rows(two_stations))
    assert digest(fleet_rows(url)) == want
    assert [sync_to_postgres(db, url).rows for db in two_stations] == [0, 0]
    assert digest(fleet_rows(url)) == want


def test_unreachable_fleet_database_is_a_clear_error(two_stations: list[Path]) -> None:
    with pytest.raises(HarnessError, match=r"fleet database 127.0.0.1:1/nowhere"):
        sync_to_postgres(two_stations[0], "postgresql://postgres@127.0.0.1:1/nowhere")


def test_interrupted_run_ships_in_increments(tmp_path: Path, fleet_url: str) -> None:
    """A run killed mid-way is shipped as far as it got; after resume only the rest is shipped."""
    station = other_station(tmp_path, "line2-st1")
    db = tmp_path / "station.db"
    proc = run_qualify(
        tmp_path, "run", "station_smoke", "--station", str(station), "--db", str(db), "--lot", "INC",
        "--", "-p", "tests.support.killer", env={"QUALIFY_KILL_BEFORE_ITEM": "7"},
    )  # fmt: skip
    assert proc.returncode < 0 or proc.returncode == 137, proc.stdout + proc.stderr
    first = sync_to_postgres(db, fleet_url)
    assert first.runs == 1 and first.per_table["steps"] > 0
    assert digest(fleet_rows(fleet_url)) == digest(station_rows([db]))
    with psycopg.connect(fleet_url) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone() == ("running",)
    run_id = sqlite3.connect(db).execute("SELECT id FROM runs").fetchone()[0]
    resumed = run_qualify(tmp_path, "resume", run_id, "--db", str(db))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    second = sync_to_postgres(db, fleet_url)
    total_steps = sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert second.per_table["steps"] == total_steps - first.per_table["steps"]
    assert digest(fleet_rows(fleet_url)) == digest(station_rows([db]))
    with psycopg.connect(fleet_url) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone() == ("completed",)


def test_sync_rate_figure(
    two_stations: list[Path], fleet_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Print the rows/s figure (not asserted: no wall-clock assertions)."""
    result = sync_to_postgres(two_stations[0], fleet_url, batch_rows=5000)
    with capsys.disabled():
        print(f"\nsync: {result.rows} rows in {result.batches} batches, {result.rows_per_s:.0f} rows/s")
    want = digest(station_rows(two_stations[:1]))
    for table in ("steps", "measurements", "telemetry", "events"):
        assert result.per_table[table] == want[table][0]
