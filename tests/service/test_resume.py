"""Crash-proof runs: a killed run, a killed service and a stopped service each end as one clean run.

Each interrupted run must end with the same steps, by (dut_serial, stage, name, iteration,
status), as an uninterrupted run of the same plan and seed, and the database must be intact.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualify.service.status import station_status
from tests.cli.conftest import SIM_LAB
from tests.service.conftest import Served, ServiceProcesses, rows, steps_of, wait_for, write_queue

QUEUE = """
service: {poll_s: 0.05, stop_timeout_s: 60}
runs:
  - {id: long, plan: "{plans}/long_ssd.yaml", lot: L, duts: [QSIM0002, QSIM0003], seed: 7}
"""


def job(db: Path) -> dict[str, Any]:
    got = rows(db, "SELECT * FROM station_jobs WHERE id = 'queue:long'")
    return got[0] if got else {}


def progress(db: Path) -> int:
    j = job(db)
    if not j.get("run_id"):
        return 0
    cp = rows(db, "SELECT seq FROM checkpoints WHERE run_id = ?", (j["run_id"],))
    return int(cp[0]["seq"]) if cp else 0


def finished(db: Path, reference: list[tuple[Any, ...]]) -> dict[str, Any]:
    j = job(db)
    assert j["state"] == "finished", j
    run = rows(db, "SELECT * FROM runs WHERE id = ?", (j["run_id"],))[0]
    assert run["status"] == "completed"
    assert steps_of(db, j["run_id"]) == reference
    assert rows(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    assert len(rows(db, "SELECT id FROM runs")) == 1
    return j


def test_killed_run_is_resumed_by_the_service(
    tmp_path: Path, serve: Callable[..., Served], long_reference: list[tuple[Any, ...]]
) -> None:
    db = tmp_path / "station.db"
    served = serve(SIM_LAB, write_queue(tmp_path / "queue.yaml", QUEUE), db, http_port=None)
    wait_for("the run to get going", lambda: progress(db) >= 20)
    status = station_status(db)["stations"][0]
    running = next(j for j in status["jobs"] if j["id"] == "queue:long")
    assert running["state"] == "running" and 0 < running["progress"] < 1 and running["eta_s"] is not None
    assert [s["state"] for s in status["slots"]] == ["free", "busy", "busy", "free"]
    os.kill(int(job(db)["pid"]), signal.SIGKILL)  # the run's process dies mid-item
    wait_for("the run to finish", lambda: job(db).get("state") == "finished")
    served.end()
    j = finished(db, long_reference)
    assert j["attempts"] == 2
    assert any("crashed" in line for line in served.lines) and any(
        "resumed run" in line for line in served.lines
    )


def test_killed_then_stopped_service_resumes_its_run(
    tmp_path: Path,
    serve: Callable[..., Served],
    service_process: ServiceProcesses,
    long_reference: list[tuple[Any, ...]],
) -> None:
    db = tmp_path / "station.db"
    queue = write_queue(tmp_path / "queue.yaml", QUEUE)
    # 1. The service is SIGKILLed: its run is told by the kernel (parent death) and aborts safely.
    first = service_process(db, queue)
    wait_for("the run to get going", lambda: progress(db) >= 20)
    first.kill()
    first.wait(timeout=60)
    wait_for(
        "the orphaned run to stop", lambda: rows(db, "SELECT status FROM runs")[0]["status"] != "running"
    )
    # 2. A new service resumes it; SIGTERM stops that service cleanly, the run aborted to a safe state.
    second = service_process(db, queue)
    done_before = progress(db)
    wait_for("the resumed run to move on", lambda: progress(db) >= done_before + 10)
    second.send_signal(signal.SIGTERM)
    out = service_process.finish(second)
    assert second.returncode == 0, out
    j = job(db)
    assert "stopping 1 run(s)" in out and "to resume at the next start" in out, out
    assert j["state"] == "interrupted", (j, out)
    run = rows(db, "SELECT * FROM runs WHERE id = ?", (j["run_id"],))[0]
    assert run["status"] == "aborted"
    safe = rows(db, "SELECT message FROM events WHERE run_id = ? AND source = 'station'", (j["run_id"],))
    assert any("safe state" in e["message"] for e in safe)
    # 3. The next start finishes it: one run, the same steps as never interrupted.
    served = serve(SIM_LAB, queue, db, http_port=None)
    wait_for("the run to finish", lambda: job(db).get("state") == "finished")
    served.end()
    finished(db, long_reference)
