"""The station service keeps the house: WAL checkpoints, telemetry retention, and fleet sync."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg

from qualify.service.status import station_status
from tests.cli.conftest import SIM_LAB
from tests.service.conftest import Served, rows, serve, wait_for, write_queue

__all__ = ["serve"]


def test_service_ships_runs_and_keeps_telemetry_bounded(
    tmp_path: Path, serve: Callable[..., Served], fleet_url: str
) -> None:
    db = tmp_path / "station.db"
    queue = write_queue(
        tmp_path / "queue.yaml",
        f"""
service:
  poll_s: 0.05
  checkpoint_every_s: 0.2
  retention: {{raw_days: 0.002, window_s: 60}}
  sync: {{to: "{fleet_url}", every_s: 1}}
runs:
  - {{id: q, plan: "{{plans}}/quick_ssd.yaml", lot: Q, slots: 4}}
""",
    )
    served = serve(SIM_LAB, queue, db, http_port=None)
    wait_for("the run", lambda: rows(db, "SELECT state FROM station_jobs") == [{"state": "finished"}])
    (run,) = rows(db, "SELECT id FROM runs")

    def shipped() -> bool:
        with psycopg.connect(fleet_url) as conn:
            got = conn.execute("SELECT status FROM runs WHERE id = %s", (run["id"],)).fetchall()
        return got == [("completed",)] and bool(rows(db, "SELECT * FROM telemetry_rollup"))

    wait_for("the run in the fleet database, telemetry rolled up", shipped)
    wait_for("a sync after the rollup", lambda: _fleet_rollups(fleet_url) > 0)
    house = station_status(db)["stations"][0]["housekeeping"]
    served.end()
    assert house["wal_checkpoint"]["mode"] in ("PASSIVE", "TRUNCATE") and house["retention"]["at"]
    # Raw samples older than ~3 minutes of run time became one-minute rollups.
    (span,) = rows(db, "SELECT MAX(t) - MIN(t) AS span FROM telemetry")
    assert span["span"] <= 0.002 * 86400 + 60


def _fleet_rollups(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM telemetry_rollup").fetchone()[0])
