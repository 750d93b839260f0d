"""JSON run record: strict JSON, the database's rows round-trip, telemetry summarised or included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qualify.export import export_run
from qualify.export.json_record import SCHEMA, write_json
from tests.unit.export_db import HUGE, RUN_ID, SERIALS, WEIRD, build, sql


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.db"
    build(path).close()
    return path


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _load(path: Path) -> Any:
    return _strict(path.read_text(encoding="utf-8"))


def test_record_round_trips_the_run(db: Path, tmp_path: Path) -> None:
    rec = _load(export_run(db, RUN_ID, "json", tmp_path / "run.json"))
    assert rec["schema"] == SCHEMA
    assert list(rec) == ["schema", "run", "instruments", "duts", "criteria", "events", "steps", "telemetry"]
    (run,) = sql(
        db,
        "SELECT plan, plan_sha256, lot, seed, operator, git_commit, status FROM runs WHERE id = ?",
        (RUN_ID,),
    )
    assert rec["run"]["id"] == RUN_ID
    assert (
        rec["run"]["plan"],
        rec["run"]["plan_sha256"],
        rec["run"]["lot"],
        rec["run"]["seed"],
        rec["run"]["operator"],
        rec["run"]["git_commit"],
        rec["run"]["status"],
    ) == run
    assert rec["run"]["options"] == {"seed": 42, "lot": "LOT<7>"}
    assert [d["serial"] for d in rec["duts"]] == list(SERIALS)
    assert {d["serial"]: d["verdict"] for d in rec["duts"]}[WEIRD] == "fail"
    assert [i["name"] for i in rec["instruments"]] == ["chamber", "psu1"]
    assert [e["message"] for e in rec["events"]] == [
        m for (m,) in sql(db, "SELECT message FROM events WHERE run_id = ? ORDER BY t", (RUN_ID,))
    ]


def test_steps_and_measurements_equal_the_database(db: Path, tmp_path: Path) -> None:
    rec = _load(export_run(db, RUN_ID, "json", tmp_path / "run.json"))
    steps = sql(
        db,
        "SELECT id, dut_serial, stage, name, iteration, status, message FROM steps WHERE run_id = ? ORDER BY seq",
        (RUN_ID,),
    )
    assert [
        (s["id"], s["dut_serial"], s["stage"], s["name"], s["iteration"], s["status"], s["message"])
        for s in rec["steps"]
    ] == steps
    got = [
        (s["id"], m["name"], m["value"], m["text"], m["unit"], m["low"], m["high"], m["verdict"])
        for s in rec["steps"]
        for m in s["measurements"]
    ]
    want = sql(
        db,
        "SELECT m.step_id, m.name, m.value, m.text, m.unit, m.low, m.high, m.verdict FROM measurements m "
        "JOIN steps s ON s.id = m.step_id WHERE s.run_id = ? ORDER BY s.seq, m.rowid",
        (RUN_ID,),
    )
    assert got == want
    assert any(v == HUGE for _, _, v, *_ in got)


def test_non_finite_numbers_become_null(db: Path, tmp_path: Path) -> None:
    rec = _load(export_run(db, RUN_ID, "json", tmp_path / "run.json"))
    fit = next(c for c in rec["criteria"] if c["name"] == "fit")
    assert fit["value"] is None and fit["limit"] == 100.0 and fit["verdict"] == "error"


def test_telemetry_is_summarised_by_default(db: Path, tmp_path: Path) -> None:
    rec = _load(export_run(db, RUN_ID, "json", tmp_path / "run.json"))
    tele = rec["telemetry"]
    assert tele["included"] is False and "samples" not in tele
    want = sql(
        db,
        "SELECT dut_serial, name, COUNT(*), MIN(value), MAX(value) FROM telemetry WHERE run_id = ? "
        "GROUP BY dut_serial, name",
        (RUN_ID,),
    )
    got = [(s["dut_serial"], s["name"], s["count"], s["min"], s["max"]) for s in tele["series"]]
    assert sorted(got, key=repr) == sorted(want, key=repr)


def test_telemetry_samples_are_included_on_request(db: Path, tmp_path: Path) -> None:
    out = export_run(db, RUN_ID, "json", tmp_path / "run.json", include_telemetry=True)
    samples = _load(out)["telemetry"]["samples"]
    want = sql(
        db,
        "SELECT dut_serial, t, name, value, unit FROM telemetry WHERE run_id = ? ORDER BY rowid",
        (RUN_ID,),
    )
    assert [(s["dut_serial"], s["t"], s["name"], s["value"], s["unit"]) for s in samples] == want
    chunked = write_json(db, RUN_ID, tmp_path / "chunked.json", include_telemetry=True, chunk_rows=5)
    assert chunked.read_bytes() == out.read_bytes()


def test_the_record_is_immutable_same_database_same_bytes(db: Path, tmp_path: Path) -> None:
    a = export_run(db, RUN_ID, "json", tmp_path / "a.json")
    b = export_run(db, RUN_ID, "json", tmp_path / "b.json")
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert json.dumps(WEIRD, ensure_ascii=False) in text  # unicode written as itself, not escaped
    assert "Zoë" in text
    assert "OTHER-1" not in text and "other run" not in text
