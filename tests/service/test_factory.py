"""A factory station at scale: 64 SSD and 32 DIMM slots, scheduled sweeps, a service killed 20 times.

The station (fixtures/stations/sim-factory.yaml) runs two cron schedules at once, the SMART
sweep on its 64 drives and the health sweep on its 32 modules. The service is SIGKILLed at 20
random moments and started again each time, as systemd would; its runs are orphaned (and abort
to a safe state on the parent-death signal) and resumed by the next service. The two runs must
end completed with the same step records as an uninterrupted service run of the same schedules
and seeds, no scheduled run may be lost or doubled, and the database must be intact.
"""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path
from typing import Any

import pytest

from qualify.resources import plans_dir
from tests.cli.conftest import REPO
from tests.service.conftest import ServiceProcesses, rows, steps_of, wait_for, write_queue

FACTORY = REPO / "fixtures" / "stations" / "sim-factory.yaml"
KILLS = 20
# The sweeps fire at 03:00 UTC; each service start begins its clock at 02:59:58, so the first
# service fires them and a restarted one finds them fired (its clock is before the next 03:00).
CLOCK_START = "2026-11-28T02:59:58+00:00"
QUEUE = """
service: {poll_s: 0.05, stop_timeout_s: 60}
schedules:
  - {name: ssd-sweep, cron: "0 3 * * *", plan: "{plans}/smart_sweep.yaml", slots: all, lot: F-SSD, seed: 11}
  - {name: dimm-sweep, cron: "0 3 * * *", plan: "{plans}/health_sweep.yaml", slots: all, lot: F-DIMM, seed: 12}
"""
JOBS = ("schedule:ssd-sweep:2026-11-28T03:00Z", "schedule:dimm-sweep:2026-11-28T03:00Z")


def _plans(folder: Path) -> Path:
    """Copy the shipped sweeps with more readings, so the runs are long enough to be killed in."""
    folder.mkdir(exist_ok=True)
    for rel in ("ssd/smart_sweep.yaml", "dimm/health_sweep.yaml"):
        text = (plans_dir() / rel).read_text()
        assert "  readings: 4\n" in text
        (folder / Path(rel).name).write_text(text.replace("  readings: 4\n", "  readings: 30\n"))
    return folder


def _queue(folder: Path) -> Path:
    return write_queue(folder / "queue.yaml", QUEUE.replace("{plans}", str(_plans(folder / "plans"))))


def _progress(db: Path) -> dict[str, tuple[str, int]]:
    """Return each sweep job's state and its run's committed items."""
    out = {}
    for job_id in JOBS:
        job = rows(db, "SELECT state, run_id FROM station_jobs WHERE id = ?", (job_id,))
        if not job:
            out[job_id] = ("absent", 0)
            continue
        seq = rows(db, "SELECT seq FROM checkpoints WHERE run_id = ?", (job[0]["run_id"] or "",))
        out[job_id] = (job[0]["state"], int(seq[0]["seq"]) if seq else 0)
    return out


def _committed(db: Path) -> int:
    return sum(seq for _, seq in _progress(db).values())


def _moved_on(db: Path, target: int) -> bool:
    return _finished(db) or _committed(db) >= target


def _finished(db: Path) -> bool:
    return all(state == "finished" for state, _ in _progress(db).values())


def _serve_to_the_end(start: ServiceProcesses, db: Path, queue: Path) -> str:
    proc = start(db, queue, FACTORY, clock_start=CLOCK_START)
    wait_for("both sweeps to finish", lambda: _finished(db), timeout=600)
    proc.terminate()
    out = start.finish(proc)
    assert proc.returncode == 0, out
    return out


def _run_of(db: Path, job_id: str) -> str:
    (job,) = rows(db, "SELECT run_id FROM station_jobs WHERE id = ?", (job_id,))
    return str(job["run_id"])


def _steps(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {job_id: steps_of(db, _run_of(db, job_id)) for job_id in JOBS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Run the two sweeps once under a service that nobody kills."""
    folder = tmp_path_factory.mktemp("factory-reference")
    db = folder / "station.db"
    starter = ServiceProcesses()
    try:
        _serve_to_the_end(starter, db, _queue(folder))
    finally:
        starter.close()
    steps = _steps(db)
    per_dut = {job: sum(1 for s in steps[job] if s[0]) for job in JOBS}
    assert per_dut == {JOBS[0]: 64 * (1 + 30 * 3), JOBS[1]: 32 * (1 + 30 * 3)}  # every slot, every step
    assert all(s[4] == "pass" for run in steps.values() for s in run)
    # Telemetry of all 96 DUTs kept the plans' 60 s interval (virtual time), none skipped.
    for run_id, duts in ((_run_of(db, JOBS[0]), 64), (_run_of(db, JOBS[1]), 32)):
        gaps = rows(
            db,
            "SELECT COUNT(DISTINCT dut_serial) AS duts, MIN(gap) AS lo, MAX(gap) AS hi FROM (SELECT dut_serial, "
            "t - LAG(t) OVER (PARTITION BY dut_serial ORDER BY t) AS gap FROM telemetry "
            "WHERE run_id = ? AND name = 'supply_v') WHERE gap IS NOT NULL",
            (run_id,),
        )
        assert gaps == [{"duts": duts, "lo": 60.0, "hi": 60.0}]
    return steps


# pyproject's 300 s per test guards against hangs; this one also runs the module's reference sweeps
# (its setup counts) and 21 service lives: ~3 min on 2 free cores, twice that on a busy machine.
@pytest.mark.timeout(900)
def test_station_of_96_slots_survives_20_service_kills(
    tmp_path: Path,
    service_process: ServiceProcesses,
    reference: dict[str, list[tuple[Any, ...]]],
) -> None:
    db = tmp_path / "station.db"
    queue = _queue(tmp_path)
    rng = random.Random(20261128)  # the moments are random, and the same on every run of the test
    moments: list[dict[str, tuple[str, int]]] = []
    for _ in range(KILLS):
        proc = service_process(db, queue, FACTORY, clock_start=CLOCK_START)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.0, 1.5))  # a moment of start-up: lock, recovery, firing, spawning
        else:
            # A moment inside the runs: after 1 to 12 more items have committed.
            target = _committed(db) + rng.randint(1, 12)
            wait_for("the runs to move on", functools.partial(_moved_on, db, target))
            time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        service_process.finish(proc, timeout=60)
        moments.append(_progress(db))
        if _finished(db):
            break
    assert len(moments) == KILLS, f"the sweeps finished after {len(moments)} kills: make them longer"
    # Most kills found a run part-way through its items (the rest hit start-up).
    part_way = [m for m in moments if any(state != "finished" and seq > 0 for state, seq in m.values())]
    assert len(part_way) >= KILLS // 2, moments

    _serve_to_the_end(service_process, db, queue)
    assert _steps(db) == reference
    jobs = rows(db, "SELECT id, state, attempts FROM station_jobs ORDER BY id")
    assert [j["id"] for j in jobs] == sorted(JOBS) and all(j["state"] == "finished" for j in jobs)
    runs = rows(db, "SELECT id, status FROM runs")
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    assert sum(j["attempts"] for j in jobs) > KILLS // 2  # most kills were resumed from, not restarted
    assert rows(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
