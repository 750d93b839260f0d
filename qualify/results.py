"""Read runs back from the store for `qualify results` and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qualify.store.source import open_results


def list_runs(db: str | Path, lot: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Return recent runs with their DUT counts by verdict."""
    store = open_results(db)
    try:
        runs = store.runs(lot=lot, limit=limit)
        for r in runs:
            counts = store.rows(
                "SELECT verdict, COUNT(*) AS n FROM duts WHERE run_id = ? GROUP BY verdict",
                (r["id"],),
            )
            by = {c["verdict"]: c["n"] for c in counts}
            r["duts"] = sum(by.values())
            r["passed"] = by.get("pass", 0)
            r["failed"] = by.get("fail", 0)
        return [_public(r) for r in runs]
    finally:
        store.close()


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in ("options_json",)}


def run_summary(db: str | Path, run_id: str) -> dict[str, Any]:
    """Return one run with DUTs, step counts, failing steps, criteria, instruments and events."""
    store = open_results(db)
    try:
        run = store.run(run_id)
        rid = run["id"]
        duts = store.rows("SELECT * FROM duts WHERE run_id = ? ORDER BY slot, serial", (rid,))
        for d in duts:
            first = store.rows(
                "SELECT stage, name, iteration, status, message FROM steps WHERE run_id = ? "
                "AND dut_serial = ? AND status IN ('fail', 'error') ORDER BY seq LIMIT 1",
                (rid, d["serial"]),
            )
            d["first_problem"] = first[0] if first else None
        counts = store.rows(
            "SELECT status, COUNT(*) AS n FROM steps WHERE run_id = ? GROUP BY status", (rid,)
        )
        problems = store.rows(
            "SELECT dut_serial, stage, name, iteration, status, message FROM steps "
            "WHERE run_id = ? AND status IN ('fail', 'error') ORDER BY seq LIMIT 200",
            (rid,),
        )
        return {
            "run": _public(run),
            "duts": duts,
            "step_counts": {c["status"]: c["n"] for c in counts},
            "problems": problems,
            "criteria": store.rows("SELECT * FROM criteria WHERE run_id = ?", (rid,)),
            "instruments": store.rows("SELECT * FROM instruments WHERE run_id = ?", (rid,)),
            "events": store.rows(
                "SELECT * FROM events WHERE run_id = ? AND level != 'info' ORDER BY t LIMIT 100",
                (rid,),
            ),
        }
    finally:
        store.close()


def format_run(summary: dict[str, Any]) -> str:
    """Format a run summary as text for a terminal."""
    run = summary["run"]
    lines = [
        f"run {run['id']}  {run['status']}",
        f"  plan      {run['plan']} {run['plan_version']} (sha256 {run['plan_sha256'][:12]})",
        f"  station   {run['station']}   lot {run['lot'] or '-'}   seed {run['seed']}",
        f"  started   {run['started_at']}   ended {run['ended_at'] or '-'}",
        f"  software  qualify {run['software_version']} {run['git_commit'] or ''}".rstrip(),
    ]
    if run.get("message"):
        lines.append(f"  note      {run['message']}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["step_counts"].items()))
    lines.append(f"  steps     {counts or 'none'}")
    lines.append("DUTs")
    for d in summary["duts"]:
        why = ""
        if d["first_problem"]:
            p = d["first_problem"]
            why = f"  first {p['status']}: {p['stage']}[{p['iteration']}]/{p['name']}: {p['message']}"
        lines.append(f"  slot {d['slot']!s:>3} {d['serial']:24} {d['verdict']:8}{why}")
    if summary["criteria"]:
        lines.append("criteria")
        for c in summary["criteria"]:
            value = "-" if c["value"] is None else f"{c['value']:.4g}"
            lines.append(
                f"  {c['name']:20} {c['verdict']:5} value {value} limit {c['limit']:g} ({c['basis']})"
            )
    if summary["events"]:
        lines.append("events")
        for e in summary["events"][:20]:
            lines.append(f"  t={e['t']:.0f}s {e['level']:7} {e['source']}: {e['message']}")
    return "\n".join(lines)
