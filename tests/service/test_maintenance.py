"""Growth over weeks: telemetry retention with rollups, WAL checkpoints beside readers, archiving."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from qualify.errors import InputError
from qualify.service.maintenance import archive_runs, downsample_telemetry, table_counts, wal_checkpoint
from qualify.store.db import Batch, Store


def add_run(
    store: Store, *, started_at: str, status: str = "completed", hours: float = 48.0, every_s: float = 60.0
) -> str:
    """Record a run with two DUTs, a step each and telemetry every `every_s` for `hours`."""
    rid = str(uuid.uuid4())
    store.insert_rows("runs", [{
        "id": rid, "plan": "p", "plan_version": "1", "plan_sha256": "0" * 64, "station": "st", "lot": "L",
        "seed": 0, "status": status, "started_at": started_at, "ended_at": None, "software_version": "x",
        "git_commit": None, "host": "h", "operator": None, "plan_path": "p.yaml", "station_path": "s.yaml",
        "station_sha256": "0" * 64, "options_json": "{}", "message": None,
    }])  # fmt: skip
    store.insert_rows("duts", [
        {"run_id": rid, "serial": s, "kind": "ssd", "model": None, "firmware": None, "slot": i, "verdict": "pass", "address": None}
        for i, s in enumerate(("S1", "S2"), 1)
    ])  # fmt: skip
    batch = Batch()
    for i, serial in enumerate(("S1", "S2")):
        sid = str(uuid.uuid4())
        batch.steps.append(
            (
                sid,
                rid,
                serial,
                "st",
                "smart",
                1,
                "pass",
                0.0,
                1.0,
                started_at,
                started_at,
                None,
                "nvme.smart",
                i + 1,
            )
        )
        batch.measurements.append((sid, "temp_c", 40.0, None, "°C", None, 70.0, "pass"))
    n = int(hours * 3600 / every_s)
    for k in range(n):
        t = k * every_s
        batch.telemetry.append((rid, None, t, "chamber_temp_c", 25.0 + (k % 10), "°C"))
        for serial in ("S1", "S2"):
            batch.telemetry.append((rid, serial, t, "temp_c", 30.0 + (k % 7), "°C"))
    batch.events.append((rid, 0.0, "info", "engine", "start"))
    store.write_batch(batch, (rid, 1, 0.0, {"t": 0.0}))
    return rid


def test_downsample_keeps_recent_raw_and_rolls_up_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    rid = add_run(store, started_at="2026-01-01T00:00:00Z", hours=48)
    before = store.rows(
        "SELECT name, dut_serial, MIN(value) AS lo, MAX(value) AS hi, AVG(value) AS mean, COUNT(*) AS n "
        "FROM telemetry WHERE t < 86400 - 3600 GROUP BY name, dut_serial ORDER BY name, dut_serial"
    )
    done = downsample_telemetry(store, raw_days=1.0, window_s=3600.0)
    # Raw samples of the last day of run time stay; earlier ones are hourly rollups.
    kept = store.rows("SELECT MIN(t) AS t0, COUNT(*) AS n FROM telemetry WHERE run_id = ?", (rid,))[0]
    assert kept["t0"] == pytest.approx(
        86400.0 - 3600.0 * 1
    )  # cut at a window boundary at or below 47 h - 24 h
    roll = store.rows(
        "SELECT * FROM telemetry_rollup WHERE run_id = ? ORDER BY t_start, name, dut_serial", (rid,)
    )
    assert done["raw_deleted"] == 3 * 23 * 60 and done["rollup_rows"] == len(roll) == 3 * 23
    assert all(r["n"] == 60 and r["t_end"] - r["t_start"] == 3600.0 for r in roll)
    agg = {}
    for r in roll:
        a = agg.setdefault((r["name"], r["dut_serial"]), [1e9, -1e9, 0.0, 0])
        a[0], a[1] = min(a[0], r["min"]), max(a[1], r["max"])
        a[2] += r["mean"] * r["n"]
        a[3] += r["n"]
    for b in before:
        lo, hi, total, n = agg[(b["name"], b["dut_serial"])]
        assert (lo, hi, n) == (b["lo"], b["hi"], b["n"]) and total / n == pytest.approx(b["mean"])
    # Running it again changes nothing: the remaining raw samples are all recent.
    assert downsample_telemetry(store, raw_days=1.0, window_s=3600.0) == {"rollup_rows": 0, "raw_deleted": 0}
    with pytest.raises(InputError):
        downsample_telemetry(store, raw_days=0, window_s=60)
    store.close()


def test_passive_checkpoint_beside_a_reader_then_truncate(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    store = Store(db)
    add_run(store, started_at="2026-01-01T00:00:00Z", hours=1)
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM telemetry").fetchone()  # holds a snapshot, as a slow reader would
    add_run(store, started_at="2026-01-02T00:00:00Z", hours=6)
    held = wal_checkpoint(store.conn, "PASSIVE")
    assert held["wal_frames"] > 0 and held["checkpointed"] < held["wal_frames"]  # the reader pins frames
    reader.execute("COMMIT")
    reader.close()
    done = wal_checkpoint(store.conn, "TRUNCATE")
    assert done["busy"] == 0 and Path(str(db) + "-wal").stat().st_size == 0
    with pytest.raises(ValueError):
        wal_checkpoint(store.conn, "NOW")
    store.close()


def test_archive_moves_old_ended_runs(tmp_path: Path) -> None:
    db, arch = tmp_path / "q.db", tmp_path / "archive.db"
    store = Store(db)
    old = add_run(store, started_at="2026-01-01T00:00:00Z", hours=2)
    running = add_run(store, started_at="2026-01-02T00:00:00Z", hours=2, status="running")
    new = add_run(store, started_at="2026-03-01T00:00:00Z", hours=2)
    downsample_telemetry(store, raw_days=1 / 24, window_s=600)
    store.close()
    before = table_counts(db)
    moved = archive_runs(db, "2026-02-01", arch)
    assert moved["runs"] == 1
    after, archived = table_counts(db), table_counts(arch)
    for table, n in before.items():
        assert after[table] + archived[table] == n, table
    assert archived["telemetry_rollup"] > 0 and archived["measurements"] == 2
    kept = {r[0] for r in sqlite3.connect(db).execute("SELECT id FROM runs")}
    assert kept == {running, new}
    assert sqlite3.connect(arch).execute("SELECT id FROM runs").fetchall() == [(old,)]
    # Again: nothing left to move, nothing doubled in the archive.
    assert archive_runs(db, "2026-02-01", arch) == {"runs": 0}
    assert table_counts(arch) == archived
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
