"""Helpers for station-service tests: queue files, polling the database, serving in a thread."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qualify.service.serve import ServiceSummary, serve_station

PLANS = Path(__file__).parent / "plans"


def write_queue(path: Path, body: str) -> Path:
    """Write a queue file; `{plans}` in the body is the test plans folder."""
    path.write_text("spec: qualify.queue/1\n" + body.replace("{plans}", str(PLANS)))
    return path


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Query the results database in one short read."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    except sqlite3.OperationalError:
        return []  # tables not made yet
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Poll until check() is truthy; fail naming `what` if it never is (a safety net, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Served:
    """A station service running in a thread of the test."""

    stop: threading.Event
    thread: threading.Thread
    lines: list[str] = field(default_factory=list)
    summary: list[ServiceSummary] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def end(self) -> ServiceSummary:
        self.stop.set()
        self.thread.join(timeout=180)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error[0]
        return self.summary[0]


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start serve_station in a thread; every one started is stopped at the end of the test."""
    started: list[Served] = []

    def start(station: Path, queue: Path, db: Path, **kwargs: Any) -> Served:
        served = Served(threading.Event(), threading.Thread())

        def body() -> None:
            try:
                served.summary.append(
                    serve_station(
                        station, queue, db, stop_event=served.stop, echo=served.lines.append, **kwargs
                    )
                )
            except BaseException as exc:
                served.error.append(exc)

        served.thread = threading.Thread(target=body, daemon=True)
        served.thread.start()
        started.append(served)
        return served

    yield start
    for s in started:
        s.stop.set()
        s.thread.join(timeout=180)


def steps_of(db: Path, run_id: str) -> list[tuple[Any, ...]]:
    """Return a run's steps as DESIGN.md compares runs: (dut_serial, stage, name, iteration, status)."""
    return sorted(
        (r["dut_serial"] or "", r["stage"], r["name"], r["iteration"], r["status"])
        for r in rows(db, "SELECT * FROM steps WHERE run_id = ?", (run_id,))
    )


XSS_LOT = "<img src=x onerror=console.error('xss')>"


def live_station_db(folder: Path) -> tuple[Path, str]:
    """Make a database as a station service leaves it mid-run: a run part-way, its job, the service row.

    The run is real (`qualify run`, SIGKILLed before its 31st item); the job's lot is markup, to
    prove the page escapes what it shows. Returns the database and the run id.
    """
    import json
    from datetime import UTC, datetime

    from tests.cli.conftest import SIM_LAB, run_qualify

    db = folder / "station.db"
    proc = run_qualify(
        folder, "run", str(PLANS / "long_ssd.yaml"), "--station", str(SIM_LAB), "--db", str(db),
        "--lot", XSS_LOT, "--dut", "QSIM0002", "--dut", "QSIM0003", "--", "-p", "tests.support.killer",
        env={"QUALIFY_KILL_BEFORE_ITEM": "31"},
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout + proc.stderr
    (run,) = rows(db, "SELECT id, started_at FROM runs")
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    slots = [{"slot": n, "kind": "ssd", "serial": f"QSIM000{n}", "error": None} for n in (1, 2, 3, 4)]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO station_services (station, pid, host, url, state, started_at, heartbeat_at, slots_json, "
            "message) VALUES ('sim-lab', 4242, 'test-host', NULL, 'running', ?, ?, ?, '{}')",
            (run["started_at"], now, json.dumps(slots)),
        )
        conn.execute(
            "INSERT INTO station_jobs (id, station, source, plan, lot, seed, priority, request_json, state, run_id, "
            "slots_json, items_total, attempts, created_at, started_at) VALUES ('queue:lot-7', 'sim-lab', 'queue', "
            "'long_ssd', ?, 0, 0, '{}', 'running', ?, '[2, 3]', 180, 1, ?, ?)",
            (XSS_LOT, run["id"], run["started_at"], run["started_at"]),
        )
        conn.execute(
            "INSERT INTO station_jobs (id, station, source, plan, lot, seed, priority, request_json, state, "
            "created_at) VALUES ('queue:lot-8', 'sim-lab', 'queue', 'quick_ssd', 'L8', 0, 0, '{}', 'waiting', ?)",
            (now,),
        )
        # One DUT judged failed, so the page has a recent failure to show.
        conn.execute(
            "UPDATE duts SET verdict = 'fail' WHERE run_id = ? AND serial = 'QSIM0003'", (run["id"],)
        )
        conn.execute(
            "UPDATE steps SET status = 'fail', message = 'temp_c 91 > 70' WHERE id = (SELECT id FROM steps "
            "WHERE run_id = ? AND dut_serial = 'QSIM0003' ORDER BY seq LIMIT 1)",
            (run["id"],),
        )
    conn.close()
    return db, run["id"]


class ServiceProcesses:
    """Start station services as processes (SIM_LAB unless `station`); close() kills any still running.

    Keyword arguments go to serve_station (`clock_start` as an ISO-8601 string); no status page
    unless `http_port` is given. Each service's output goes to a file, not a pipe: a pipe nobody
    reads until the end would block a talkative service (one retrying a locked database on a
    loaded machine, say) once 64 KiB are unread, and the test would wait on a stalled service.
    """

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []
        self.folder = Path(tempfile.mkdtemp(prefix="qualify-services-"))

    def __call__(
        self, db: Path, queue: Path, station: Path | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        from tests.cli.conftest import REPO, SIM_LAB

        code = (
            "import json, sys; from datetime import datetime; from qualify.service.serve import serve_station; "
            "kw = json.loads(sys.argv[4]); "
            "kw['clock_start'] = datetime.fromisoformat(kw['clock_start']) if 'clock_start' in kw else None; "
            "kw.setdefault('http_port', None); "
            "serve_station(sys.argv[1], sys.argv[2], sys.argv[3], **kw)"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self._log(len(self.started)).open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(station or SIM_LAB), str(queue), str(db), json.dumps(kwargs)],
                env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        self.started.append(proc)
        return proc

    def _log(self, index: int) -> Path:
        return self.folder / f"service-{index}.log"

    def output(self, proc: subprocess.Popen[str]) -> str:
        """Return what a service has printed so far."""
        return self._log(self.started.index(proc)).read_text(errors="replace")

    def finish(self, proc: subprocess.Popen[str], timeout: float = 120) -> str:
        """Wait for a service (already told to stop) to end; return all it printed."""
        proc.wait(timeout=timeout)
        return self.output(proc)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def service_process() -> Iterator[ServiceProcesses]:
    """Start station services as processes; any still running at the end is killed."""
    starter = ServiceProcesses()
    yield starter
    starter.close()


@pytest.fixture(scope="session")
def long_reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    """Return the steps of long_ssd on QSIM0002-3, seed 7, lot L, uninterrupted, through `qualify run`."""
    from tests.cli.conftest import SIM_LAB, run_qualify

    folder = tmp_path_factory.mktemp("reference")
    db = folder / "ref.db"
    proc = run_qualify(
        folder, "run", str(PLANS / "long_ssd.yaml"), "--station", str(SIM_LAB), "--db", str(db), "--lot", "L",
        "--dut", "QSIM0002", "--dut", "QSIM0003", "--seed", "7",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = rows(db, "SELECT id FROM runs")
    return steps_of(db, run["id"])
