"""The plugin also runs a plan under plain pytest, for teams that drive pytest themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import REPO, query


def test_plain_pytest_runs_a_plan_with_junit(tmp_path: Path) -> None:
    plan = tmp_path / "station_smoke.yaml"
    shutil.copy(REPO / "test_plans" / "common" / "station_smoke.yaml", plan)
    junit = tmp_path / "j.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(plan),
            "--qualify-plan",
            str(plan),
            "--qualify-seed",
            "4",
            "--qualify-lot",
            "P1",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert query(tmp_path / "qualify.db", "SELECT status, lot, seed FROM runs") == [("completed", "P1", 4)]
    xml = junit.read_text()
    assert xml.count("<testcase") == 12 + 24  # 12 step items and 24 DUT sub-results
    assert 'name="ambient[1]/supply[QSIM0002]"' in xml


def test_plugin_is_inert_without_a_plan(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_one():\n    assert True\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout
    assert not (tmp_path / "qualify.db").exists()
