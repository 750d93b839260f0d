"""Read a served station's state for `qualify station status` and the status page: slots, runs, ETA."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualify.errors import InputError
from qualify.store.db import Store, utc_now

STALE_AFTER_S = 30.0
ACTIVE_STATES = ("running", "waiting", "interrupted", "crashed")


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def station_status(db_path: str | Path, station: str | None = None, *, recent: int = 20) -> dict[str, Any]:
    """Return every served station in a database (or one): service, slots, jobs, recent failures."""
    store = Store(db_path, readonly=True)
    try:
        if not store.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'station_services'"):
            raise InputError(f"no station service has used {db_path}")
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        services = store.rows(f"SELECT * FROM station_services {where} ORDER BY station", params)  # noqa: S608 - fixed fragments
        if station and not services:
            raise InputError(f"no station {station!r} has been served from {db_path}")
        now = datetime.now(UTC)
        out = []
        for svc in services:
            out.append(_one_station(store, svc, now, recent))
        return {"database": str(Path(db_path).resolve()), "generated_at": utc_now(), "stations": out}
    finally:
        store.close()


def _one_station(store: Store, svc: dict[str, Any], now: datetime, recent: int) -> dict[str, Any]:
    name = svc["station"]
    beat = _parse(svc["heartbeat_at"])
    state = svc["state"]
    if state == "running" and (beat is None or (now - beat).total_seconds() > STALE_AFTER_S):
        state = "not responding"
    marks = ", ".join("?" for _ in ACTIVE_STATES)
    active = store.rows(
        f"SELECT * FROM station_jobs WHERE station = ? AND state IN ({marks}) ORDER BY "  # noqa: S608 - placeholders only
        "CASE state WHEN 'running' THEN 0 ELSE 1 END, priority DESC, rowid",
        (name, *ACTIVE_STATES),
    )
    done = store.rows(
        f"SELECT * FROM station_jobs WHERE station = ? AND state NOT IN ({marks}) "  # noqa: S608 - placeholders only
        "ORDER BY ended_at DESC, rowid DESC LIMIT ?",
        (name, *ACTIVE_STATES, recent),
    )
    jobs = [_job(store, j, now) for j in [*active, *done]]
    holder: dict[int, dict[str, Any]] = {}
    for j in jobs:
        if j["state"] == "running":
            for slot in j["slots"] or []:
                holder[slot] = j
    slots = []
    for s in json.loads(svc["slots_json"] or "[]"):
        held = holder.get(s["slot"])
        slots.append(
            {
                **s,
                "state": "error" if s.get("error") else ("busy" if held else "free"),
                "job": held["id"] if held else None,
                "run_id": held["run_id"] if held else None,
                "plan": held["plan"] if held else None,
            }
        )
    failures = store.rows(
        "SELECT d.run_id AS run_id, d.serial AS serial, d.slot AS slot, d.verdict AS verdict, "
        "r.plan AS plan, r.lot AS lot, r.started_at AS started_at, "
        "(SELECT s.stage || '[' || s.iteration || ']/' || s.name || ': ' || COALESCE(s.message, s.status) "
        " FROM steps s WHERE s.run_id = d.run_id AND s.dut_serial = d.serial "
        " AND s.status IN ('fail', 'error') "
        " ORDER BY s.seq LIMIT 1) AS first_problem "
        "FROM duts d JOIN runs r ON r.id = d.run_id WHERE r.station = ? AND d.verdict IN ('fail', 'error') "
        "ORDER BY r.started_at DESC, d.slot LIMIT ?",
        (name, recent),
    )
    return {
        "station": name,
        "state": state,
        "pid": svc["pid"],
        "host": svc["host"],
        "url": svc["url"],
        "started_at": svc["started_at"],
        "heartbeat_at": svc["heartbeat_at"],
        "housekeeping": json.loads(svc["message"] or "{}"),
        "slots": slots,
        "jobs": jobs,
        "recent_failures": failures,
    }


def _job(store: Store, job: dict[str, Any], now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job["id"],
        "source": job["source"],
        "plan": Path(job["plan"]).stem if "/" in job["plan"] else job["plan"],
        "lot": job["lot"],
        "state": job["state"],
        "priority": job["priority"],
        "run_id": job["run_id"],
        "slots": json.loads(job["slots_json"]) if job["slots_json"] else None,
        "started_at": job["started_at"],
        "ended_at": job["ended_at"],
        "exit_code": job["exit_code"],
        "message": job["message"],
        "items_done": None,
        "items_total": job["items_total"],
        "progress": None,
        "run_time_h": None,
        "eta_s": None,
        "run_status": None,
        "verdicts": {},
    }
    if not job["run_id"]:
        return out
    run = store.rows("SELECT status FROM runs WHERE id = ?", (job["run_id"],))
    out["run_status"] = run[0]["status"] if run else None
    out["verdicts"] = {
        r["verdict"]: r["n"]
        for r in store.rows(
            "SELECT verdict, COUNT(*) AS n FROM duts WHERE run_id = ? GROUP BY verdict", (job["run_id"],)
        )
    }
    cp = store.rows("SELECT seq, t FROM checkpoints WHERE run_id = ?", (job["run_id"],))
    total = job["items_total"]
    if cp:
        done = int(cp[0]["seq"])
        out["items_done"] = done
        out["run_time_h"] = float(cp[0]["t"]) / 3600.0
        if total:
            out["progress"] = min(1.0, done / total)
            started = _parse(job["started_at"])
            if job["state"] == "running" and started is not None and 0 < done < total:
                elapsed = (now - started).total_seconds()
                out["eta_s"] = max(0.0, elapsed / done * (total - done))
    if out["run_status"] in ("completed", "stopped") and total:
        out["progress"] = 1.0 if out["run_status"] == "completed" else out["progress"]
    return out


def format_status(status: dict[str, Any]) -> str:
    """Format station_status() for a terminal."""
    lines = []
    for st in status["stations"]:
        lines.append(
            f"station {st['station']}: {st['state']} (pid {st['pid']} on {st['host']}, "
            f"heartbeat {st['heartbeat_at']})"
        )
        if st["url"]:
            lines.append(f"  status page {st['url']}")
        disk = st["housekeeping"].get("disk") or {}
        if disk.get("paused"):
            lines.append(
                f"  PAUSED: {disk['free_mb']} MiB free for the results database (since {disk['at']}); "
                "no run starts or resumes until there is room"
            )
        lines.append("  slots")
        for s in st["slots"]:
            held = f"  {s['job']} ({s['plan']})" if s["job"] else ""
            err = f"  {s['error']}" if s.get("error") else ""
            lines.append(f"    {s['slot']:>3} {s['kind']:5} {s['serial']:20} {s['state']:5}{held}{err}")
        lines.append("  runs")
        for j in st["jobs"]:
            progress = "" if j["progress"] is None else f" {j['progress'] * 100:5.1f} %"
            items = "" if j["items_done"] is None else f" ({j['items_done']}/{j['items_total']} items)"
            eta = "" if j["eta_s"] is None else f" ETA {_duration(j['eta_s'])}"
            run = f" run {j['run_id'][:8]} {j['run_status']}" if j["run_id"] else ""
            note = f"  {j['message']}" if j["message"] else ""
            lines.append(
                f"    {j['state']:11} {j['id']:40} {j['plan']:22} lot={j['lot'] or '-'}"
                f"{run}{progress}{items}{eta}{note}"
            )
        if st["recent_failures"]:
            lines.append("  recent failures")
            for f in st["recent_failures"]:
                lines.append(
                    f"    {f['started_at']} slot {f['slot']} {f['serial']} {f['verdict']} ({f['plan']}, "
                    f"run {f['run_id'][:8]}): {f['first_problem'] or '-'}"
                )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
