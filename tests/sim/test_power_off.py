"""Orderly and unsafe power-off on the simulated lab, the drive's exact history, and one shared lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from scipy.integrate import quad

from drivers.nvme.controller import NvmeDriver
from drivers.protocols import PowerOffNotice
from qualify.clock import VirtualClock
from qualify.engine.run import Engine, RunOptions
from qualify.resources import fixtures_dir
from qualify.stats.acceleration import arrhenius_af
from sim_instruments import lab as lab_module
from sim_instruments.dimm.device import make_dimm
from sim_instruments.lab import Lab
from sim_instruments.ssd import SimSsd, make_ssd

SIM_LAB = fixtures_dir() / "stations" / "sim-lab.yaml"


def _engine(tmp_path: Path, plan_text: str, station: Path = SIM_LAB) -> Engine:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text)
    return Engine.start(
        RunOptions(plan_path=str(plan), station_path=str(station), db_path=str(tmp_path / "q.db"), seed=3)
    )


def _run_stage(engine: Engine, stage: str) -> None:
    for ref in engine.items:
        if ref.stage == stage and engine.should_run(ref):
            engine.run_item(ref)


def _drive(engine: Engine, slot: int) -> SimSsd:
    device = engine.station.lab.device(slot)
    assert isinstance(device, SimSsd)
    return device


def _smart(engine: Engine) -> dict[str, tuple[int, int]]:
    """Return {serial: (power cycles, unsafe shutdowns)} read over NVMe."""
    out = {}
    for dut in engine.station.duts:
        log = dut.device.smart_log()
        out[dut.serial] = (log.power_cycles, log.unsafe_shutdowns)
    return out


def _environment_readings(engine: Engine, stage: str) -> dict[str, float]:
    rows = engine.store.rows(
        "SELECT m.name, m.value FROM measurements m JOIN steps s ON s.id = m.step_id "
        "WHERE s.dut_serial IS NULL AND s.stage = ?",
        (stage,),
    )
    return {row["name"]: row["value"] for row in rows}


POWER_PLAN = """spec: qualify.plan/1
name: power-off
version: "1"
applies_to: ssd
stages:
  - name: start
    steps: [{name: smart, action: nvme.smart}]
  - name: orderly_off
    environment: {dut_power: "off", hold_s: 3600}
  - name: orderly_on
    environment: {dut_power: "on"}
    steps: [{name: smart, action: nvme.smart}]
  - name: cut
    environment: {dut_power: "cut", hold_s: 3600}
  - name: cut_on
    environment: {dut_power: "on"}
    steps: [{name: smart, action: nvme.smart}]
"""


def test_orderly_off_is_a_clean_power_cycle_and_a_cut_is_an_unsafe_shutdown(tmp_path: Path) -> None:
    engine = _engine(tmp_path, POWER_PLAN)
    try:
        assert all(isinstance(dut.device, PowerOffNotice) for dut in engine.station.duts)
        _run_stage(engine, "start")
        start = _smart(engine)
        _run_stage(engine, "orderly_off")
        assert not any(dut.powered() for dut in engine.station.lab.duts())
        _run_stage(engine, "orderly_on")
        orderly = _smart(engine)
        _run_stage(engine, "cut")
        _run_stage(engine, "cut_on")
        cut = _smart(engine)
        for dut in engine.station.duts:
            cycles, unsafe = start[dut.serial]
            assert orderly[dut.serial] == (cycles + 1, unsafe)
            assert cut[dut.serial] == (cycles + 2, unsafe + 1)
            drive = _drive(engine, dut.slot)
            # The shipped drive has power-loss protection: the cut is caught by its capacitors.
            assert (drive.state.plp_starts, drive.state.incomplete_shutdowns) == (1, 0)
            # Both power-offs were seen at their times: two hours off, the rest on.
            assert drive.state.power_on_s == pytest.approx(engine.clock.now() - 2 * 3600, abs=1e-6)
        assert _environment_readings(engine, "orderly_off") == {"orderly_power_off": 4, "unsafe_power_off": 0}
        assert _environment_readings(engine, "cut") == {"orderly_power_off": 0, "unsafe_power_off": 4}
        assert _environment_readings(engine, "orderly_on") == {"power_on": 4}
        recorded = engine.store.rows(
            "SELECT s.stage, s.dut_serial, m.value FROM measurements m JOIN steps s ON s.id = m.step_id "
            "WHERE m.name = 'unsafe_shutdowns'"
        )
        rise_by_stage: dict[str, set[float]] = {}
        for row in recorded:
            rise = row["value"] - start[row["dut_serial"]][1]
            rise_by_stage.setdefault(row["stage"], set()).add(rise)
        assert rise_by_stage == {"start": {0}, "orderly_on": {0}, "cut_on": {1}}
        assert engine.finish().exit_code == 0
    finally:
        engine.close()


def test_a_drive_that_cannot_take_the_notice_is_not_judged_and_counts_as_unsafe(tmp_path: Path) -> None:
    station = yaml.safe_load(SIM_LAB.read_text())
    station["simulation"]["lab"]["faults"] = [{"target": "slot2", "kind": "drop_off", "at_s": 60.0}]
    station_path = tmp_path / "station.yaml"
    station_path.write_text(yaml.safe_dump(station))
    engine = _engine(
        tmp_path,
        """spec: qualify.plan/1
