"""Named schema migrations, applied in order and recorded in `schema_migrations`."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            plan TEXT NOT NULL,
            plan_version TEXT NOT NULL,
            plan_sha256 TEXT NOT NULL,
            station TEXT NOT NULL,
            lot TEXT,
            seed INTEGER NOT NULL,
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
            options_json TEXT NOT NULL DEFAULT '{}',
            message TEXT
        );
        CREATE INDEX runs_lot ON runs(lot);
        CREATE TABLE duts (
            run_id TEXT NOT NULL REFERENCES runs(id),
            serial TEXT NOT NULL,
            kind TEXT NOT NULL,
            model TEXT,
            firmware TEXT,
            slot INTEGER,
            verdict TEXT NOT NULL,
            address TEXT,
            PRIMARY KEY (run_id, serial)
        );
        CREATE TABLE steps (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            dut_serial TEXT,
            stage TEXT NOT NULL,
            name TEXT NOT NULL,
            iteration INTEGER NOT NULL,
            status TEXT NOT NULL,
            t_start REAL NOT NULL,
            t_end REAL NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT NOT NULL,
            message TEXT,
            action TEXT,
            seq INTEGER NOT NULL
        );
        CREATE INDEX steps_run ON steps(run_id, seq);
        CREATE TABLE measurements (
            step_id TEXT NOT NULL REFERENCES steps(id),
            name TEXT NOT NULL,
            value REAL,
            text TEXT,
            unit TEXT,
            low REAL,
            high REAL,
            verdict TEXT NOT NULL
        );
        CREATE INDEX measurements_step ON measurements(step_id);
        CREATE TABLE telemetry (
            run_id TEXT NOT NULL REFERENCES runs(id),
            dut_serial TEXT,
            t REAL NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            unit TEXT
        );
        CREATE INDEX telemetry_run ON telemetry(run_id, dut_serial, name, t);
        CREATE TABLE events (
            run_id TEXT NOT NULL REFERENCES runs(id),
            t REAL NOT NULL,
            level TEXT NOT NULL,
            source TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX events_run ON events(run_id, t);
        CREATE TABLE criteria (
            run_id TEXT NOT NULL REFERENCES runs(id),
            lot TEXT,
            name TEXT NOT NULL,
            value REAL,
            "limit" REAL,
            confidence REAL,
            verdict TEXT NOT NULL,
            basis TEXT NOT NULL
        );
        CREATE TABLE instruments (
            run_id TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            driver TEXT NOT NULL,
            address TEXT NOT NULL,
            idn TEXT
        );
        CREATE TABLE checkpoints (
            run_id TEXT PRIMARY KEY REFERENCES runs(id),
            seq INTEGER NOT NULL,
            t REAL NOT NULL,
            state_json TEXT NOT NULL,
            saved_at TEXT NOT NULL
        );
        """,
    ),
]
