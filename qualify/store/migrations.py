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
    # The station service (qualify.service): what it took from its queue and schedules, and
    # itself, so an entry runs once and `qualify station status` can read the station.
    (
        "0002_station_service",
        """
        CREATE TABLE station_jobs (
            id TEXT PRIMARY KEY,
            station TEXT NOT NULL,
            source TEXT NOT NULL,
            plan TEXT NOT NULL,
            lot TEXT,
            seed INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            request_json TEXT NOT NULL,
            state TEXT NOT NULL,
            run_id TEXT,
            slots_json TEXT,
            items_total INTEGER,
            exit_code INTEGER,
            pid INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        );
        CREATE INDEX station_jobs_state ON station_jobs(station, state, priority);
        CREATE INDEX station_jobs_run ON station_jobs(run_id);
        CREATE TABLE station_schedules (
            station TEXT NOT NULL,
            name TEXT NOT NULL,
            cron TEXT NOT NULL,
            last_fire TEXT NOT NULL,
            PRIMARY KEY (station, name)
        );
        CREATE TABLE station_services (
            station TEXT PRIMARY KEY,
            pid INTEGER,
            host TEXT,
            url TEXT,
            state TEXT NOT NULL,
            started_at TEXT,
            heartbeat_at TEXT,
            slots_json TEXT NOT NULL DEFAULT '[]',
            message TEXT
        )
        """,
    ),
    # The fleet outbox (qualify.sync): runs changed since they were last shipped to a fleet
    # database, and how far each run got per target. Triggers that fill the outbox are made by
    # qualify.sync.outbox.install_outbox (migrations are split on ';', which trigger bodies hold).
    (
        "0003_sync_outbox",
        """
        CREATE TABLE sync_outbox (
            run_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            changed_at TEXT NOT NULL
        );
        CREATE TABLE sync_shipped (
            target TEXT NOT NULL,
            run_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            steps_seq INTEGER NOT NULL DEFAULT -1,
            telemetry_t REAL,
            events_n INTEGER NOT NULL DEFAULT 0,
            rollup_id INTEGER NOT NULL DEFAULT 0,
            shipped_at TEXT NOT NULL,
            PRIMARY KEY (target, run_id)
        );
        CREATE INDEX telemetry_run_t ON telemetry(run_id, t)
        """,
    ),
    # Telemetry downsampling: min/max/mean per window once raw samples pass the retention age.
    (
        "0004_telemetry_rollup",
        """
        CREATE TABLE telemetry_rollup (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs(id),
            dut_serial TEXT,
            name TEXT NOT NULL,
            unit TEXT,
            t_start REAL NOT NULL,
            t_end REAL NOT NULL,
            n INTEGER NOT NULL,
            min REAL,
            max REAL,
            mean REAL
        );
        CREATE INDEX telemetry_rollup_run ON telemetry_rollup(run_id, dut_serial, name, t_start)
        """,
    ),
]
