"""The store: WAL, recorded migrations, atomic batches with the checkpoint, read-only opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from qualify.errors import InputError
from qualify.store.db import Batch, Store
from qualify.store.migrations import MIGRATIONS
from tests.unit.export_db import run_row

RUN = run_row("r1", status="running", ended_at=None)


def test_migrations_are_recorded_once_and_wal_is_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    names = [r["name"] for r in store.rows("SELECT name FROM schema_migrations")]
    assert names == [m[0] for m in MIGRATIONS]
    assert store.migrate() == []
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert Store(tmp_path / "q.db").migrate() == []


def test_design_columns_exist(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    expected = {
        "runs": "id plan plan_version plan_sha256 station lot seed status started_at ended_at "
        "software_version git_commit host operator",
        "duts": "run_id serial kind model firmware slot verdict",
        "steps": "id run_id dut_serial stage name iteration status t_start t_end started_at ended_at message",
        "measurements": "step_id name value text unit low high verdict",
        "telemetry": "run_id dut_serial t name value unit",
        "events": "run_id t level source message",
        "criteria": "run_id lot name value limit confidence verdict basis",
        "instruments": "run_id name driver address idn",
    }
    for table, cols in expected.items():
        have = {r["name"] for r in store.rows(f"PRAGMA table_info({table})")}
        assert set(cols.split()) <= have, table


def test_batch_and_checkpoint_commit_together_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.insert_rows("runs", [RUN])
    step = ("s1", "r1", "D1", "st", "n", 1, "pass", 0.0, 1.0, "a", "b", None, "x", 1)
    store.write_batch(
        Batch(steps=[step], measurements=[("s1", "m", 1.0, None, "V", 0.0, 2.0, "pass")]),
        ("r1", 1, 1.0, {"next_index": 1}),
    )
    assert store.checkpoint("r1") == {"next_index": 1}
    bad = Batch(
        steps=[("s2", "r1", "D1", "st", "n", 2, "pass", 1.0, 2.0, "a", "b", None, "x", 2)],
        measurements=[("s2", "m", 1.0, None, "V", 0.0, 2.0)],
    )  # one column short
    with pytest.raises(sqlite3.ProgrammingError):
        store.write_batch(bad, ("r1", 2, 2.0, {"next_index": 2}))
    assert len(store.rows("SELECT * FROM steps")) == 1
    assert store.checkpoint("r1") == {"next_index": 1}


def test_a_transaction_left_open_by_an_interrupt_is_dropped_not_committed(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.insert_rows("runs", [RUN])
    # A KeyboardInterrupt from a signal can land after BEGIN and before COMMIT: the rows
    # written in between were never committed, and the next transaction must still work.
    store.conn.execute("BEGIN IMMEDIATE")
    store.conn.execute(
        "INSERT INTO events (run_id, t, level, source, message) VALUES ('r1', 0, 'info', 'x', 'lost')"
    )
    step = ("s1", "r1", "D1", "st", "n", 1, "pass", 0.0, 1.0, "a", "b", None, "x", 1)
    store.write_batch(Batch(steps=[step]), ("r1", 1, 1.0, {"next_index": 1}))
    store.close()
    again = Store(tmp_path / "q.db")
    assert [r["id"] for r in again.rows("SELECT id FROM steps")] == ["s1"]
    assert again.rows("SELECT * FROM events") == []
    assert again.checkpoint("r1") == {"next_index": 1}


def test_run_prefix_lookup_and_readonly(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.insert_rows("runs", [RUN, {**RUN, "id": "r2"}])
    assert store.run("r1")["id"] == "r1"
    with pytest.raises(InputError, match="matches 2 runs"):
        store.run("r")
    with pytest.raises(InputError, match="no run 'zz'"):
        store.run("zz")
    store.close()
    ro = Store(tmp_path / "q.db", readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        ro.conn.execute("DELETE FROM runs")
    with pytest.raises(InputError, match="no database"):
        Store(tmp_path / "missing.db", readonly=True)


def test_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="cannot open database"):
        Store(junk)