name: notice-fails
version: "1"
applies_to: ssd
stages:
  - name: power_off
    environment: {dut_power: "off", hold_s: 600}
    steps: [{name: supply, action: dut.supply}]
""",
        station_path,
    )
    try:
        engine.clock.advance_to(120.0)
        (environment, step) = engine.items
        outcome = engine.run_item(environment)
        assert outcome.station_status == "error"
        assert "slot 2" in (outcome.station_message or "")
        assert "shutdown" in (outcome.station_message or "")
        assert _environment_readings(engine, "power_off") == {"orderly_power_off": 3, "unsafe_power_off": 1}
        statuses = {d.serial: d.status for d in engine.run_item(step).duts}
        assert statuses["QSIM0002"] == "error"
        assert {s for serial, s in statuses.items() if serial != "QSIM0002"} == {"pass"}
    finally:
        engine.close()


BAKE_PLAN = """spec: qualify.plan/1
name: ramp-bake
version: "1"
applies_to: ssd
telemetry: {interval_s: 600}
stages:
  - name: bake
    environment:
      dut_power: "off"
      chamber: {temp_c: 85, tolerance_c: 0.5, soak_s: 900}
      hold_s: 7200
  - name: cool
    environment:
      chamber: {temp_c: 25, tolerance_c: 0.5}
  - name: back
    environment: {dut_power: "on"}
