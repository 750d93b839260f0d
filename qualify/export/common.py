"""Shared pieces of the exporters: open a run read-only, place files safely, stream steps."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from qualify.errors import InputError
from qualify.files import atomic_path as atomic_path  # re-exported for the format modules
from qualify.report.render import safe_filename
from qualify.store.db import Store

CHUNK_ROWS = 50_000
"""Rows fetched from SQLite per round trip when streaming (telemetry can be millions of rows)."""

STEP_FIELDS = (
    "id",
    "dut_serial",
    "stage",
    "name",
    "iteration",
    "status",
    "action",
    "seq",
    "t_start",
    "t_end",
    "started_at",
    "ended_at",
    "message",
)
MEASUREMENT_FIELDS = ("name", "value", "text", "unit", "low", "high", "verdict")


@contextmanager
def open_run(db: Path, run_id: str) -> Iterator[tuple[Store, dict[str, Any]]]:
    """Open the database read-only and yield it with the run row (a unique id prefix is accepted)."""
    store = Store(db, readonly=True)
    try:
        yield store, store.run(run_id)
    finally:
        store.close()


def inside(folder: Path, name: str) -> Path:
    """Return `folder/name`, refusing a name that would place the file anywhere but in the folder."""
    target = folder / name
    if name in ("", ".", "..") or target.resolve().parent != folder.resolve():
        raise InputError(f"refusing to write {name!r} outside {folder}")
    return target


def file_target(output: Path, run_id: str, suffix: str) -> Path:
    """Return the file to write: `output`, or a file named after the run when `output` is a folder."""
    if output.is_dir():
        return inside(output, safe_filename(run_id) + suffix)
    return output


def folder_target(output: Path) -> Path:
    """Return `output` as a folder to hold several files, creating it; refuse an existing file."""
    if output.exists() and not output.is_dir():
        raise InputError(f"{output} is a file; this format writes a folder of files")
    output.mkdir(parents=True, exist_ok=True)
    return output


def epoch_s(iso: str | None) -> int | None:
    """Return whole seconds since 1970-01-01 UTC for an ISO-8601 time, or None."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def finite(value: Any) -> Any:
    """Return the value, or None for a float that is NaN or infinite (not representable in JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def duts(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Return a run's DUTs in slot order."""
    return store.rows(
        "SELECT serial, kind, model, firmware, slot, address, verdict FROM duts "
        "WHERE run_id = ? ORDER BY slot, serial",
        (run_id,),
    )


def describe_dut(dut: dict[str, Any]) -> str:
    """Describe a DUT in one line: kind, model, firmware and slot."""
    return f"{dut['kind']} {dut['model'] or '-'} firmware {dut['firmware'] or '-'} slot {dut['slot']}"


def iter_steps(
    store: Store, run_id: str, *, dut: str | None = None, station: bool = False
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Yield steps of a run in execution order with their measurements, streaming from SQLite.

    All steps by default; only the station-level ones with `station`; only one DUT's with `dut`.
    """
    where = "s.run_id = ?"
    params: tuple[Any, ...] = (run_id,)
    if station:
        where += " AND s.dut_serial IS NULL"
    elif dut is not None:
        where += " AND s.dut_serial = ?"
        params = (run_id, dut)
    step_cols = ", ".join(f"s.{c} AS s_{c}" for c in STEP_FIELDS)
    meas_cols = ", ".join(f"m.{c} AS m_{c}" for c in MEASUREMENT_FIELDS)
    sql = (
        f"SELECT {step_cols}, {meas_cols}, m.rowid AS m_rowid FROM steps s "  # noqa: S608 - fixed fragments
        f"LEFT JOIN measurements m ON m.step_id = s.id WHERE {where} ORDER BY s.seq, s.id, m.rowid"
    )
    cursor = store.conn.execute(sql, params)
    for _, rows in groupby(_stream(cursor), key=lambda r: r["s_id"]):
        first = None
        measurements = []
        for row in rows:
            if first is None:
                first = {c: row[f"s_{c}"] for c in STEP_FIELDS}
            if row["m_rowid"] is not None:
                measurements.append({c: row[f"m_{c}"] for c in MEASUREMENT_FIELDS})
        assert first is not None  # groupby never yields an empty group
        yield first, measurements


def _stream(cursor: sqlite3.Cursor, chunk_rows: int = CHUNK_ROWS) -> Iterator[sqlite3.Row]:
    while True:
        rows = cursor.fetchmany(chunk_rows)
        if not rows:
            return
        yield from rows


def stream_rows(
    store: Store, sql: str, params: tuple[Any, ...], chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the rows of a query as lists of tuples, at most `chunk_rows` at a time."""
    conn = store.conn
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: cheaper than sqlite3.Row for millions of rows
    cursor.execute(sql, params)
    while True:
        rows = cursor.fetchmany(chunk_rows)
        if not rows:
            return
        yield rows
