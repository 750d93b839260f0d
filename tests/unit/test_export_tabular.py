"""CSV and Parquet export: pandas reads back the database's rows and values, streamed in chunks."""

from __future__ import annotations

import importlib
import math
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qualify.errors import InputError
from qualify.export import export_run
from qualify.export.tabular import TABLES, write_csv, write_parquet
from tests.unit.export_db import HUGE, RUN_ID, WEIRD, build, sql

MEASUREMENTS_SQL = (
    "SELECT s.run_id, s.id, s.dut_serial, s.stage, s.name, s.iteration, s.status, s.t_start, "
    "m.name, m.value, m.text, m.unit, m.low, m.high, m.verdict "
    "FROM measurements m JOIN steps s ON s.id = m.step_id WHERE s.run_id = ? ORDER BY s.seq, m.rowid"
)
STEPS_SQL = (
    "SELECT run_id, id, dut_serial, stage, name, iteration, status, action, seq, t_start, t_end, "
    "started_at, ended_at, message FROM steps WHERE run_id = ? ORDER BY seq"
)
TELEMETRY_SQL = (
    "SELECT run_id, dut_serial, t, name, value, unit FROM telemetry WHERE run_id = ? ORDER BY rowid"
)
EXPECTED = {"measurements": MEASUREMENTS_SQL, "steps": STEPS_SQL, "telemetry": TELEMETRY_SQL}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.db"
    build(path).close()
    return path


def _read(folder: Path, table: str, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(folder / f"{table}.parquet")
    # An empty cell is NULL; every other cell, "None" and "NA" included, is data.
    return pd.read_csv(folder / f"{table}.csv", keep_default_na=False, na_values=[""], encoding="utf-8")


def _same(a: Any, b: Any) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    if isinstance(b, float):
        return float(a) == b
    return a == b


def _assert_same_rows(frame: pd.DataFrame, rows: list[tuple[Any, ...]], columns: list[str]) -> None:
    assert list(frame.columns) == columns
    assert len(frame) == len(rows)
    for got, want in zip(frame.itertuples(index=False), rows, strict=True):
        for column, a, b in zip(columns, got, want, strict=True):
            assert _same(a, b), (column, a, b)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_read_back_with_the_database_rows_and_values(db: Path, tmp_path: Path, fmt: str) -> None:
    folder = export_run(db, RUN_ID, fmt, tmp_path / "tables")
    assert folder == tmp_path / "tables"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.{fmt}" for t in TABLES)
    for table, query in EXPECTED.items():
        rows = sql(db, query, (RUN_ID,))
        assert rows, table
        _assert_same_rows(_read(folder, table, fmt), rows, [name for name, _ in TABLES[table]])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_awkward_values_survive(db: Path, tmp_path: Path, fmt: str) -> None:
    folder = export_run(db, RUN_ID, fmt, tmp_path / "t")
    m = _read(folder, "measurements", fmt)
    assert WEIRD in set(m["dut_serial"])
    assert (m["value"] == HUGE).any()  # beyond single precision, kept in full
    text = m[m["measurement"] == "critical_warning"]
    assert set(text["text"]) == {"none", "temperature"}
    assert text["value"].isna().all()
    missing = m[(m["measurement"] == "temp_c") & m["value"].isna()]
    assert list(missing["verdict"]) == ["fail"]
    assert set(m["verdict"]) == {"pass", "marginal", "fail"}
    assert m["iteration"].dtype == "int64" and m["value"].dtype == "float64"
    station = m[m["dut_serial"].isna()]
    assert set(station["measurement"]) == {"chamber_temp_c"}
    steps = _read(folder, "steps", fmt)
    assert "chamber stalled\x07 at 80 °C" in set(steps["message"])
    assert {"error", "skipped"} <= set(steps["status"])  # steps without measurements are kept


@pytest.mark.parametrize("writer", [write_csv, write_parquet])
def test_small_chunks_give_the_same_tables(db: Path, tmp_path: Path, writer: Any) -> None:
    whole = writer(db, RUN_ID, tmp_path / "whole")
    chunked = writer(db, RUN_ID, tmp_path / "chunked", chunk_rows=7)
    fmt = "csv" if writer is write_csv else "parquet"
    for table in TABLES:
        pd.testing.assert_frame_equal(_read(whole, table, fmt), _read(chunked, table, fmt))
    if fmt == "csv":
        assert (whole / "telemetry.csv").read_bytes() == (chunked / "telemetry.csv").read_bytes()


def test_telemetry_streams_in_bounded_memory(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    build(db, telemetry_per_series=1).close()
    conn = sqlite3.connect(db)
    n = 200_000
    conn.executemany(
        "INSERT INTO telemetry (run_id, dut_serial, t, name, value, unit) VALUES (?, ?, ?, ?, ?, ?)",
        ((RUN_ID, f"SN-{i % 8}", float(i), "temp_c", 40.0 + i % 13, "°C") for i in range(n)),
    )
    conn.commit()
    conn.close()
    tracemalloc.start()
    try:
        folder = write_csv(db, RUN_ID, tmp_path / "t", chunk_rows=2_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Holding all rows at once would take tens of MB; a chunk of 2,000 takes well under one.
    assert peak < 8_000_000, peak
    with (folder / "telemetry.csv").open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 1 + n + 4  # header, the bulk rows, the builder's 4 series


def test_a_file_where_the_folder_should_be_is_refused(db: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        export_run(db, RUN_ID, "csv", tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "x"


def test_a_second_export_replaces_the_tables_and_leaves_no_temporary_file(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "measurements.csv").write_text("stale")
    export_run(db, RUN_ID, "csv", folder)
    export_run(db, RUN_ID, "parquet", folder)
    assert (folder / "measurements.csv").read_text(encoding="utf-8").startswith("run_id,step_id,")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{t}.{x}" for t in TABLES for x in ("csv", "parquet")
    )


def test_parquet_without_pyarrow_says_what_to_install(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def no_pyarrow(name: str, *args: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_pyarrow)
    with pytest.raises(InputError, match="Parquet export needs pyarrow: pip install pyarrow"):
        export_run(db, RUN_ID, "parquet", tmp_path / "t")
    assert not (tmp_path / "t").exists()
