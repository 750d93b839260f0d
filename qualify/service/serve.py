"""The station service: takes runs from a queue file and cron schedules, runs them, keeps going.

Each run is a child process running `qualify run` / `qualify resume` (see worker.py): the same
engine path an operator uses, and a crash, a hang or a leak in one run cannot take the service
or the other runs with it. The service's own state (what it took, what runs where) lives in the
results database beside the runs, so a restarted service knows what it was doing: it resumes
runs that were interrupted and never takes a queue entry twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from qualify.engine.items import plan_items
from qualify.errors import HarnessError, InputError, QualifyError
from qualify.files import FILE_SYSTEM_FULL, free_bytes
from qualify.plans.library import find_plan
from qualify.plans.loader import load_any_plan
from qualify.report.render import safe_filename
from qualify.service.queue import (
    Job,
    QueueFile,
    RunRequest,
    ServiceSettings,
    load_queue,
    queue_jobs,
    schedule_cron,
)
from qualify.service.station import StationInfo, assign, read_station
from qualify.store.db import Store, utc_now

ACTIVE = ("running",)
RESUMABLE_JOBS = ("running", "interrupted", "crashed")
_REPO_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class ServiceSummary:
    """What a service did between its start and its stop."""

    station: str
    started: int = 0
    resumed: int = 0
    finished: int = 0
    failed: int = 0
    interrupted: int = 0
    url: str | None = None


@dataclass
class _Child:
    job_id: str
    proc: subprocess.Popen[bytes]
    claims: frozenset[str]
    log: IO[bytes]
    report_path: str
    run_id: str | None = None


class ServiceClock:
    """UTC wall time, optionally from `start` and `speed` times faster (to test schedules quickly)."""

    def __init__(self, speed: float | None = None, start: datetime | None = None) -> None:
        self.speed = speed
        self.start = start
        self._t0 = start or datetime.now(UTC)
        self._m0 = time.monotonic()

    def now(self) -> datetime:
        """Return the service's idea of now."""
        if not self.speed and self.start is None:
            return datetime.now(UTC)
        return self._t0 + timedelta(seconds=(time.monotonic() - self._m0) * (self.speed or 1.0))


@dataclass
class _Housekeeping:
    last_checkpoint: float = 0.0
    last_retention: float = 0.0
    last_sync: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    sync_thread: threading.Thread | None = None


