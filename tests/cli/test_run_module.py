"""An engineer's own pytest module runs with the plugin's fixtures and is recorded like a plan."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import query, run_qualify

MODULE = """
def test_rail(dut, psu, measure):
    measure("rail_v", psu.measure_voltage(dut.supply_binding.channel), "V", low=11.4, high=12.6)


def test_chamber_air(chamber, measure):
    measure("air_c", chamber.read_temperature(), "degC", low=20, high=30)


def test_slot_two_is_rejected(dut, measure):
    measure("accepted", 0.0 if dut.serial == "QSIM0002" else 1.0, eq=1.0)


def test_station_has_four_duts(station):
    assert len(station.duts) == 4
"""


def test_module_tests_are_recorded_per_dut(tmp_path: Path) -> None:
    module = tmp_path / "custom_checks.py"
    module.write_text(MODULE)
    proc = run_qualify(tmp_path, "run", str(module), "--sim", "--lot", "L7")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    assert query(db, "SELECT plan, plan_version, status FROM runs") == [
        ("custom_checks", "module", "completed")
    ]
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert verdicts == {"QSIM0001": "pass", "QSIM0002": "fail", "QSIM0003": "pass", "QSIM0004": "pass"}
    rows = query(db, "SELECT dut_serial, name, status FROM steps ORDER BY seq")
    assert len([r for r in rows if r[1] == "test_rail"]) == 4
    assert (None, "test_chamber_air", "pass") in rows
    assert (None, "test_station_has_four_duts", "pass") in rows
    assert ("QSIM0002", "test_slot_two_is_rejected", "fail") in rows
    rails = query(
        db,
        "SELECT m.value, m.low, m.high, m.verdict FROM measurements m JOIN steps s ON s.id = m.step_id "
        "WHERE m.name = 'rail_v'",
    )
    assert len(rails) == 4 and all(
        11.9 < v < 12.1 and lo == 11.4 and hi == 12.6 and verdict == "pass" for v, lo, hi, verdict in rails
    )
    assert "accepted = 0.0, expected 1.0" in proc.stdout
