"""`qualify archive` and `qualify telemetry rollup` as an operator runs them on a station database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualify.cli.app import app
from tests.cli.conftest import REPO, SIM_LAB, query, run_qualify

QUICK = str(REPO / "tests" / "service" / "plans" / "quick_ssd.yaml")
RUN_TABLES = ("steps", "telemetry", "events", "duts", "instruments", "criteria")
runner = CliRunner()


def _counts(db: Path, run_id: str) -> dict[str, int]:
    counts = {t: query(db, f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,))[0][0] for t in RUN_TABLES}
    counts["measurements"] = query(
        db,
        "SELECT COUNT(*) FROM measurements m JOIN steps s ON s.id = m.step_id WHERE s.run_id = ?",
        (run_id,),
    )[0][0]
    counts["runs"] = query(db, "SELECT COUNT(*) FROM runs WHERE id = ?", (run_id,))[0][0]
    return counts


@pytest.fixture(scope="module")
def station_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Return a database with two completed runs and one killed mid-run (still running), oldest first."""
    folder = tmp_path_factory.mktemp("station")
    db = folder / "station.db"
    for args in ([], [], ["--", "-p", "tests.support.killer"]):
        proc = run_qualify(
            folder,
            "run",
            QUICK,
            "--station",
            str(SIM_LAB),
            "--db",
            str(db),
            *args,
            env={"QUALIFY_KILL_BEFORE_ITEM": "4"} if args else None,
        )
        assert proc.returncode == (-9 if args else 0), proc.stdout[-2000:] + proc.stderr
    ids = [r[0] for r in query(db, "SELECT id FROM runs ORDER BY started_at")]
    assert [r[0] for r in query(db, "SELECT status FROM runs ORDER BY started_at")] == [
        "completed",
        "completed",
        "running",
    ]
    return db, ids


