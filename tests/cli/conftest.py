"""Helpers for CLI tests: run `qualify` as a user would, in a scratch folder."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, cli_env

SIM_LAB = REPO / "fixtures" / "stations" / "sim-lab.yaml"


def run_qualify(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the qualify CLI in a subprocess and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "qualify", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the rows of a query on a results database."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


STEP_KEY = "SELECT dut_serial, stage, name, iteration, status FROM steps WHERE run_id = ?"


def latest_run_id(db: Path) -> str:
    """Return the id of the run started last in a results database."""
    return str(query(db, "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0][0])


def run_steps(db: Path, run_id: str) -> list[tuple[Any, ...]]:
    """Return a run's steps as runs are compared: (dut_serial, stage, name, iteration, status), sorted."""
    return sorted(query(db, STEP_KEY, (run_id,)), key=str)


@pytest.fixture
def station_variant(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the sim-lab station with changes applied to its data."""

    def make(change: Callable[[dict[str, Any]], None], name: str = "station.yaml") -> Path:
        data = yaml.safe_load(SIM_LAB.read_text())
        change(data)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make
