"""Export a run as one immutable JSON record that sinks (uploaders, fleet databases) consume.

The record depends only on the database, never on when it was exported, so exporting the same
run twice gives byte-identical files. UTF-8, one top-level key and one array element per line.
Floats that JSON cannot carry (NaN, infinities) are null. Schema `qualify.run-record/1`:

```
{
  "schema": "qualify.run-record/1",
  "run": {id, plan, plan_version, plan_sha256, plan_path, station, station_path, station_sha256,
          lot, seed, status, started_at, ended_at, software_version, git_commit, host, operator,
          message, options: {the run's options as recorded}},
  "instruments": [{name, driver, address, idn}],
  "duts": [{serial, kind, model, firmware, slot, address, verdict}],
  "criteria": [{lot, name, value, limit, confidence, verdict, basis}],
  "events": [{t, level, source, message}],
  "steps": [{id, dut_serial (null: station-level), stage, name, iteration, status, action, seq,
             t_start, t_end, started_at, ended_at, message,
             measurements: [{name, value, text, unit, low, high, verdict}]}],
  "telemetry": {
    "included": false | true,
    "series": [{dut_serial, name, unit, count, t_first, t_last, min, max, mean}],
    "samples": [{dut_serial, t, name, value, unit}]        (only when included)
  }
}
```

Times: `started_at`-style fields are ISO-8601 UTC; `t`, `t_start`, `t_end` are seconds of run
time. Steps and events are in execution order; samples in recording order. Every key above is
always present; more keys may be added within the same schema version, never removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from qualify.export.common import (
    CHUNK_ROWS,
    atomic_path,
    duts,
    file_target,
    finite,
    iter_steps,
    open_run,
    stream_rows,
)
from qualify.store.db import Store

SCHEMA = "qualify.run-record/1"

RUN_FIELDS = (
    "id",
    "plan",
    "plan_version",
    "plan_sha256",
    "plan_path",
    "station",
    "station_path",
    "station_sha256",
    "lot",
    "seed",
    "status",
    "started_at",
    "ended_at",
    "software_version",
    "git_commit",
    "host",
    "operator",
    "message",
)


def write_json(
    db: Path, run_id: str, output: Path, *, include_telemetry: bool = False, chunk_rows: int = CHUNK_ROWS
) -> Path:
    """Write a run's JSON record to `output` (a folder gets `RUN_ID.json`); return the file.

    Telemetry is summarised per series; `include_telemetry` adds every sample too.
    """
    with open_run(db, run_id) as (store, run):
        target = file_target(output, run["id"], ".json")
        with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as fh:
            _write(fh, store, run, include_telemetry, chunk_rows)
    return target


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: finite(v) for k, v in row.items()}


def _write(fh: IO[str], store: Store, run: dict[str, Any], include_telemetry: bool, chunk_rows: int) -> None:
    rid = run["id"]
    record = {k: run.get(k) for k in RUN_FIELDS}
    try:
        record["options"] = json.loads(run.get("options_json") or "{}")
    except ValueError:
        record["options"] = run.get("options_json")
    fh.write("{\n")
    fh.write(f'"schema": {_dump(SCHEMA)},\n')
    fh.write(f'"run": {_dump(_clean(record))},\n')
    instruments = "SELECT name, driver, address, idn FROM instruments WHERE run_id = ? ORDER BY rowid"
    _array(fh, "instruments", (_clean(r) for r in store.rows(instruments, (rid,))))
    _array(fh, "duts", (_clean(r) for r in duts(store, rid)))
    criteria = 'SELECT lot, name, value, "limit", confidence, verdict, basis FROM criteria WHERE run_id = ?'
    _array(fh, "criteria", (_clean(r) for r in store.rows(criteria + " ORDER BY rowid", (rid,))))
    events = "SELECT t, level, source, message FROM events WHERE run_id = ? ORDER BY t, rowid"
    _array(fh, "events", _records(store, events, rid, ("t", "level", "source", "message"), chunk_rows))
    steps = (
        {**_clean(step), "measurements": [_clean(m) for m in measurements]}
        for step, measurements in iter_steps(store, rid)
    )
    _array(fh, "steps", steps)
    fh.write('"telemetry": {\n')
    fh.write(f'"included": {_dump(include_telemetry)},\n')
    series = store.rows(
        "SELECT dut_serial, name, unit, COUNT(*) AS count, MIN(t) AS t_first, MAX(t) AS t_last, "
        "MIN(value) AS min, MAX(value) AS max, AVG(value) AS mean FROM telemetry WHERE run_id = ? "
        "GROUP BY dut_serial, name, unit ORDER BY dut_serial IS NOT NULL, dut_serial, name, unit",
        (rid,),
    )
    _array(fh, "series", (_clean(s) for s in series), last=not include_telemetry)
    if include_telemetry:
        samples = "SELECT dut_serial, t, name, value, unit FROM telemetry WHERE run_id = ? ORDER BY rowid"
        columns = ("dut_serial", "t", "name", "value", "unit")
        _array(fh, "samples", _records(store, samples, rid, columns, chunk_rows), last=True)
    fh.write("}\n}\n")


def _records(
    store: Store, sql: str, run_id: str, columns: tuple[str, ...], chunk_rows: int
) -> Iterator[dict[str, Any]]:
    for chunk in stream_rows(store, sql, (run_id,), chunk_rows):
        for row in chunk:
            yield _clean(dict(zip(columns, row, strict=True)))


def _array(fh: IO[str], key: str, items: Iterable[Any], *, last: bool = False) -> None:
    fh.write(f"{_dump(key)}: [")
    first = True
    for item in items:
        fh.write("\n" if first else ",\n")
        fh.write(_dump(item))
        first = False
    fh.write("\n]" if not first else "]")
    fh.write("\n" if last else ",\n")