class StationService:
    """One station's service loop. Use serve_station() to run it."""

    def __init__(
        self,
        station_path: Path,
        queue_path: Path,
        db_path: Path,
        *,
        clock_speed: float | None = None,
        clock_start: datetime | None = None,
        stop_event: threading.Event | None = None,
        http_port: int | None = 0,
        http_host: str | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.station_path = station_path.resolve()
        self.queue_path = queue_path.resolve()
        self.db_path = db_path.resolve()
        self.clock = ServiceClock(clock_speed, clock_start)
        self.stop_event = stop_event or threading.Event()
        self.http_port = http_port
        self.echo = echo
        self.queue: QueueFile = load_queue(self.queue_path)
        self.settings: ServiceSettings = self.queue.service
        self.http_host = http_host or self.settings.http_host
        self._queue_mtime = self.queue_path.stat().st_mtime_ns
        self.info: StationInfo = read_station(self.station_path)
        self.name = self.info.name
        self.store = Store(self.db_path)
        self.children: dict[str, _Child] = {}
        self.summary = ServiceSummary(self.name)
        self.house = _Housekeeping()
        self._lock_fd: int | None = None
        self._http: Any = None
        self._last_heartbeat = 0.0
        self._seeded = False
        self.logs_dir = self.db_path.parent / "station-logs"
        self.reports_dir = self.db_path.parent / "station-reports"

    # -- lifetime -------------------------------------------------------------------------

    def serve(self) -> ServiceSummary:
        """Run until the stop event is set (SIGTERM or SIGINT in the main thread set it)."""
        restore = self._install_signals()
        try:
            self.open()
            while not self.stop_event.is_set():
                try:
                    self.tick()
                except (QualifyError, sqlite3.Error, OSError) as exc:
                    # A busy database or a station that will not bind now must not end the
                    # service and its runs: say so, wait a little, try again.
                    self.echo(f"station {self.name}: {type(exc).__name__}: {exc}; retrying")
                    self.stop_event.wait(max(5.0, self.settings.poll_s))
                self.stop_event.wait(self.settings.poll_s)
        finally:
            self.close()
            restore()
        return self.summary

    def open(self) -> None:
        """Take the station, serve the status page, and resume what a previous service left."""
        from qualify.sync.outbox import install_outbox

        self._take_lock()
        install_outbox(self.store)  # every change from here on is noted for the fleet sync
        self._start_http()
        self._set_service_row("starting")
        self._recover()
        self._set_service_row("running")
        self.echo(f"station {self.name}: serving {self.queue_path} into {self.db_path}")

    def close(self) -> None:
        """Stop every run cleanly, then release the page, the database and the station."""
        self.stop_event.set()
        try:
            self._stop_children()
        finally:
            self._set_service_row("stopped")
            if self._http is not None:
                self._http.stop()
                self._http = None
            if self.house.sync_thread is not None:
                self.house.sync_thread.join(timeout=60)
            self.store.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        self.echo(
            f"station {self.name}: stopped ({self.summary.finished} finished, "
            f"{self.summary.interrupted} to resume at the next start)"
        )

    def tick(self) -> None:
        """Reap children, take new work, start what fits, and keep the house."""
        self._reap()
        self._resume_interrupted()
        self._reload_queue()
        self._fire_schedules()
        self._start_waiting()
        self._housekeeping()
        self._heartbeat()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def stop(signum: int, frame: Any) -> None:
            self.stop_event.set()

        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, handler in old.items():
                signal.signal(s, handler)

        return restore

    def _take_lock(self) -> None:
        """Hold a lock for the station; runs inherit it, so an orphaned run keeps it too."""
        path = self.db_path.with_name(f"{self.db_path.name}.{safe_filename(self.name)}.lock")
        self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + 30.0
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline or self.stop_event.is_set():
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    raise HarnessError(
                        f"station {self.name} is served by another process, or runs of a stopped "
                        f"service are still ending (lock {path})"
                    ) from None
                time.sleep(0.2)

    def _start_http(self) -> None:
        if self.http_port is None:
            return
        from qualify.service.web import StatusServer

        self._http = StatusServer(self.db_path, self.http_host, self.http_port, station=self.name)
        self._http.start()
        self.summary.url = self._http.url
        self.echo(f"station {self.name}: status page {self._http.url}")

    # -- the service's rows ---------------------------------------------------------------

    def _set_service_row(self, state: str) -> None:
        now = utc_now()
        slots = [
            {"slot": s.slot, "kind": s.kind, "serial": s.serial, "error": s.error} for s in self.info.slots
        ]
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO station_services (station, pid, host, url, state, started_at, heartbeat_at, "
                "slots_json, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(station) DO UPDATE SET "
                "pid=excluded.pid, host=excluded.host, url=excluded.url, state=excluded.state, "
                "started_at=CASE WHEN excluded.state='starting' THEN excluded.started_at "
                "ELSE station_services.started_at END, heartbeat_at=excluded.heartbeat_at, "
                "slots_json=excluded.slots_json, message=excluded.message",
                (
                    self.name,
                    os.getpid(),
                    platform.node(),
                    self.summary.url,
                    state,
                    now,
                    now,
                    json.dumps(slots),
                    json.dumps(self.house.info, sort_keys=True),
                ),
            )

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < 5.0:
            return
        self._last_heartbeat = time.monotonic()
        self._set_service_row("running")

    def _job_rows(self, *states: str) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in states)
        return self.store.rows(
            f"SELECT * FROM station_jobs WHERE station = ? AND state IN ({marks}) "  # noqa: S608 - placeholders only
            "ORDER BY priority DESC, rowid",
            (self.name, *states),
        )

    def _update_job(self, job_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE station_jobs SET {sets} WHERE id = ?", (*values.values(), job_id))  # noqa: S608 - column names come from this module

    def _insert_job(self, job: Job, conn: sqlite3.Connection | None = None) -> bool:
        """Add a waiting job unless one with its id exists; in `conn`'s transaction if given."""
        if conn is None:
            with self.store.transaction() as own:
                return self._insert_job(job, own)
        req = job.request
        cur = conn.execute(
            "INSERT OR IGNORE INTO station_jobs (id, station, source, plan, lot, seed, priority, "
            "request_json, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
            (
                job.id,
                self.name,
                job.source,
                req.plan,
                req.lot,
                req.seed,
                req.priority,
                job.request_json(),
                utc_now(),
            ),
        )
        return cur.rowcount == 1

    # -- recovery -------------------------------------------------------------------------

    def _recover(self) -> None:
        """Resume what a previous service left running; adopt this station's orphaned runs."""
        for job in self._job_rows(*RESUMABLE_JOBS):
            run_id = job["run_id"] or self._find_run(job["id"])
            if run_id is None:
                self._update_job(job["id"], state="waiting", message="restarted: it had not started a run")
                continue
            self._resume(job, run_id)
        linked = {
            r["run_id"] for r in self.store.rows("SELECT run_id FROM station_jobs WHERE run_id IS NOT NULL")
        }
        for run in self.store.rows(
            "SELECT id, plan, lot, seed FROM runs WHERE station = ? AND status = 'running'", (self.name,)
        ):
            if run["id"] in linked:
                continue
            job_id = f"recovered:{run['id']}"
            request = RunRequest(plan=run["plan"], lot=run["lot"], seed=run["seed"])
            self._insert_job(Job(job_id, "recovered", request))
            self._update_job(job_id, run_id=run["id"])
            self.echo(f"station {self.name}: adopting interrupted run {run['id']}")
            self._resume(self.store.rows("SELECT * FROM station_jobs WHERE id = ?", (job_id,))[0], run["id"])

    def _find_run(self, job_id: str) -> str | None:
        """Find the run a job started, by the report path the service gave it."""
        report = str(self._report_path(job_id))
        pattern = "%" + safe_filename(job_id, 200) + "%"
        for row in self.store.rows(
            "SELECT id, options_json FROM runs WHERE station = ? AND options_json LIKE ?",
            (self.name, pattern),
        ):
            if json.loads(row["options_json"]).get("report_path") == report:
                return str(row["id"])
        return None

    def _resume(self, job: dict[str, Any], run_id: str) -> None:
        status = self.store.rows("SELECT status FROM runs WHERE id = ?", (run_id,))
        if not status or status[0]["status"] not in ("running", "aborted", "stopped"):
            state = "finished" if status else "failed"
            self._update_job(job["id"], state=state, run_id=run_id, ended_at=utc_now())
            return
        claims = self._claims_of(job)
        if claims is None:
            return
        self._update_job(job["id"], run_id=run_id, attempts=int(job["attempts"]) + 1)
        self._spawn(job["id"], ["resume", run_id, "--db", str(self.db_path)], claims, run_id)
        self.summary.resumed += 1
        self.echo(f"station {self.name}: resumed run {run_id} ({job['id']})")

    def _claims_of(self, job: dict[str, Any]) -> frozenset[str] | None:
        slots = json.loads(job["slots_json"] or "null")
        if slots is None:  # adopted run: it holds whatever it may touch
            return self.info.everything()
        try:
            loaded = load_any_plan(self._plan_path(job["plan"]))
        except QualifyError as exc:
            self._update_job(job["id"], state="failed", message=str(exc), ended_at=utc_now())
            return None
        by_slot = {s.slot: s for s in self.info.slots}
        serials = [by_slot[n].serial for n in slots if n in by_slot]
        try:
            assigned = assign(
                self.info, loaded, Path(loaded.path).suffix == ".py", serials, None, frozenset()
            )
        except QualifyError:  # the station changed under the run: let it hold everything
            return self.info.everything()
        return assigned.claims if assigned is not None else self.info.everything()

    # -- queue and schedules --------------------------------------------------------------

    def _reload_queue(self) -> None:
        try:
            mtime = self.queue_path.stat().st_mtime_ns
        except OSError:
            return
        fresh = mtime != self._queue_mtime
        if fresh:
            self._queue_mtime = mtime
            try:
                self.queue = load_queue(self.queue_path)
            except InputError as exc:
                self.echo(f"station {self.name}: queue file not reloaded: {exc}")
                return
        jobs = queue_jobs(self.queue)
        if fresh or not self._seeded:
            self._seeded = True
            for job in jobs:
                if self._insert_job(job):
                    self.echo(f"station {self.name}: queued {job.id} ({job.request.plan})")
            wanted = {j.id for j in jobs}
            for row in self._job_rows("waiting"):
                if row["source"] == "queue" and row["id"] not in wanted:
                    self._update_job(row["id"], state="cancelled", message="removed from the queue file")

    def _fire_schedules(self) -> None:
        now = self.clock.now()
        for sched in self.queue.schedules:
            row = self.store.rows(
                "SELECT cron, last_fire FROM station_schedules WHERE station = ? AND name = ?",
                (self.name, sched.name),
            )
            if not row or row[0]["cron"] != sched.cron:
                with self.store.transaction() as conn:
                    conn.execute(
                        "INSERT INTO station_schedules (station, name, cron, last_fire) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(station, name) DO UPDATE SET cron = excluded.cron, "
                        "last_fire = excluded.last_fire",
                        (self.name, sched.name, sched.cron, now.isoformat()),
                    )
                continue
            last = datetime.fromisoformat(row[0]["last_fire"])
            last = max(last, now - timedelta(days=1))  # a long outage fires once, not once per missed slot
            cron = schedule_cron(sched)
            due = cron.next_after(last)
            if due > now:
                continue
            while (later := cron.next_after(due)) <= now:
                due = later
            job_id = f"schedule:{sched.name}:{due.strftime('%Y-%m-%dT%H:%MZ')}"
            pending = self.store.rows(
                "SELECT id FROM station_jobs WHERE station = ? AND id LIKE ? AND state IN "
                "('waiting', 'running', 'interrupted', 'crashed')",
                (self.name, f"schedule:{sched.name}:%"),
            )
            # The firing and its job are one transaction: a service killed between the two
            # must neither lose the day's run nor fire it twice.
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE station_schedules SET last_fire = ? WHERE station = ? AND name = ?",
                    (due.isoformat(), self.name, sched.name),
                )
                inserted = not pending and self._insert_job(Job(job_id, "schedule", sched), conn)
            if pending:
                self.echo(
                    f"station {self.name}: schedule {sched.name} skipped at {due:%Y-%m-%d %H:%M}: "
                    f"{pending[0]['id']} has not ended"
                )
            elif inserted:
                self.echo(f"station {self.name}: schedule {sched.name} fired ({job_id})")

    # -- starting runs --------------------------------------------------------------------

    def _busy(self) -> frozenset[str]:
        out: set[str] = set()
        for child in self.children.values():
            out |= child.claims
        return frozenset(out)

    def _room(self) -> bool:
        """Return whether the database's file system has `min_free_mb` free; say so when that changes."""
        free = free_bytes(self.db_path.parent)
        need = self.settings.min_free_mb * 2**20
        low = free is not None and free < need
        if low != bool(self.house.info.get("disk", {}).get("paused")):
            free_mb = (free or 0) / 2**20
            self.house.info["disk"] = {"free_mb": round(free_mb, 1), "paused": low, "at": utc_now()}
            if low:
                self.echo(
                    f"station {self.name}: paused: {free_mb:.1f} MiB free for {self.db_path}, below "
                    f"min_free_mb {self.settings.min_free_mb:g}; no run starts or resumes until there is room"
                )
            else:
                self.echo(f"station {self.name}: {free_mb:.1f} MiB free for {self.db_path}: runs go on")
        return not low

    def _resume_interrupted(self) -> None:
        """Resume the runs a full file system stopped, once it has room again."""
        if self.stop_event.is_set():
            return
        waiting = [j for j in self._job_rows("interrupted") if j["id"] not in self.children and j["run_id"]]
        if waiting and self._room():
            for job in waiting:
                self._resume(job, job["run_id"])

    def _start_waiting(self) -> None:
        if self.stop_event.is_set() or not self._room():
            return
        waiting = self._job_rows("waiting")
        if not waiting:
            return
        if not self.children:
            try:
                self.info = read_station(self.station_path)  # DUTs may have been swapped while idle
            except QualifyError as exc:
                self.echo(f"station {self.name}: cannot bind the station, keeping its last slots: {exc}")
        reserved: set[str] = set()
        for job in waiting:
            try:
                request = RunRequest.model_validate_json(job["request_json"])
                plan_path = self._plan_path(request.plan)
                loaded = load_any_plan(plan_path)
                is_module = plan_path.suffix == ".py"
                busy = self._busy() | reserved
                chosen = assign(self.info, loaded, is_module, request.duts, request.slots, frozenset(busy))
            except QualifyError as exc:
                self._update_job(job["id"], state="failed", message=str(exc), ended_at=utc_now())
                self.summary.failed += 1
                self.echo(f"station {self.name}: {job['id']} refused: {exc}")
                continue
            if chosen is None:
                # Lots wait for free slots, and the slots they wait for go to no later entry.
                if isinstance(request.slots, int):
                    kind = loaded.plan.applies_to
                    reserved |= {s.claim for s in self.info.slots if s.kind == kind}
                else:
                    ideal = assign(self.info, loaded, is_module, request.duts, request.slots, frozenset())
                    reserved |= ideal.claims if ideal is not None else set()
                continue
            self._start(
                job["id"],
                request,
                plan_path,
                len(plan_items(loaded.plan)),
                chosen.duts,
                [s.slot for s in chosen.slots],
                chosen.claims,
            )

    def _plan_path(self, plan: str) -> Path:
        candidate = Path(plan)
        if not candidate.is_absolute() and (self.queue_path.parent / candidate).is_file():
            return (self.queue_path.parent / candidate).resolve()
        return find_plan(plan).resolve()

    def _report_path(self, job_id: str) -> Path:
        return self.reports_dir / f"{safe_filename(job_id, 200)}.html"

    def _start(
        self,
        job_id: str,
        request: RunRequest,
        plan_path: Path,
        items_total: int,
        duts: tuple[str, ...],
        slots: list[int],
        claims: frozenset[str],
    ) -> None:
        report = self._report_path(job_id)
        args = [
            "run",
            str(plan_path),
            "--station",
            str(self.station_path),
            "--db",
            str(self.db_path),
            "--seed",
            str(request.seed),
            "--report",
            str(report),
        ]
        if request.lot:
            args += ["--lot", request.lot]
        if request.operator:
            args += ["--operator", request.operator]
        for serial in duts:
            args += ["--dut", serial]
        self._update_job(
            job_id,
            state="running",
            slots_json=json.dumps(slots),
            items_total=items_total,
            started_at=utc_now(),
            attempts=1,
            message=None,
        )
        self._spawn(job_id, args, claims, None)
        self.summary.started += 1
        self.echo(f"station {self.name}: started {job_id} on slots {', '.join(map(str, slots))}")

    def _spawn(self, job_id: str, args: list[str], claims: frozenset[str], run_id: str | None) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        log = (self.logs_dir / f"{safe_filename(job_id, 200)}.log").open("ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH")) if p)
        env.pop("QUALIFY_DB", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "qualify.service.worker", "--parent", str(os.getpid()), "--", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.db_path.parent),
            start_new_session=True,  # a Ctrl-C at the service's terminal reaches runs through the service
            pass_fds=(self._lock_fd,) if self._lock_fd is not None else (),
        )
        self._update_job(job_id, state="running", pid=proc.pid)
        self.children[job_id] = _Child(job_id, proc, claims, log, str(self._report_path(job_id)), run_id)

    # -- children ending ------------------------------------------------------------------

    def _reap(self) -> None:
        for job_id, child in list(self.children.items()):
            if child.run_id is None:
                child.run_id = self._find_run(job_id)
                if child.run_id is not None:
                    self._update_job(job_id, run_id=child.run_id)
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[job_id]
            try:
                self._ended(job_id, child, code)
            except BaseException:
                # The end is not recorded (a full disk refuses the write): keep the child, so
                # the next tick records it instead of leaving its job 'running' for good.
                self.children.setdefault(job_id, child)
                raise
            child.log.close()

    def _ended(self, job_id: str, child: _Child, code: int) -> None:
        run_id = child.run_id or self._find_run(job_id)
        status_rows = self.store.rows("SELECT status FROM runs WHERE id = ?", (run_id,)) if run_id else []
        status = status_rows[0]["status"] if status_rows else None
        job = self.store.rows("SELECT attempts FROM station_jobs WHERE id = ?", (job_id,))[0]
        message = _last_error(self.logs_dir / f"{safe_filename(job_id, 200)}.log")
        if self.stop_event.is_set() and status in ("running", "aborted"):
            state, message = "interrupted", "stopped with the service; resumes at its next start"
            self.summary.interrupted += 1
        elif (
            run_id is not None
            and code != 0
            and status in ("running", "aborted")
            and ((message is not None and FILE_SYSTEM_FULL in message) or not self._room())
        ):
            # Not the run's fault, and nothing of it is lost: it goes on once there is room. (Its
            # log is on the same file system, so its last words may be missing: ask the disk too.)
            state = "interrupted"
            message = (
                f"{message or 'the file system of the results database is full'}; "
                f"resumes when {self.settings.min_free_mb:g} MiB are free"
            )
        elif code < 0 or (status == "running"):
            # Killed (a signal) or died without closing its run: resume it, a few times at most.
            if run_id is not None and int(job["attempts"]) < self.settings.max_attempts:
                state, message = "crashed", f"exit {code}; resuming"
            else:
                state = "failed"
                message = f"exit {code}: {message or 'no run started'}"
                self.summary.failed += 1
        elif code == 2 or status is None:
            state = "failed"
            self.summary.failed += 1
        else:
            state = "finished"
            message = None if code == 0 else message
            self.summary.finished += 1
        self._update_job(
            job_id, state=state, exit_code=code, run_id=run_id, message=message, ended_at=utc_now()
        )
        self.echo(f"station {self.name}: {job_id} {state} (exit {code}, run {run_id or '-'} {status or ''})")
        if state == "crashed" and run_id is not None:
            row = self.store.rows("SELECT * FROM station_jobs WHERE id = ?", (job_id,))[0]
            self._resume(row, run_id)

    def _stop_children(self) -> None:
        """Stop every run cleanly (SIGTERM: abort, station to a safe state), then wait."""
        if not self.children:
            return
        self.echo(f"station {self.name}: stopping {len(self.children)} run(s)")
        for child in self.children.values():
            _signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        killed = False
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for child in self.children.values():
            _signal(child.proc, signal.SIGKILL)
            killed = True
        while self.children:
            self._reap()
            time.sleep(0.05)
        if killed and not self.info.simulated:
            self._safe_state()

    def _safe_state(self) -> None:
        """Put a real station in its safe state after a run had to be killed."""
        from qualify.clock import RealClock
        from qualify.station.binding import bind_station

        station = bind_station(self.station_path, RealClock(), 0)
        try:
            for problem in station.safe_state():
                self.echo(f"station {self.name}: safe state: {problem}")
        finally:
            station.close()

    # -- housekeeping ---------------------------------------------------------------------

    def _housekeeping(self) -> None:
        from qualify.service.maintenance import downsample_telemetry, wal_checkpoint

        now = time.monotonic()
        s = self.settings
        if now - self.house.last_checkpoint >= s.checkpoint_every_s:
            self.house.last_checkpoint = now
            mode = "PASSIVE" if self.children else "TRUNCATE"
            self.house.info["wal_checkpoint"] = {
                "mode": mode,
                **wal_checkpoint(self.store.conn, mode),
                "at": utc_now(),
            }
        if s.retention is not None and now - self.house.last_retention >= s.checkpoint_every_s:
            self.house.last_retention = now
            done = downsample_telemetry(
                self.store, raw_days=s.retention.raw_days, window_s=s.retention.window_s
            )
            self.house.info["retention"] = {**done, "at": utc_now()}
        if s.sync is not None and now - self.house.last_sync >= s.sync.every_s:
            thread = self.house.sync_thread
            if thread is None or not thread.is_alive():
                self.house.last_sync = now
                self.house.sync_thread = threading.Thread(
                    target=self._sync, args=(s.sync.to,), name="fleet-sync", daemon=True
                )
                self.house.sync_thread.start()

    def _sync(self, url: str) -> None:
        from qualify.sync.ship import sync_to_postgres

        try:
            result = sync_to_postgres(self.db_path, url)
            self.house.info["sync"] = {"ok": True, "rows": result.rows, "runs": result.runs, "at": utc_now()}
        except QualifyError as exc:
            self.house.info["sync"] = {"ok": False, "error": str(exc), "at": utc_now()}
            self.echo(f"station {self.name}: fleet sync: {exc}")


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def _last_error(log: Path) -> str | None:
    """Return the last `error:` line a run printed."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 8192))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    errors = [line.removeprefix("error: ") for line in tail if line.startswith("error: ")]
    return errors[-1] if errors else None


def serve_station(
    station_path: str | Path,
    queue_path: str | Path,
    db_path: str | Path,
    *,
    clock_speed: float | None = None,
    clock_start: datetime | None = None,
    stop_event: threading.Event | None = None,
    http_port: int | None = 0,
    http_host: str | None = None,
    echo: Callable[[str], None] = print,
) -> ServiceSummary:
    """Serve a station until SIGTERM/SIGINT (or `stop_event`); return what it did.

    `http_port` 0 picks a free port for the status page, None serves none; `http_host` overrides
    the queue file's `service.http_host` (127.0.0.1 unless configured otherwise). `clock_speed` makes
    the schedules' clock run that many times faster than real time and `clock_start` start it at
    that UTC time instead of now (for tests and demos; each start of the service starts it again).
    """
    service = StationService(
        Path(station_path),
        Path(queue_path),
        Path(db_path),
        clock_speed=clock_speed,
        clock_start=clock_start,
        stop_event=stop_event,
        http_port=http_port,
        http_host=http_host,
        echo=echo,
    )
    return service.serve()
