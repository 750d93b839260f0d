"""A station service over a simulated month: its memory stays flat.

The service runs a daily SMART sweep on the simulated lab's four drives for 30 simulated days
(its clock runs 21 600 times faster than real time, so a day passes in 4 s), with its status
page served and fetched every day and housekeeping (WAL checkpoints, telemetry retention) on a
short interval. Its resident memory, read from /proc after each day's sweep has ended, must be
within 10 % of what it was after the first day: nothing may accumulate per run, per page or
per housekeeping pass over weeks on a factory line.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import SIM_LAB
from tests.service.conftest import ServiceProcesses, rows, wait_for, write_queue

DAYS = 30
SPEED = 21600.0  # simulated seconds per real second: a day in 4 s
QUEUE = """
service: {poll_s: 0.05, checkpoint_every_s: 1, retention: {raw_days: 2, window_s: 3600}}
schedules:
  - {name: sweep, cron: "0 3 * * *", plan: "{plans}/quick_ssd.yaml", slots: all, lot: DAILY, seed: 5}
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _day_over(db: Path, day: int, proc: subprocess.Popen[str]) -> bool:
    return len(_ended(db)) >= day or proc.poll() is not None


def _ended(db: Path) -> list[str]:
    return [
        r["id"]
        for r in rows(db, "SELECT id FROM station_jobs WHERE state IN ('finished', 'failed') ORDER BY id")
    ]


@pytest.mark.timeout(900)  # 30 simulated days take minutes; the default 300 s is a hang guard
def test_service_memory_is_flat_over_a_simulated_month(
    tmp_path: Path, service_process: ServiceProcesses
) -> None:
    db = tmp_path / "station.db"
    queue = write_queue(tmp_path / "queue.yaml", QUEUE)
    port = _free_port()
    proc = service_process(
        db, queue, SIM_LAB, clock_speed=SPEED, clock_start="2026-11-01T00:00:00+00:00", http_port=port
    )
    rss: list[int] = []
    for day in range(1, DAYS + 1):
        wait_for(f"day {day}'s sweep to end", functools.partial(_day_over, db, day, proc))
        assert proc.poll() is None, service_process.output(proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:  # a supervisor looks
            assert page.status == 200 and b"sim-lab" in page.read()
        rss.append(_rss_kib(proc.pid))
    proc.terminate()
    out = service_process.finish(proc)
    assert proc.returncode == 0, out

    jobs = rows(db, "SELECT id, state FROM station_jobs ORDER BY id")
    assert len(jobs) >= DAYS and all(j["state"] == "finished" for j in jobs[:DAYS]), jobs
    assert jobs[0]["id"] == "schedule:sweep:2026-11-01T03:00Z"
    days = [j["id"].removeprefix("schedule:sweep:")[:10] for j in jobs[:DAYS]]
    assert days == sorted(set(days))  # one sweep a day at most (a slow machine may skip a day)
    print(f"service RSS after day 1 {rss[0]} KiB, after day {DAYS} {rss[-1]} KiB, peak {max(rss)} KiB: {rss}")
    assert abs(rss[-1] - rss[0]) <= 0.10 * rss[0], rss
