"""A full file system under the results database or a report: one clear error, exit 3, nothing lost.

The file system really fills: a small tmpfs is mounted (tests run as root here and in CI) and a
ballast file leaves only so much free; deleting the ballast gives the space back. Where mounting
is not allowed (not root, or mount refused) the tests fall back to a file-size limit
(RLIMIT_FSIZE in the child, SIGXFSZ ignored) so writes fail with EFBIG instead of ENOSPC, and
say so in a warning. The `rlimit` cases run that fallback on purpose, so both paths are tested.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import REPO, SIM_LAB, latest_run_id, query, run_qualify, run_steps
from tests.conftest import cli_env
from tests.support.disk import FullDisk, small_tmpfs, tmpfs_or_skip

LONG = str(REPO / "tests" / "service" / "plans" / "long_ssd.yaml")  # 180 items
QUICK = str(REPO / "tests" / "service" / "plans" / "quick_ssd.yaml")  # 12 items
TMPFS_BYTES = 8 << 20
RUN_FREE_BYTES = 2 << 20  # the whole long run needs ~5 MiB (a 4 MiB WAL, then the database)


@pytest.fixture(params=["tmpfs", "rlimit"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FullDisk]:
    """A folder on a small tmpfs (or, where mounting is refused, one under a file-size limit)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if request.param == "rlimit":
        yield FullDisk(folder, "rlimit")
        return
    with small_tmpfs(folder, TMPFS_BYTES) as reason:
        if reason is not None:
            warnings.warn(
                f"cannot mount a tmpfs ({reason}): using a file-size limit (EFBIG) instead", stacklevel=1
            )
        yield FullDisk(folder, "rlimit" if reason else "tmpfs")


def qualify(disk: FullDisk, cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the qualify CLI as run_qualify does, under the disk's limit (the child's only)."""
    return run_qualify(
        cwd, *args, env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=timeout, preexec_fn=disk.preexec()
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _steps_of_first_items(db: Path, run_id: str, n_items: int) -> list[tuple[Any, ...]]:
    """Return the steps of a run's first n items (an item: one stage iteration's step, all DUTs)."""
    rows = query(
        db,
        "SELECT dut_serial, stage, name, iteration, status FROM steps WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    items: list[tuple[Any, ...]] = []
    for row in rows:
        if row[1:4] not in items:
            items.append(row[1:4])
    first = set(items[:n_items])
    return sorted((r for r in rows if r[1:4] in first), key=str)


def test_full_disk_mid_run_stops_keeps_every_commit_and_resumes(tmp_path: Path, full_disk: FullDisk) -> None:
    whole = tmp_path / "whole"
    whole.mkdir()
    proc = qualify(full_disk, whole, "run", LONG, "--station", str(SIM_LAB), "--seed", "11")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    whole_db = whole / "qualify.db"
    whole_id = latest_run_id(whole_db)
    expected = run_steps(whole_db, whole_id)

    db = full_disk.folder / "station.db"
    full_disk.fill(RUN_FREE_BYTES)
    proc = qualify(
        full_disk, tmp_path, "run", LONG, "--station", str(SIM_LAB), "--seed", "11", "--db", str(db)
    )
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr
    line = _one_error_line(proc)
    run_id = latest_run_id(db)
    reason = "the file system is full" if full_disk.how == "tmpfs" else "the file-size limit"
    assert line.startswith(f"error: results database {db}: {reason}"), line
    assert line.endswith(f"free space and run 'qualify resume {run_id} --db {db}'"), line
    found = re.search(r"results up to item (\d+) of 180 are kept", line)
    assert found, line
    kept_items = int(found.group(1))
    assert 5 < kept_items < 150, f"the disk should fill part-way, it filled after item {kept_items}"
    # The station went to its safe state although nothing more could be recorded.
    assert "safe state: supplies off, chamber to ambient" in proc.stdout
    assert not list(full_disk.folder.glob("*.html")), "no report on the full disk"

    # Still full: resume refuses with the same clear message, and changes nothing.
    if full_disk.how == "tmpfs":
        proc = qualify(full_disk, tmp_path, "resume", run_id, "--db", str(db))
        assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr
        assert _one_error_line(proc).startswith(f"error: results database {db}: the file system is full")

    full_disk.free()
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    # Every item committed before the failure is kept, and nothing of the failed one.
    kept = run_steps(db, run_id)
    assert kept == _steps_of_first_items(whole_db, whole_id, kept_items)
    assert query(db, "SELECT seq FROM checkpoints WHERE run_id = ?", (run_id,)) == [(kept_items,)]

    proc = qualify(full_disk, tmp_path, "resume", run_id[:8], "--db", str(db))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert run_steps(db, run_id) == expected
    assert query(db, "SELECT status FROM runs WHERE id = ?", (run_id,)) == [("completed",)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    print(f"{full_disk.how}: the database filled after item {kept_items} of 180; resumed to the end")


def test_run_on_an_already_full_disk_exits_3_with_one_line(tmp_path: Path, full_disk: FullDisk) -> None:
    db = full_disk.folder / "station.db"
    full_disk.fill(16 << 10)
    proc = qualify(full_disk, tmp_path, "run", QUICK, "--station", str(SIM_LAB), "--db", str(db))
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr
    line = _one_error_line(proc)
    assert line.startswith(f"error: results database {db}: "), line
    assert "full" in line or "file-size limit" in line, line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Return a database on an ordinary file system holding one completed run, and its id."""
    source = tmp_path_factory.mktemp("source")
    proc = qualify(FullDisk(source, "rlimit"), source, "run", LONG, "--station", str(SIM_LAB))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    db = source / "qualify.db"
    return db, latest_run_id(db)


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (("report", "{run}", "-o", "{out}/run.html"), "run.html"),
        (("export", "{run}", "--format", "json", "--telemetry", "-o", "{out}/run.json"), "run.json"),
        (("export", "{run}", "--format", "junit", "-o", "{out}/run.xml"), "run.xml"),
        (("export", "{run}", "--format", "csv", "-o", "{out}/tables"), "tables/measurements.csv"),
    ],
)
def test_report_and_export_to_a_full_disk_leave_no_partial_file(
    full_disk: FullDisk, finished_run: tuple[Path, str], command: tuple[str, ...], target: str
) -> None:
    db, run_id = finished_run
    # Each output is larger than this; under a file-size limit, reading the WAL database
    # itself needs its 32 KiB -shm file, hence not less.
    full_disk.fill(64 << 10)
    args = [a.format(run=run_id, out=full_disk.folder) for a in command]
    proc = qualify(full_disk, db.parent, *args, "--db", str(db))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    reason = "the file system is full" if full_disk.how == "tmpfs" else "the file-size limit is reached"
    assert line.startswith(f"error: cannot write {full_disk.folder / target}: {reason}"), line
    assert line.endswith("; nothing was written"), line
    left = [p.name for p in full_disk.folder.rglob("*") if p.is_file() and p.name != "ballast"]
    assert left == [], f"partial output left behind: {left}"

    full_disk.free()
    proc = qualify(full_disk, db.parent, *args, "--db", str(db))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (full_disk.folder / target).stat().st_size > 64 << 10


