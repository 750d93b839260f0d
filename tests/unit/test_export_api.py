"""export_run: format dispatch, run lookup, safe file placement, atomic writes, a real simulated run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from junitparser import JUnitXml
from pystdf.Importer import STDF2Dict

from qualify.errors import InputError
from qualify.export import FORMATS, export_run, json_record
from qualify.report.render import safe_filename
from qualify.store.db import Store
from tests.unit.export_db import RUN_ID, build, run_row, sql

REPO = Path(__file__).resolve().parents[2]
EVIL_RUN = "../../evil/<run> id"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.db"
    build(path).close()
    return path


def test_unknown_format_is_bad_input(db: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown export format 'xlsx'; choose one of junit, csv"):
        export_run(db, RUN_ID, "xlsx", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_run_is_bad_input_and_a_unique_prefix_is_accepted(db: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run 'nope'"):
        export_run(db, "nope", "json", tmp_path / "r.json")
    out = export_run(db, RUN_ID[:8], "json", tmp_path / "r.json")
    assert json.loads(out.read_text(encoding="utf-8"))["run"]["id"] == RUN_ID


def test_a_missing_database_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no database"):
        export_run(tmp_path / "absent.db", RUN_ID, "junit", tmp_path / "r.xml")
    assert not (tmp_path / "absent.db").exists()  # read-only: never creates a database


@pytest.mark.parametrize(("fmt", "suffix"), [("junit", ".junit.xml"), ("stdf", ".stdf"), ("json", ".json")])
def test_a_folder_gets_a_file_named_after_the_sanitised_run_id(tmp_path: Path, fmt: str, suffix: str) -> None:
    db = tmp_path / "q.db"
    store = build(db)
    store.insert_rows("runs", [run_row(EVIL_RUN)])
    store.close()
    folder = tmp_path / "deep" / "out"
    folder.mkdir(parents=True)
    out = export_run(db, EVIL_RUN, fmt, folder)
    assert out.parent == folder
    assert out.name == safe_filename(EVIL_RUN) + suffix
    assert "/" not in out.name and not out.name.startswith(".")
    assert [
        p.name for p in tmp_path.rglob("*") if p.is_file() and p.name != "q.db" and "q.db-" not in p.name
    ] == [out.name]


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run.json"
    export_run(db, RUN_ID, "json", target)
    before = target.read_bytes()

    def broken(fh: Any, *args: Any) -> None:
        fh.write('{"half": ')
        raise RuntimeError("disk full")

    monkeypatch.setattr(json_record, "_write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(db, RUN_ID, "json", target)
    assert target.read_bytes() == before
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith("q.db")) == ["run.json"]


def test_exports_of_a_real_simulated_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("QUALIFY_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "qualify", "run", "station_smoke", "--sim", "--lot", "L1", "--seed", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    db = tmp_path / "qualify.db"
    ((run_id,),) = sql(db, "SELECT id FROM runs")
    outputs = {fmt: export_run(db, run_id, fmt, tmp_path / fmt) for fmt in FORMATS}
    ((steps,),) = sql(db, "SELECT COUNT(*) FROM steps")
    ((measurements,),) = sql(db, "SELECT COUNT(*) FROM measurements")
    ((telemetry,),) = sql(db, "SELECT COUNT(*) FROM telemetry")
    ((duts,),) = sql(db, "SELECT COUNT(*) FROM duts")
    (suite,) = list(JUnitXml.fromfile(str(outputs["junit"])))
    assert suite.tests == steps and suite.failures == suite.errors == 0
    for fmt in ("csv", "parquet"):
        folder = outputs[fmt]
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        assert len(read(folder / f"measurements.{fmt}")) == measurements
        assert len(read(folder / f"telemetry.{fmt}")) == telemetry
    recs = STDF2Dict(str(outputs["stdf"]))
    assert sum(r["RecType"] == "PRR" for r in recs) == duts
    assert all(r["HARD_BIN"] == 1 for r in recs if r["RecType"] == "PRR")
    record = json.loads(outputs["json"].read_text(encoding="utf-8"))
    assert len(record["steps"]) == steps and record["run"]["seed"] == 1
    store = Store(db, readonly=True)
    assert store.run(run_id)["status"] == "completed"
    store.close()
