"""Export a run's measurements, steps and telemetry as CSV or Parquet tables for pandas and BI tools.

`-o PATH` names a folder (created if missing; an existing file is refused). The exporter
writes three files with fixed names into it, so nothing read from a device decides a path:

- `measurements.csv|parquet`: one row per measurement joined with its step, in execution
  order: run_id, step_id, dut_serial, stage, step, iteration, step_status, t_start,
  measurement, value, text, unit, low, high, verdict;
- `steps.csv|parquet`: one row per step record, including the steps that recorded no
  measurement (errors, skips): run_id, step_id, dut_serial, stage, step, iteration, status,
  action, seq, t_start, t_end, started_at, ended_at, message;
- `telemetry.csv|parquet`: run_id, dut_serial, t, name, value, unit, in recording order.

`dut_serial` is empty for station-level rows; `t`, `t_start` and `t_end` are seconds of run
time. CSV is UTF-8 (RFC 4180 quoting), an empty cell is NULL, floats are written in full
precision. Parquet has fixed column types (strings, int64, float64) and zstd compression.
Rows are streamed from SQLite in chunks, so a run with millions of telemetry samples exports in
bounded memory. Each file is written beside its final name and moved into place when complete.
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qualify.errors import InputError
from qualify.export.common import CHUNK_ROWS, folder_target, inside, open_run, stream_rows
from qualify.files import file_set
from qualify.store.db import Store

_S, _I, _F = "string", "int64", "float64"

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "measurements": (
        ("run_id", _S),
        ("step_id", _S),
        ("dut_serial", _S),
        ("stage", _S),
        ("step", _S),
        ("iteration", _I),
        ("step_status", _S),
        ("t_start", _F),
        ("measurement", _S),
        ("value", _F),
        ("text", _S),
        ("unit", _S),
        ("low", _F),
        ("high", _F),
        ("verdict", _S),
    ),
    "steps": (
        ("run_id", _S),
        ("step_id", _S),
        ("dut_serial", _S),
        ("stage", _S),
        ("step", _S),
        ("iteration", _I),
        ("status", _S),
        ("action", _S),
        ("seq", _I),
        ("t_start", _F),
        ("t_end", _F),
        ("started_at", _S),
        ("ended_at", _S),
        ("message", _S),
    ),
    "telemetry": (
        ("run_id", _S),
        ("dut_serial", _S),
        ("t", _F),
        ("name", _S),
        ("value", _F),
        ("unit", _S),
    ),
}
"""Each table's columns and their types, in file order."""

_QUERIES = {
    "measurements": (
        "SELECT s.run_id, s.id, s.dut_serial, s.stage, s.name, s.iteration, s.status, s.t_start, "
        "m.name, m.value, m.text, m.unit, m.low, m.high, m.verdict "
        "FROM measurements m JOIN steps s ON s.id = m.step_id WHERE s.run_id = ? "
        "ORDER BY s.seq, s.id, m.rowid"
    ),
    "steps": (
        "SELECT run_id, id, dut_serial, stage, name, iteration, status, action, seq, t_start, t_end, "
        "started_at, ended_at, message FROM steps WHERE run_id = ? ORDER BY seq, id"
    ),
    "telemetry": (
        "SELECT run_id, dut_serial, t, name, value, unit FROM telemetry WHERE run_id = ? ORDER BY rowid"
    ),
}


def write_csv(db: Path, run_id: str, output: Path, *, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write measurements.csv, steps.csv and telemetry.csv of a run into the folder `output`."""
    with open_run(db, run_id) as (store, run), file_set() as files:
        folder = folder_target(output)
        for table, columns in TABLES.items():
            target = inside(folder, f"{table}.csv")
            with files.path(target) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow([name for name, _ in columns])
                for chunk in _chunks(store, table, run["id"], chunk_rows):
                    writer.writerows(chunk)
    return folder


def write_parquet(db: Path, run_id: str, output: Path, *, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write measurements.parquet, steps.parquet and telemetry.parquet of a run into the folder `output`."""
    pa, pq = _pyarrow()
    with open_run(db, run_id) as (store, run), file_set() as files:
        folder = folder_target(output)
        for table, columns in TABLES.items():
            schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in columns])
            target = inside(folder, f"{table}.parquet")
            with files.path(target) as tmp:
                writer = pq.ParquetWriter(str(tmp), schema, compression="zstd")
                try:
                    for chunk in _chunks(store, table, run["id"], chunk_rows):
                        arrays = [
                            pa.array(list(col), type=field.type)
                            for col, field in zip(zip(*chunk, strict=True), schema, strict=True)
                        ]
                        writer.write_batch(pa.record_batch(arrays, schema=schema))
                finally:
                    writer.close()
    return folder


def _chunks(store: Store, table: str, run_id: str, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
    yield from stream_rows(store, _QUERIES[table], (run_id,), chunk_rows)


def _pyarrow() -> tuple[Any, Any]:
    # Imported on demand: pyarrow is large and ships no type information; only Parquet needs it.
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise InputError("Parquet export needs pyarrow: pip install pyarrow") from None
