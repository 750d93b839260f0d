"""The station service on a full file system: the run waits for room, nothing else starts, nothing is lost.

The served station's database (and the runs' logs and reports) live on a small tmpfs that a
ballast file fills while a run is going. The run stops at the item whose commit the file system
refused, keeping every item before it; its job waits as `interrupted` (not crashed, not
failed: it is not the run's fault), the service starts nothing while free space is below
`min_free_mb` and says so; once the ballast is gone it resumes the run, which ends with the
same steps as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualify.service.status import format_status, station_status
from qualify.service.web import render_status_page
from tests.cli.conftest import SIM_LAB
from tests.service.conftest import PLANS, Served, rows, steps_of, wait_for, write_queue
from tests.support.disk import tmpfs_or_skip

TMPFS_BYTES = 24 << 20
QUEUE = """
service: {poll_s: 0.05, min_free_mb: 8}  # more than the WAL (4 MiB) gives back when it goes
runs:
  - {id: long, plan: "{plans}/long_ssd.yaml", lot: L, duts: [QSIM0002, QSIM0003], seed: 7}
"""
LATER = '  - {id: later, plan: "{plans}/quick_ssd.yaml", duts: [QSIM0001]}\n'


def _job(db: Path, job_id: str) -> dict[str, Any]:
    got = rows(db, "SELECT * FROM station_jobs WHERE id = ?", (job_id,))
    return got[0] if got else {}


def _progress(db: Path) -> int:
    run_id = _job(db, "queue:long").get("run_id")
    cp = rows(db, "SELECT seq FROM checkpoints WHERE run_id = ?", (run_id,)) if run_id else []
    return int(cp[0]["seq"]) if cp else 0


def test_full_disk_pauses_the_service_and_the_run_resumes_when_there_is_room(
    tmp_path: Path, serve: Callable[..., Served], long_reference: list[tuple[Any, ...]]
) -> None:
    with tmpfs_or_skip(tmp_path, TMPFS_BYTES) as disk:
        db = disk.folder / "station.db"
        queue = write_queue(tmp_path / "queue.yaml", QUEUE)  # the queue is on another file system
        served = serve(SIM_LAB, queue, db, http_port=None)
        wait_for("the run to get going", lambda: _progress(db) >= 20)
        disk.fill(256 << 10)
        # Full: the run stops (its last commit refused) and the service, which cannot write
        # either, says it is paused and keeps the run's end to record when it can.
        wait_for("the service to pause", lambda: any("paused:" in line for line in served.lines))
        pid = int(_job(db, "queue:long")["pid"])
        wait_for("the run to stop", lambda: not Path(f"/proc/{pid}").exists())
        # Some room, still below min_free_mb: the service records what happened and waits. (The
        # ballast shrinks in one step; freeing it all first would let the service resume at once.)
        disk.fill(1 << 20)
        wait_for("the run to wait for room", lambda: _job(db, "queue:long").get("state") == "interrupted")
        kept = _progress(db)
        job = _job(db, "queue:long")
        # Exit 3 (a full disk, resumable) even when its log, on the same file system, could not
        # take its last words; the service then asks the disk why.
        assert "resumes when 8 MiB are free" in job["message"] and job["exit_code"] == 3, job
        assert 20 <= kept < 180
        # While below min_free_mb, a new entry in the queue waits and the run is not retried.
        queue.write_text(queue.read_text() + LATER.replace("{plans}", str(PLANS)))
        wait_for(
            "the service to take the new entry", lambda: _job(db, "queue:later").get("state") == "waiting"
        )
        assert _job(db, "queue:long")["attempts"] == 1 and _job(db, "queue:long")["state"] == "interrupted"
        # Supervisors see why: `station status` and the status page say the station is paused.
        wait_for("the status to say paused", lambda: "PAUSED: " in format_status(station_status(db)))
        assert 'id="paused"' in render_status_page(db)

        disk.free()
        wait_for("the run to finish", lambda: _job(db, "queue:long").get("state") == "finished")
        wait_for("the later entry to finish", lambda: _job(db, "queue:later").get("state") == "finished")
        served.end()
        job = _job(db, "queue:long")
        assert job["attempts"] == 2
        assert steps_of(db, job["run_id"]) == long_reference
        assert rows(db, "SELECT status FROM runs WHERE id = ?", (job["run_id"],)) == [{"status": "completed"}]
        assert rows(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        assert any("runs go on" in line for line in served.lines)
        assert "PAUSED" not in format_status(station_status(db))
        print(f"the file system filled after item {kept} of 180; the run resumed to the end")