def test_archive_moves_ended_runs_and_a_second_archive_moves_nothing(
    tmp_path: Path, station_db: tuple[Path, list[str]]
) -> None:
    db = tmp_path / "station.db"
    db.write_bytes(station_db[0].read_bytes())  # each test gets its own copy (the WAL was checkpointed)
    first, second, running = station_db[1]
    before = {rid: _counts(db, rid) for rid in station_db[1]}
    assert all(before[first][t] > 0 for t in ("runs", "steps", "measurements", "telemetry", "events", "duts"))
    archive = tmp_path / "archive" / "2025.db"
    second_started = query(db, "SELECT started_at FROM runs WHERE id = ?", (second,))[0][0]

    # Only the run started before the second one moves.
    proc = run_qualify(tmp_path, "archive", "--db", str(db), "--before", second_started, "--to", str(archive))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    c = before[first]
    assert proc.stdout.strip() == (
        f"archived 1 run(s) started before {second_started} from {db} to {archive} "
        f"({c['steps']} steps, {c['measurements']} measurements, {c['telemetry']} telemetry rows)"
    )
    assert _counts(archive, first) == before[first]
    assert set(_counts(db, first).values()) == {0}
    assert _counts(db, second) == before[second]

    # A far date moves the other ended run; the running one stays, whatever its age.
    proc = run_qualify(
        tmp_path, "archive", "--db", str(db), "--before", "2999-01-01", "--to", str(archive), "--vacuum"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("archived 1 run(s) started before 2999-01-01T00:00:00.000Z")
    assert proc.stdout.strip().endswith(", vacuumed")
    assert _counts(archive, second) == before[second]
    assert _counts(db, running) == before[running]
    assert [r[0] for r in query(db, "SELECT id FROM runs")] == [running]

    # Again: nothing more to move, nothing duplicated in the archive.
    proc = run_qualify(tmp_path, "archive", "--db", str(db), "--before", "2999-01-01", "--to", str(archive))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("archived 0 run(s)")
    assert _counts(archive, first) == before[first] and _counts(archive, second) == before[second]
    for path in (db, archive):
        assert query(path, "PRAGMA integrity_check") == [("ok",)]

    # results, report and export read the archive like any results database.
    listed = run_qualify(tmp_path, "results", "list", "--db", str(archive))
    assert listed.returncode == 0 and first[:8] in listed.stdout and second[:8] in listed.stdout
    shown = run_qualify(tmp_path, "results", "show", first[:8], "--db", str(archive))
    assert shown.returncode == 0 and "QSIM0001" in shown.stdout, shown.stderr
    report = tmp_path / "old.html"
    made = run_qualify(tmp_path, "report", first, "--db", str(archive), "-o", str(report))
    assert made.returncode == 0, made.stderr
    assert first in report.read_text() and ">PASS<" in report.read_text()
    exported = run_qualify(
        tmp_path, "export", second, "--db", str(archive), "--format", "json", "-o", "r.json"
    )
    assert exported.returncode == 0, exported.stderr
    # and the source still serves what it kept; a moved run is gone from it.
    assert run_qualify(tmp_path, "results", "show", running[:8], "--db", str(db)).returncode == 0
    gone = run_qualify(tmp_path, "report", first, "--db", str(db), "-o", "x.html")
    assert gone.returncode == 2 and f"no run {first!r}" in gone.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--before", "last year", "--to", "{tmp}/a.db"], 2, "--before 'last year': give an ISO-8601 date"),
        (["--before", "2026-13-01", "--to", "{tmp}/a.db"], 2, "--before '2026-13-01': give an ISO-8601 date"),
        (["--db", "{tmp}/none.db", "--before", "2026-01-01", "--to", "{tmp}/a.db"], 2, "no database at {tmp}/none.db"),
        (["--before", "2026-01-01", "--to", "{tmp}/db.db"], 2, "the archive {tmp}/db.db is the database itself"),
        (["--before", "2026-01-01", "--to", "{tmp}/file/a.db"], 2, "cannot create {tmp}/file/a.db: File exists"),
        (["--before", "2026-01-01", "--to", "{tmp}/file"], 2, "cannot open database {tmp}/file: file is not a database"),
    ],
)  # fmt: skip
def test_archive_bad_input_is_one_clear_message(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    from qualify.store.db import Store

    Store(tmp_path / "db.db").close()
    (tmp_path / "file").write_text("not a database\n")
    argv = ["archive", *(a.format(tmp=tmp_path) for a in args)]
    if "--db" not in argv:
        argv += ["--db", str(tmp_path / "db.db")]
    result = runner.invoke(app, argv)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message.format(tmp=tmp_path)}"), result.output


def test_telemetry_rollup_rolls_old_samples_and_refuses_bad_input(
    tmp_path: Path, station_db: tuple[Path, list[str]]
) -> None:
    db = tmp_path / "station.db"
    db.write_bytes(station_db[0].read_bytes())
    raw = query(db, "SELECT COUNT(*) FROM telemetry")[0][0]
    result = runner.invoke(
        app, ["telemetry", "rollup", "--db", str(db), "--raw-days", "0.001", "--window-s", "60"]
    )
    assert result.exit_code == 0, result.output
    kept = query(db, "SELECT COUNT(*) FROM telemetry")[0][0]
    rolled = query(db, "SELECT COUNT(*) FROM telemetry_rollup")[0][0]
    assert 0 < kept < raw and rolled > 0
    assert result.output.strip() == (
        f"rolled {raw - kept} raw samples into {rolled} rollup rows in {db} "
        "(raw kept for the last 0.001 days of each run, windows of 60 s)"
    )
    again = runner.invoke(
        app, ["telemetry", "rollup", "--db", str(db), "--raw-days", "0.001", "--window-s", "60"]
    )
    assert again.exit_code == 0 and again.output.startswith("rolled 0 raw samples into 0 rollup rows")

    for argv, message in (
        (["--db", str(db), "--raw-days", "0"], "error: retention needs raw_days > 0 and window_s > 0"),
        (
            ["--db", str(tmp_path / "none.db"), "--raw-days", "7"],
            f"error: no database at {tmp_path / 'none.db'}",
        ),
    ):
        bad = runner.invoke(app, ["telemetry", "rollup", *argv])
        assert bad.exit_code == 2 and bad.output.strip() == message, bad.output
