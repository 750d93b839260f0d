"""Build a small results database with every kind of row the exporters must carry.

Two runs share the file so exporters are seen to take only the run asked for. The main run has
four DUTs: one that passes with a marginal reading, one that fails and whose serial holds
HTML, quotes, a path and non-ASCII text, one whose steps error, and a DIMM whose NVMe steps are
skipped; a repeated stage; station-level steps (one in error, with a control character in its
message); numeric readings with both, one or no limits; text readings; a reading with no
value; a value beyond single precision; telemetry; events; criteria (one with an infinite
value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualify.store.db import Batch, Store

RUN_ID = "6f1c2d3e-0000-4000-8000-00000000abcd"
OTHER_RUN_ID = "9a8b7c6d-0000-4000-8000-00000000ffff"
WEIRD = '<b>"Zoë\'s"</b> & ✓ ../SN/02'
PASS_SN = "SN-PASS-01"
ERROR_SN = "SN-ERR-03"
DIMM_SN = "SN-DIMM-04"
SERIALS = (PASS_SN, WEIRD, ERROR_SN, DIMM_SN)
VERDICTS = {PASS_SN: "pass", WEIRD: "fail", ERROR_SN: "error", DIMM_SN: "skipped"}
HUGE = 1.0e39


def run_row(run_id: str, **over: Any) -> dict[str, Any]:
    """Return a runs row with every column set."""
    row = {
        "id": run_id,
        "plan": "ssd_qual",
        "plan_version": "2.1",
        "plan_sha256": "a" * 64,
        "station": "lab-7",
        "lot": "LOT<7>",
        "seed": 42,
        "status": "completed",
        "started_at": "2026-03-01T08:00:00.000Z",
        "ended_at": "2026-03-01T09:30:00.500Z",
        "software_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "host": "lab-host-01",
        "operator": "Zoë",
        "plan_path": "/plans/ssd_qual.yaml",
        "station_path": "/stations/lab-7.yaml",
        "station_sha256": "b" * 64,
        "options_json": json.dumps({"seed": 42, "lot": "LOT<7>"}),
        "message": "2 DUTs not passed",
    }
    row.update(over)
    return row


@dataclass
class _Builder:
    run_id: str
    batch: Batch = field(default_factory=Batch)
    seq: int = 0
    t: float = 0.0

    def step(
        self,
        serial: str | None,
        stage: str,
        name: str,
        iteration: int,
        status: str,
        readings: list[tuple[str, float | None, str | None, str | None, float | None, float | None, str]],
        message: str | None = None,
        duration: float = 10.0,
    ) -> None:
        self.seq += 1
        step_id = f"{self.run_id[:8]}-step-{self.seq:04d}"
        started = f"2026-03-01T08:{self.seq // 60:02d}:{self.seq % 60:02d}.000Z"
        self.batch.steps.append(
            (
                step_id,
                self.run_id,
                serial,
                stage,
                name,
                iteration,
                status,
                self.t,
                self.t + duration,
                started,
                started,
                message,
                f"act.{name}",
                self.seq,
            )
        )
        for r in readings:
            self.batch.measurements.append((step_id, *r))
        self.t += duration


def _smart(
    temp: float | None, media: float, spare: float, warning: str, warning_verdict: str, temp_verdict: str
):
    return [
        ("temp_c", temp, None, "°C", 0.0, 70.0, temp_verdict),
        ("media_errors", media, None, None, None, 0.0, "pass" if media <= 0 else "fail"),
        ("spare_pct", spare, None, "%", 10.0, None, "pass"),
        ("critical_warning", None, warning, None, None, None, warning_verdict),
    ]


def build(db: Path, *, telemetry_per_series: int = 300) -> Store:
    """Create the database at `db` with the main run and a second, smaller run; return the store."""
    store = Store(db)
    store.insert_rows("runs", [run_row(RUN_ID), run_row(OTHER_RUN_ID, lot="LOT-B", operator=None)])
    store.insert_rows(
        "duts",
        [
            {
                "run_id": RUN_ID,
                "serial": s,
                "kind": "dimm" if s == DIMM_SN else "ssd",
                "model": "QSIM™ E3" if s != DIMM_SN else None,
                "firmware": "QS010101",
                "slot": slot,
                "verdict": VERDICTS[s],
                "address": f"sim://{slot}",
            }
            for slot, s in enumerate(SERIALS, start=1)
        ]
        + [
            {
                "run_id": OTHER_RUN_ID,
                "serial": "OTHER-1",
                "kind": "ssd",
                "model": "M",
                "firmware": "F",
                "slot": 1,
                "verdict": "pass",
                "address": "sim://1",
            }
        ],
    )
    store.insert_rows(
        "instruments",
        [
            {
                "run_id": RUN_ID,
                "name": "chamber",
                "driver": "espec.chamber",
                "address": "/dev/pts/3",
                "idn": "ESPEC",
            },
            {
                "run_id": RUN_ID,
                "name": "psu1",
                "driver": "keysight.e36313a",
                "address": "TCPIP::x",
                "idn": None,
            },
        ],
    )
    store.replace_criteria(
        RUN_ID,
        [
            {
                "lot": "LOT<7>",
                "name": "yield",
                "value": 0.5,
                "limit": 0.9,
                "confidence": None,
                "verdict": "fail",
                "basis": "yield = 1 / 2 ≥ 0.9",
            },
            {
                "lot": "LOT<7>",
                "name": "ffr",
                "value": 0.05,
                "limit": 0.1,
                "confidence": 0.6,
                "verdict": "pass",
                "basis": "FFR ≤ 0.1",
            },
            {
                "lot": "LOT<7>",
                "name": "fit",
                "value": float("inf"),
                "limit": 100.0,
                "confidence": 0.6,
                "verdict": "error",
                "basis": "no hours",
            },
        ],
    )
    b = _Builder(RUN_ID)
    for stage, iteration, temp in (("ambient", 1, 25.0), ("bake", 1, 85.0), ("bake", 2, 85.0)):
        env_readings = [("chamber_temp_c", temp, None, "°C", None, None, "pass")]
        b.step(None, stage, "environment", iteration, "pass", env_readings, duration=600.0)
        if (stage, iteration) == ("bake", 2):
            b.step(None, stage, "chamber", iteration, "error", [], message="chamber stalled\x07 at 80 °C")
        for serial in SERIALS:
            if serial == DIMM_SN:
                b.step(
                    serial,
                    stage,
                    "smart",
                    iteration,
                    "skipped",
                    [],
                    message="nvme.smart does not apply to dimm",
                )
                continue
            if serial == ERROR_SN and stage == "bake":
                b.step(serial, stage, "smart", iteration, "error", [], message="timeout <after 5 s> & retry")
                continue
            if serial == WEIRD and (stage, iteration) == ("bake", 1):
                readings = _smart(71.2, 0, 100, "none", "pass", "fail")
                b.step(
                    serial, stage, "smart", iteration, "fail", readings, message="temp_c = 71.2 °C > high 70"
                )
            elif serial == WEIRD and (stage, iteration) == ("bake", 2):
                readings = _smart(None, 3, 100, "temperature", "fail", "fail")
                b.step(serial, stage, "smart", iteration, "fail", readings, message="3 failures")
            elif serial == PASS_SN and (stage, iteration) == ("bake", 2):
                b.step(
                    serial, stage, "smart", iteration, "pass", _smart(68.5, 0, 90, "none", "pass", "marginal")
                )
            else:
                b.step(
                    serial,
                    stage,
                    "smart",
                    iteration,
                    "pass",
                    _smart(40.0 + iteration, 0, 100, "none", "pass", "pass"),
                )
        if stage == "ambient":
            for serial in SERIALS:
                if serial == DIMM_SN:
                    continue
                readings = [
                    ("model", None, "QSIM™ E3", None, None, None, "pass"),
                    ("host_read_bytes", HUGE if serial == PASS_SN else 1e12, None, "B", None, None, "pass"),
                ]
                b.step(serial, stage, "identify", iteration, "pass", readings)
    for i in range(telemetry_per_series):
        t = float(i * 60)
        b.batch.telemetry.append((RUN_ID, None, t, "chamber_temp_c", 25.0 + i % 60, "°C"))
        for serial in (PASS_SN, WEIRD, ERROR_SN):
            b.batch.telemetry.append((RUN_ID, serial, t, "temp_c", 40.0 + (i % 7) * 0.5, "°C"))
    b.batch.events.extend(
        [
            (RUN_ID, 0.0, "info", "engine", "run of ssd_qual 2.1 on 4 DUTs"),
            (RUN_ID, 700.0, "warning", "chamber", "overshoot 2 °C <ok>"),
            (RUN_ID, 1900.0, "error", "chamber", "chamber stalled\x07 at 80 °C"),
        ]
    )
    store.write_batch(b.batch, None)
    other = _Builder(OTHER_RUN_ID)
    other.step("OTHER-1", "ambient", "smart", 1, "pass", _smart(30.0, 0, 100, "none", "pass", "pass"))
    other.batch.telemetry.append((OTHER_RUN_ID, "OTHER-1", 0.0, "temp_c", 30.0, "°C"))
    other.batch.events.append((OTHER_RUN_ID, 0.0, "info", "engine", "other run"))
    store.write_batch(other.batch, None)
    return store


def sql(db: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the rows of a query, read straight from SQLite (independent of the exporters)."""
    store = Store(db, readonly=True)
    try:
        return [tuple(r) for r in store.conn.execute(query, params)]
    finally:
        store.close()