def _run_with_output_refused(
    cwd: Path, *args: str, preexec_fn: Callable[[], None] | None = None
) -> tuple[int, str]:
    """Run the CLI with stdout on /dev/full (every write refused, ENOSPC) and stderr in a file."""
    err = cwd / "stderr.txt"
    with open("/dev/full", "wb") as full, err.open("wb") as err_file:
        code = subprocess.call(
            [sys.executable, "-m", "qualify", *args],
            stdout=full,
            stderr=err_file,
            cwd=cwd,
            env=cli_env({"PYTHONDONTWRITEBYTECODE": "1"}),
            timeout=180,
            preexec_fn=preexec_fn,
        )
    return code, err.read_text(errors="replace")


def test_run_whose_output_is_refused_still_records_every_result(tmp_path: Path) -> None:
    # A station's log disk fills (or an operator's pipe closes): the results go on into the
    # database and the run completes; before, the first refused print ended it with a traceback.
    db = tmp_path / "q.db"
    code, err = _run_with_output_refused(tmp_path, "run", QUICK, "--station", str(SIM_LAB), "--db", str(db))
    assert code == 0 and "Traceback" not in err, err[-3000:]
    run_id = latest_run_id(db)
    assert query(db, "SELECT status FROM runs WHERE id = ?", (run_id,)) == [("completed",)]
    assert len(run_steps(db, run_id)) > 0


def test_run_with_both_its_output_and_its_database_full_still_exits_3_and_resumes(
    tmp_path: Path, full_disk: FullDisk
) -> None:
    # As under the station service, whose runs log on the database's file system: when it
    # fills, the run must still end as a full disk (exit 3, resumable), not as a traceback from
    # a print (exit 1), nor 120 from Python's last flush of stdout.
    db = full_disk.folder / "station.db"
    full_disk.fill(RUN_FREE_BYTES)
    code, err = _run_with_output_refused(
        tmp_path, "run", LONG, "--station", str(SIM_LAB), "--db", str(db), preexec_fn=full_disk.preexec()
    )
    assert code == 3 and "Traceback" not in err, err[-3000:]
    reason = "the file system is full" if full_disk.how == "tmpfs" else "the file-size limit"
    assert err.startswith(f"error: results database {db}: {reason}"), err
    run_id = latest_run_id(db)
    kept = query(db, "SELECT seq FROM checkpoints WHERE run_id = ?", (run_id,))
    assert kept and 5 < kept[0][0] < 180, kept

    full_disk.free()
    proc = qualify(full_disk, tmp_path, "resume", run_id, "--db", str(db))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert query(db, "SELECT status FROM runs WHERE id = ?", (run_id,)) == [("completed",)]


def test_a_folder_export_that_fails_part_way_leaves_the_folder_as_it_was(
    tmp_path: Path, finished_run: tuple[Path, str]
) -> None:
    # The tables of an export are one set: with room for measurements.csv (~345 KiB) but not for
    # steps.csv after it, none of the new tables may appear, and an earlier export's set stays
    # whole rather than mixing runs. Only a real file system fills part-way through a set (a
    # file-size limit refuses per file, and measurements.csv is the largest).
    with tmpfs_or_skip(tmp_path, TMPFS_BYTES) as disk:
        _export_fails_part_way(disk, *finished_run)


def _export_fails_part_way(full_disk: FullDisk, db: Path, run_id: str) -> None:
    tables = full_disk.folder / "tables"
    tables.mkdir()
    earlier = {name: f"earlier {name}\n" for name in ("measurements.csv", "steps.csv", "telemetry.csv")}
    for name, text in earlier.items():
        (tables / name).write_text(text)
    full_disk.fill(400 << 10)
    proc = qualify(
        full_disk, db.parent, "export", run_id, "--format", "csv", "-o", str(tables), "--db", str(db)
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert line.startswith(f"error: cannot write {tables / 'steps.csv'}: the file system is full"), line
    assert {p.name: p.read_text() for p in tables.iterdir()} == earlier, "the earlier set changed"

    full_disk.free()
    proc = qualify(
        full_disk, db.parent, "export", run_id, "--format", "csv", "-o", str(tables), "--db", str(db)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tables.iterdir()) == sorted(earlier)
    assert all(not (tables / name).read_text().startswith("earlier") for name in earlier)
