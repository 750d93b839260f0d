"""Every shipped plan runs end to end on the simulated lab, and its verdicts follow the physics."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualify.plans.library import list_plans
from tests.cli.conftest import REPO, query, run_qualify

PLANS = sorted(e.name for e in list_plans() if e.name != "jesd218_enterprise")  # the main job covers it


def _criteria(db: Path) -> dict[str, tuple[str, float | None]]:
    return {
        name: (verdict, value)
        for name, verdict, value in query(db, "SELECT name, verdict, value FROM criteria")
    }


def test_main_job_passes_its_criteria(main_job: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, proc = main_job
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout[-3000:] + proc.stderr
    db = folder / "qualify.db"
    assert query(db, "SELECT plan, status, lot FROM runs") == [
        ("jesd218_enterprise", "completed", "DEMO-LOT")
    ]
    assert query(db, "SELECT COUNT(*), SUM(verdict = 'pass') FROM duts") == [(34, 34)]
    criteria = _criteria(db)
    # FFR: 0 failures of 34 at 60 % → 1 − 0.4^(1/34) (the exact zero-failure bound).
    assert criteria["ffr"][0] == "pass" and criteria["ffr"][1] == pytest.approx(1 - 0.4 ** (1 / 34))
    # UBER: no error in 34 drives × 10 reads × 3 840 755 982 336 bytes × 8 bits.
    bits = 34 * 10 * 3_840_755_982_336 * 8
    assert criteria["uber"][0] == "pass" and criteria["uber"][1] == pytest.approx(0.916290731874155 / bits)
    # The bake lasted 2190 h / AF(40 → 66 °C, 1.1 eV) = 96.22 h.
    hold = query(db, "SELECT value FROM measurements WHERE name = 'equivalent_hold_h'")
    assert hold and hold[0][0] == pytest.approx(96.2227, rel=1e-4)


@pytest.mark.parametrize("plan", PLANS)
def test_shipped_plan_passes_a_healthy_lot(tmp_path: Path, plan: str) -> None:
    proc = run_qualify(tmp_path, "run", plan, "--sim", "--lot", "HEALTHY", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    db = tmp_path / "qualify.db"
    assert query(db, "SELECT status FROM runs") == [("completed",)]
    assert {v for (v,) in query(db, "SELECT verdict FROM duts")} == {"pass"}
    assert all(verdict == "pass" for verdict, _ in _criteria(db).values())


def _lot_variant(tmp_path: Path, station: str, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load((REPO / "fixtures" / "stations" / station).read_text())
    change(data)
    path = tmp_path / station
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_weak_media_lot_fails_uber_and_ffr(tmp_path: Path) -> None:
    def weak(data: dict[str, Any]) -> None:
        for dut in data["simulation"]["lab"]["duts"]:
            dut["model"] = "weak_media_tlc_3p84tb"

    station = _lot_variant(tmp_path, "sim-ssd-lot.yaml", weak)
    proc = run_qualify(tmp_path, "run", "jesd218_enterprise", "--station", str(station), timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    criteria = _criteria(tmp_path / "qualify.db")
    assert criteria["uber"][0] == "fail" and criteria["uber"][1] > 1e-16
    assert criteria["ffr"][0] == "fail"


def test_one_weak_retention_module_fails_the_profile_and_is_named(tmp_path: Path) -> None:
    def one_weak(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["duts"][2]["model"] = "rdimm_weak_retention"

    station = _lot_variant(tmp_path, "sim-dimm-lot.yaml", one_weak)
    proc = run_qualify(tmp_path, "run", "retention_profile", "--station", str(station))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    db = tmp_path / "qualify.db"
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert [s for s, v in verdicts.items() if v == "fail"] == ["5D1A0003"]
    (basis,) = query(db, "SELECT basis FROM criteria WHERE name = 'worst_guard_band'")[0]
    assert "DUT 5D1A0003" in basis


def test_margin_shmoo_pass_region_shrinks_when_hot(tmp_path: Path) -> None:
    proc = run_qualify(tmp_path, "run", "margin_shmoo", "--sim")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    rows = query(
        tmp_path / "qualify.db",
        "SELECT s.stage, AVG(m.value) FROM measurements m JOIN steps s ON s.id = m.step_id "
        "WHERE m.name = 'passing_points' GROUP BY s.stage",
    )
    points = dict(rows)
    assert points["t25"] >= points["t55"] >= points["t85"] >= points["t95"]
    assert points["t25"] > points["t95"]


def test_dimm_error_storm_fails_only_that_module(tmp_path: Path) -> None:
    def storm(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["faults"] = [{"target": "slot2", "kind": "error_storm", "at_s": 1000.0}]

    station = _lot_variant(tmp_path, "sim-dimm-lot.yaml", storm)
    proc = run_qualify(tmp_path, "run", "march_suite", "--station", str(station))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    db = tmp_path / "qualify.db"
    assert [s for s, v in query(db, "SELECT serial, verdict FROM duts") if v != "pass"] == ["5D1A0002"]
    before = query(
        db, "SELECT COUNT(*) FROM steps WHERE dut_serial = '5D1A0002' AND stage = 't25' AND status = 'pass'"
    )
    assert before == [(5,)]  # the storm starts after the room-temperature suite
    words = query(
        db,
        "SELECT m.value FROM measurements m JOIN steps s ON s.id = m.step_id WHERE s.dut_serial = '5D1A0002' "
        "AND s.stage = 't85' AND s.name = 'march_c_minus' AND m.name = 'failing_words'",
    )
    assert words and words[0][0] >= 200  # 256 stuck cells, a few may share a word
