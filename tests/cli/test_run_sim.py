"""`qualify run` end to end on the simulated lab, as a user runs it from a shell."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import REPO, latest_run_id, query, run_qualify, run_steps

SMOKE = str(REPO / "test_plans" / "common" / "station_smoke.yaml")


def test_main_job_records_everything_and_writes_report(tmp_path: Path) -> None:
    proc = run_qualify(tmp_path, "run", "station_smoke", "--sim", "--lot", "DEMO-LOT", "--seed", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    for table in ("runs", "duts", "steps", "measurements", "instruments", "telemetry", "events"):
        assert query(db, f"SELECT COUNT(*) FROM {table}")[0][0] > 0, table
    run_id = latest_run_id(db)
    assert query(db, "SELECT status, lot, seed, plan FROM runs")[0] == (
        "completed",
        "DEMO-LOT",
        3,
        "station_smoke",
    )
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert verdicts == {f"QSIM000{i}": "pass" for i in range(1, 5)}
    idns = [r[0] for r in query(db, "SELECT idn FROM instruments ORDER BY name")]
    assert all(idns) and "E36313A" in idns[1]
    reports = list(tmp_path.glob("qualify-report-*.html"))
    assert len(reports) == 1 and run_id[:8] in reports[0].name
    html = reports[0].read_text()
    assert 'id="verdict"' in html and ">PASS<" in html and "QSIM0004" in html
    # Each DUT's verdict per step is in pytest's output.
    assert "SUBPASSED[QSIM0003]" in proc.stdout
    assert f"report:   {reports[0]}" in proc.stdout


def test_failing_dut_exits_1_and_others_pass(tmp_path: Path, station_variant: Callable[..., Path]) -> None:
    def hot_slot_2(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["duts"][1]["rth_c_per_w"] = 5.0  # 6 W x 5 °C/W: 30 °C over air

    station = station_variant(hot_slot_2)
    junit = tmp_path / "junit.xml"
    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station), "--", f"--junitxml={junit}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert verdicts == {
        "QSIM0001": "pass",
        "QSIM0002": "fail",
        "QSIM0003": "pass",
        "QSIM0004": "pass",
    }
    failed = query(db, "SELECT stage, name, message FROM steps WHERE status = 'fail'")
    assert failed and all(name == "temperature" for _, name, _ in failed)
    assert "rise_c" in failed[0][2]
    assert (
        query(
            db,
            "SELECT verdict FROM measurements m JOIN steps s ON s.id = m.step_id "
            "WHERE s.dut_serial = 'QSIM0002' AND m.name = 'rise_c' AND s.stage = 'ambient'",
        )[0][0]
        == "fail"
    )
    assert "SUBFAILED[QSIM0002]" in proc.stdout
    xml = junit.read_text()
    assert "QSIM0002" in xml and "<failure" in xml


def test_dead_supply_errors_its_duts_and_others_carry_on(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def dead_psu2(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["faults"] = [{"target": "psu2", "kind": "no_reply", "at_s": 1000.0}]
        for inst in data["instruments"]:
            inst["timeout_ms"] = 200

    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station_variant(dead_psu2)))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert verdicts == {
        "QSIM0001": "pass",
        "QSIM0002": "pass",
        "QSIM0003": "error",
        "QSIM0004": "error",
    }
    # Before the fault every DUT passed; after it the dead supply's DUTs are errors, never fails.
    statuses = query(db, "SELECT DISTINCT status FROM steps WHERE dut_serial IN ('QSIM0003', 'QSIM0004')")
    assert {s for (s,) in statuses} == {"pass", "error"}
    messages = query(db, "SELECT message FROM steps WHERE dut_serial = 'QSIM0003' AND status = 'error'")
    assert all("psu2" in m for (m,) in messages)
    assert "TCPIP::127.0.0.1::" in messages[0][0]
    others = query(
        db,
        "SELECT COUNT(*) FROM steps WHERE dut_serial IN ('QSIM0001', 'QSIM0002') AND status != 'pass'",
    )
    assert others[0][0] == 0


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            "stages:\n  - name: a\n    steps:\n      - name: s\n        action: dut.temperature\n        limits: {temp_c: {hihg: 5}}\n",
            "bad.yaml:10: stages[0].steps[0].limits.temp_c.hihg: unknown key 'hihg'",
        ),
        ("stages: [\n", "bad.yaml:"),
    ],
)
def test_malformed_plan_exits_2_with_one_clear_message(tmp_path: Path, broken: str, expected: str) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("spec: qualify.plan/1\nname: bad\nversion: '1'\napplies_to: ssd\n" + broken)
    proc = run_qualify(tmp_path, "run", "bad.yaml", "--sim")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {expected}"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "qualify.db").exists()


def test_malformed_station_exits_2_naming_key_and_line(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def bad(data: dict[str, Any]) -> None:
        data["duts"][2]["supply"]["instrument"] = "psu9"

    station = station_variant(bad)
    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station))
    assert proc.returncode == 2
    assert "station.yaml:" in proc.stderr and "psu9" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        "station.yaml:" in proc.stderr
        and "duts[2].supply.instrument: no instrument named 'psu9'" in proc.stderr
    )
    station.write_text(
        station.read_text().replace("psu9", "psu2").replace("driver: nvme", "driver: nvmee", 1)
    )
    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station))
    assert proc.returncode == 2 and "duts[0].driver: unknown driver 'nvmee'" in proc.stderr


def test_plan_beyond_station_safe_limits_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "hot.yaml"
    plan.write_text(
        Path(SMOKE)
        .read_text()
        .replace("hot_c: 50", "hot_c: 120")
        .replace("voltage_pct: 5", "voltage_pct: 15")
    )
    proc = run_qualify(tmp_path, "run", str(plan), "--sim")
    assert proc.returncode == 2
    assert "hot.yaml:" in proc.stderr and "120 °C is outside the station's safe range" in proc.stderr
    assert "13.800 V on slot 1 exceeds the station's maximum 13.2 V" in proc.stderr
    assert not (tmp_path / "qualify.db").exists()


@pytest.mark.parametrize("kill", [("QUALIFY_KILL_BEFORE_ITEM", "7"), ("QUALIFY_KILL_IN_COMMIT", "5")])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path: Path, kill: tuple[str, str]) -> None:
    whole = tmp_path / "whole"
    whole.mkdir()
    assert run_qualify(whole, "run", SMOKE, "--sim", "--seed", "11").returncode == 0
    expected = run_steps(whole / "qualify.db", latest_run_id(whole / "qualify.db"))

    cut = tmp_path / "cut"
    cut.mkdir()
    proc = run_qualify(
        cut,
        "run",
        SMOKE,
        "--sim",
        "--seed",
        "11",
        "--",
        "-p",
        "tests.support.killer",
        env={kill[0]: kill[1]},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    db = cut / "qualify.db"
    run_id = latest_run_id(db)
    before = run_steps(db, run_id)
    assert 0 < len(before) < len(expected)
    assert query(db, "SELECT status FROM runs")[0][0] == "running"

    resumed = run_qualify(cut, "resume", run_id[:8])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = run_steps(db, run_id)
    assert after == expected
    assert query(db, "SELECT status FROM runs")[0][0] == "completed"
    measurements = query(
        db,
        "SELECT COUNT(*) FROM measurements m JOIN steps s ON s.id = m.step_id WHERE s.run_id = ?",
        (run_id,),
    )
    whole_measurements = query(whole / "qualify.db", "SELECT COUNT(*) FROM measurements")
    assert measurements == whole_measurements


def test_resume_refuses_a_changed_plan(tmp_path: Path) -> None:
    plan = tmp_path / "smoke.yaml"
    plan.write_text(Path(SMOKE).read_text())
    proc = run_qualify(
        tmp_path,
        "run",
        str(plan),
        "--sim",
        "--",
        "-p",
        "tests.support.killer",
        env={"QUALIFY_KILL_BEFORE_ITEM": "3"},
    )
    assert proc.returncode == -signal.SIGKILL
    plan.write_text(plan.read_text().replace("hot_c: 50", "hot_c: 45"))
    run_id = latest_run_id(tmp_path / "qualify.db")
    proc = run_qualify(tmp_path, "resume", run_id)
    assert proc.returncode == 2
    assert "changed since the run started" in proc.stderr and "Traceback" not in proc.stderr


def test_transient_garbled_replies_are_retried_and_recorded(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def flaky_chamber(data: dict[str, Any]) -> None:
        # Only the engine's thread talks to the chamber, so which commands are hit is fixed by the seed.
        data["simulation"]["lab"]["faults"] = [{"target": "chamber", "kind": "garbled", "probability": 0.1}]

    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station_variant(flaky_chamber)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    db = tmp_path / "qualify.db"
    retried = query(db, "SELECT message FROM events WHERE message LIKE 'retried after a transient fault%'")
    assert retried, "a 10 % garble rate over the run's chamber queries must have needed a retry"
    assert all("chamber (/dev/pts/" in m for (m,) in retried)
    assert set(query(db, "SELECT verdict FROM duts")) == {("pass",)}


def test_ssd_that_drops_off_the_bus_is_error_and_the_rest_continue(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def drop_slot3(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["faults"] = [
            {"target": "slot3", "kind": "drop_off_persistent", "at_s": 1000.0}
        ]

    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station_variant(drop_slot3)))
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr
    db = tmp_path / "qualify.db"
    verdicts = dict(query(db, "SELECT serial, verdict FROM duts"))
    assert verdicts == {"QSIM0001": "pass", "QSIM0002": "pass", "QSIM0003": "error", "QSIM0004": "pass"}
    dropped = query(db, "SELECT message FROM events WHERE source = 'QSIM0003' AND level = 'error'")
    assert len(dropped) == 1 and "dropped out" in dropped[0][0]
    later = query(
        db, "SELECT message FROM steps WHERE dut_serial = 'QSIM0003' AND status = 'error' ORDER BY seq"
    )
    assert len(later) >= 2 and all("sim-nvme://slot3" in m for (m,) in later)


def test_five_sigkills_at_random_points_each_resumed(tmp_path: Path) -> None:
    import random

    whole = tmp_path / "whole"
    whole.mkdir()
    assert run_qualify(whole, "run", SMOKE, "--sim", "--seed", "5").returncode == 0
    expected = run_steps(whole / "qualify.db", latest_run_id(whole / "qualify.db"))

    cut = tmp_path / "cut"
    cut.mkdir()
    rng = random.Random(20261128)  # seeded: the same kill points on every CI run
    killer = ["--", "-p", "tests.support.killer"]
    proc = run_qualify(
        cut,
        "run",
        SMOKE,
        "--sim",
        "--seed",
        "5",
        *killer,
        env={"QUALIFY_KILL_IN_COMMIT": str(rng.randint(1, 3))},
    )
    assert proc.returncode == -signal.SIGKILL
    db = cut / "qualify.db"
    run_id = latest_run_id(db)
    for _ in range(4):
        kind = rng.choice(["QUALIFY_KILL_IN_COMMIT", "QUALIFY_KILL_BEFORE_ITEM"])
        proc = run_qualify(cut, "resume", run_id, *killer, env={kind: str(rng.randint(1, 2))})
        assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr
    final = run_qualify(cut, "resume", run_id)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr
    assert run_steps(db, run_id) == expected
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
