"""Render a run's qualification report: one self-contained, autoescaped HTML file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from qualify.resources import reports_dir
from qualify.results import run_summary
from qualify.store.db import Store, utc_now

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(text: str, limit: int = 80) -> str:
    """Return text usable as a file name (device serials can hold anything)."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "unnamed"
    return cleaned[:limit]


def environment() -> jinja2.Environment:
    """Return the report template environment; autoescape is on for every template."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(reports_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_run(db: Path, run_id: str) -> str:
    """Return the HTML report of a run."""
    summary = run_summary(db, run_id)
    store = Store(db, readonly=True)
    try:
        rid = summary["run"]["id"]
        failing = [d for d in summary["duts"] if d["verdict"] in ("fail", "error")]
        drill = {}
        for d in failing[:50]:
            drill[d["serial"]] = _dut_steps(store, rid, d["serial"])
        station_steps = _dut_steps(store, rid, None)
    finally:
        store.close()
    verdicts = [d["verdict"] for d in summary["duts"]]
    overall = _overall(summary["run"]["status"], verdicts, summary["criteria"])
    return (
        environment()
        .get_template("run.html.j2")
        .render(
            s=summary,
            overall=overall,
            drill=drill,
            station_steps=station_steps,
            generated_at=utc_now(),
        )
    )


def _dut_steps(store: Store, run_id: str, serial: str | None) -> list[dict[str, Any]]:
    where = "dut_serial IS NULL" if serial is None else "dut_serial = ?"
    params: tuple[Any, ...] = (run_id,) if serial is None else (run_id, serial)
    steps = store.rows(
        f"SELECT id, stage, name, iteration, status, t_start, message FROM steps "  # noqa: S608 - fixed fragments
        f"WHERE run_id = ? AND {where} ORDER BY seq LIMIT 500",
        params,
    )
    for step in steps:
        step["measurements"] = store.rows(
            "SELECT name, value, text, unit, low, high, verdict FROM measurements WHERE step_id = ?",
            (step["id"],),
        )
    return steps


def _overall(status: str, verdicts: list[str], criteria: list[dict[str, Any]]) -> str:
    if status in ("aborted", "running", "stopped"):
        return status.upper()
    if "fail" in verdicts or any(c["verdict"] == "fail" for c in criteria):
        return "FAIL"
    if "error" in verdicts or any(c["verdict"] == "error" for c in criteria):
        return "INCOMPLETE"
    return "PASS"


def write_run_report(db: Path, run_id: str, output: Path) -> Path:
    """Render a run's report to `output` and return the path."""
    html = render_run(db, run_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output
