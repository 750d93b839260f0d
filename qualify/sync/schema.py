"""The fleet database's schema in PostgreSQL: the station tables, keyed so that upserts are idempotent.

It mirrors the results store (DESIGN.md's tables and columns, the same names and meanings) and
adds what merging many stations needs: `stations`, and an `ord` column where SQLite's rows have
no key of their own (a measurement's rank within its step, an event's rank within its run, a
telemetry sample's rank among the samples of its run at the same run time).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

CENTRAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS qualify_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    name TEXT PRIMARY KEY,
    host TEXT,
    source_db TEXT,
    last_sync_at TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    plan_version TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    station TEXT NOT NULL,
    lot TEXT,
    seed BIGINT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    software_version TEXT NOT NULL,
    git_commit TEXT,
    host TEXT NOT NULL,
    operator TEXT,
    plan_path TEXT NOT NULL,
    station_path TEXT NOT NULL,
    station_sha256 TEXT NOT NULL,
    options_json TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS runs_lot ON runs (lot);
CREATE INDEX IF NOT EXISTS runs_station ON runs (station, started_at);
CREATE TABLE IF NOT EXISTS duts (
    run_id TEXT NOT NULL REFERENCES runs (id),
    serial TEXT NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    firmware TEXT,
    slot BIGINT,
    verdict TEXT NOT NULL,
    address TEXT,
    PRIMARY KEY (run_id, serial)
);
CREATE TABLE IF NOT EXISTS steps (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    dut_serial TEXT,
    stage TEXT NOT NULL,
    name TEXT NOT NULL,
    iteration BIGINT NOT NULL,
    status TEXT NOT NULL,
    t_start DOUBLE PRECISION NOT NULL,
    t_end DOUBLE PRECISION NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    message TEXT,
    action TEXT,
    seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_run ON steps (run_id, seq);
CREATE TABLE IF NOT EXISTS measurements (
    step_id TEXT NOT NULL REFERENCES steps (id),
    ord INTEGER NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION,
    text TEXT,
    unit TEXT,
    low DOUBLE PRECISION,
    high DOUBLE PRECISION,
    verdict TEXT NOT NULL,
    PRIMARY KEY (step_id, ord)
);
CREATE TABLE IF NOT EXISTS telemetry (
    run_id TEXT NOT NULL REFERENCES runs (id),
    t DOUBLE PRECISION NOT NULL,
    ord INTEGER NOT NULL,
    dut_serial TEXT,
    name TEXT NOT NULL,
    value DOUBLE PRECISION,
    unit TEXT,
    PRIMARY KEY (run_id, t, ord)
);
CREATE INDEX IF NOT EXISTS telemetry_series ON telemetry (run_id, dut_serial, name, t);
CREATE TABLE IF NOT EXISTS telemetry_rollup (
    run_id TEXT NOT NULL REFERENCES runs (id),
    source_id BIGINT NOT NULL,
    dut_serial TEXT,
    name TEXT NOT NULL,
    unit TEXT,
    t_start DOUBLE PRECISION NOT NULL,
    t_end DOUBLE PRECISION NOT NULL,
    n BIGINT NOT NULL,
    min DOUBLE PRECISION,
    max DOUBLE PRECISION,
    mean DOUBLE PRECISION,
    PRIMARY KEY (run_id, source_id)
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    ord INTEGER NOT NULL,
    t DOUBLE PRECISION NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, ord)
);
CREATE TABLE IF NOT EXISTS criteria (
    run_id TEXT NOT NULL REFERENCES runs (id),
    ord INTEGER NOT NULL,
    lot TEXT,
    name TEXT NOT NULL,
    value DOUBLE PRECISION,
    "limit" DOUBLE PRECISION,
    confidence DOUBLE PRECISION,
    verdict TEXT NOT NULL,
    basis TEXT NOT NULL,
    PRIMARY KEY (run_id, ord)
);
CREATE TABLE IF NOT EXISTS instruments (
    run_id TEXT NOT NULL REFERENCES runs (id),
    ord INTEGER NOT NULL,
    name TEXT NOT NULL,
    driver TEXT NOT NULL,
    address TEXT NOT NULL,
    idn TEXT,
    PRIMARY KEY (run_id, ord)
);
INSERT INTO qualify_schema (version, applied_at) VALUES (1, to_char(now() AT TIME ZONE 'UTC',
    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) ON CONFLICT (version) DO NOTHING;
"""

# Columns shipped per table, in the station database's names (the fleet adds `ord`/`source_id`).
RUN_COLUMNS = (
    "id", "plan", "plan_version", "plan_sha256", "station", "lot", "seed", "status", "started_at",
    "ended_at", "software_version", "git_commit", "host", "operator", "plan_path", "station_path",
    "station_sha256", "options_json", "message",
)  # fmt: skip
DUT_COLUMNS = ("run_id", "serial", "kind", "model", "firmware", "slot", "verdict", "address")
STEP_COLUMNS = (
    "id", "run_id", "dut_serial", "stage", "name", "iteration", "status", "t_start", "t_end",
    "started_at", "ended_at", "message", "action", "seq",
)  # fmt: skip
MEASUREMENT_COLUMNS = ("step_id", "name", "value", "text", "unit", "low", "high", "verdict")
TELEMETRY_COLUMNS = ("run_id", "t", "dut_serial", "name", "value", "unit")
ROLLUP_COLUMNS = ("run_id", "dut_serial", "name", "unit", "t_start", "t_end", "n", "min", "max", "mean")
EVENT_COLUMNS = ("run_id", "t", "level", "source", "message")
CRITERIA_COLUMNS = ("run_id", "lot", "name", "value", "limit", "confidence", "verdict", "basis")
INSTRUMENT_COLUMNS = ("run_id", "name", "driver", "address", "idn")