"""


def test_a_power_off_bake_across_chamber_ramps_ages_data_by_the_exact_arrhenius_integral(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, BAKE_PLAN)
    try:
        lab = engine.station.lab
        drive = _drive(engine, 1)
        ea_ev, ref_c = drive.model.rber.ea_ev, drive.model.rber.ref_temp_c
        t0_s, age0_h = engine.clock.now(), drive.media_state().retention_h
        _run_stage(engine, "bake")
        _run_stage(engine, "cool")
        # Only the checkpoints after the two environment items looked at the drive: the ramps
        # up and down lie inside them.
        t1_s, age1_h = engine.clock.now(), drive.media_state().retention_h
        dut = lab.dut(1)
        kinks = sorted(
            {p.start_s for p in [*lab.chamber.past_pieces, *lab.chamber.pieces] if t0_s < p.start_s < t1_s}
        )
        expected_s, error_s = quad(
            lambda t_s: arrhenius_af(ea_ev, ref_c, dut.temperature_at(t_s)),
            t0_s,
            t1_s,
            points=kinks,
            limit=400,
            epsrel=1e-10,
        )
        expected_h = expected_s / 3600.0
        assert error_s / 3600.0 < 1e-6 * expected_h
        assert age1_h - age0_h == pytest.approx(expected_h, rel=1e-4)
        # The two looks alone (the temperature linear between them) would miss the bake badly.
        start_c, end_c = dut.temperature_at(t0_s), dut.temperature_at(t1_s)

        def linear_c(t_s: float) -> float:
            return start_c + (end_c - start_c) * (t_s - t0_s) / (t1_s - t0_s)

        linear_h = quad(lambda t_s: arrhenius_af(ea_ev, ref_c, linear_c(t_s)), t0_s, t1_s)[0] / 3600.0
        assert abs(linear_h - expected_h) > 0.5 * expected_h
        assert expected_h > 10 * (t1_s - t0_s) / 3600.0  # the bake was hot: worth many hours at 40 °C
        _run_stage(engine, "back")
        assert drive.state.power_cycles == 2 and drive.state.unsafe_shutdowns == 0
    finally:
        engine.close()


# The lab's side ------------------------------------------------------------------------------


def _lab(clock: VirtualClock) -> Lab:
    config = {
        "chamber": {"ambient_c": 25},
        "supplies": [{"name": "psu1"}],
        "duts": [
            {"slot": 1, "kind": "ssd", "serial": "S1", "supply": "psu1", "channel": 2},
            {"slot": 2, "kind": "dimm", "serial": "D2", "supply": "psu1", "channel": 3},
        ],
    }
    return Lab(clock, 5, config)


def _power(lab: Lab, on: bool) -> None:
    lab.command("psu1", "VOLT 12,(@2)")
    lab.command("psu1", f"OUTP {'ON' if on else 'OFF'},(@2)")


def test_the_drive_sees_a_supply_switch_at_its_time_not_at_its_next_look() -> None:
    clock = VirtualClock()
    lab = _lab(clock)
    device, _ = make_ssd(lab.dut(1), clock, lab.seed)
    lab.attach_device(1, device)
    _power(lab, True)
    clock.sleep(10 * 3600)
    _power(lab, False)
    clock.sleep(5 * 3600)
    lab.snapshot()  # the drive's first look since the switch
    assert device.state.power_on_s == 10 * 3600
    assert device.state.t_sync_s == 15 * 3600


def test_an_over_current_trip_found_after_the_fact_reaches_the_drive_at_its_time() -> None:
    clock = VirtualClock()
    lab = _lab(clock)
    device, _ = make_ssd(lab.dut(1), clock, lab.seed)
    lab.attach_device(1, device)
    lab.command("psu1", "CURR 0.7,(@2)")
    lab.command("psu1", "CURR:PROT:DEL 0.25,(@2)")
    lab.command("psu1", "CURR:PROT ON,(@2)")
    _power(lab, True)
    clock.sleep(3600)
    # 9 W wanted from a 0.7 A limit: the rail sags to 11.2 V, still in the drive's window, and
    # the over-current protection trips a quarter second later.
    lab.dut(1).set_load_w(9.0 - lab.dut(1).idle_w)
    assert device.state.powered
    clock.sleep(10 * 3600)  # nobody looks until the snapshot
    lab.snapshot()
    assert lab.command("psu1", "CURR:PROT:TRIP? (@2)") == "1"
    assert device.state.power_on_s == pytest.approx(3600 + 0.25, abs=1e-9)
    assert not device.state.powered and device.state.incomplete_shutdowns + device.state.plp_starts == 1


def test_temperature_at_answers_the_past_after_the_course_changed() -> None:
    clock = VirtualClock()
    lab = _lab(clock)
    dut = lab.dut(1)
    seen = {}
    _power(lab, True)
    for setpoint_c, wait_s in ((85.0, 1200.0), (40.0, 300.0), (-10.0, 3000.0)):
        lab.command("chamber", f"TEMP, S{setpoint_c:.1f}")
        lab.command("chamber", "MODE, CONSTANT")
        for _ in range(4):
            clock.sleep(wait_s / 4)
            seen[clock.now()] = dut.temperature_c()
        _power(lab, setpoint_c > 0)
    assert {t_s: dut.temperature_at(t_s) for t_s in seen} == pytest.approx(seen, abs=1e-9)
    assert dut.temperature_at(clock.now() + 60.0) != dut.temperature_c()  # the course goes on


def test_the_lab_forgets_its_oldest_changes_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_module, "HISTORY_CHANGES", 8)
    clock = VirtualClock()
    lab = _lab(clock)
    dut = lab.dut(1)
    seen = {}
    for cycle in range(20):
        _power(lab, cycle % 2 == 0)
        lab.command("chamber", f"TEMP, S{30 + cycle:.1f}")
        lab.command("chamber", "MODE, CONSTANT")
        clock.sleep(100.0)
        seen[clock.now()] = dut.temperature_c()
    assert len(lab.chamber.past_pieces) <= 3 * 8
    recent = {t_s: temp_c for t_s, temp_c in seen.items() if t_s > clock.now() - 500.0}
    assert {t_s: dut.temperature_at(t_s) for t_s in recent} == pytest.approx(recent, abs=1e-9)
    with pytest.raises(ValueError, match="temperature history starts at"):
        dut.temperature_at(50.0)


def test_lab_drive_and_module_share_one_lock() -> None:
    clock = VirtualClock()
    lab = _lab(clock)
    device, _ = make_ssd(lab.dut(1), clock, lab.seed)
    assert device.lock is lab.lock is lab.dut(1).lock
    assert make_dimm(lab.dut(2), clock, lab.seed).lock is lab.lock


def test_a_snapshot_while_another_thread_runs_nvme_commands_does_not_deadlock() -> None:
    # Before the drive shared the lab's lock, a command held the drive's lock and asked the lab
    # for power while a snapshot held the lab's lock and asked the drive for its state.
    clock = VirtualClock()
    lab = _lab(clock)
    device, transport = make_ssd(lab.dut(1), clock, lab.seed)
    lab.attach_device(1, device)
    _power(lab, True)
    driver = NvmeDriver(transport)
    failures: list[BaseException] = []

    def commands() -> None:
        try:
            for _ in range(300):
                driver.smart_log()
        except BaseException as exc:
            failures.append(exc)

    def snapshots() -> None:
        try:
            for _ in range(300):
                clock.sleep(1.0)
                lab.snapshot()
                lab.command("psu1", "OUTP ON,(@2)")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for work in (commands, snapshots)]
    for thread in threads:
        thread.start()
    deadline_s = time.monotonic() + 120.0
    for thread in threads:
        thread.join(timeout=max(0.0, deadline_s - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck: lab and drive deadlocked"
    assert failures == []
