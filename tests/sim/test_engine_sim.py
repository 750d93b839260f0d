"""The engine in-process on the simulated lab: safe state is physical, and runs are deterministic."""

from __future__ import annotations

from pathlib import Path

from qualify.engine.run import Engine, RunOptions
from qualify.resources import plans_dir, sim_station_path

SMOKE = plans_dir() / "common" / "station_smoke.yaml"


def _options(tmp_path: Path, seed: int = 5) -> RunOptions:
    return RunOptions(
        plan_path=str(SMOKE), station_path=str(sim_station_path()), db_path=str(tmp_path / "q.db"), seed=seed
    )


def test_abort_switches_supplies_off_and_returns_chamber_to_ambient(tmp_path: Path) -> None:
    engine = Engine.start(_options(tmp_path))
    try:
        for ref in engine.items[:6]:  # into the hot stage: chamber at 50 °C, DUTs powered
            engine.run_item(ref)
        lab = engine.station.lab
        assert lab.chamber.snapshot()["setpoint_c"] == 50.0
        assert any(ch["on"] for ch in lab.supplies["psu1"].snapshot()["channels"].values())
        engine.abort("operator pressed Ctrl-C")
        outcome = engine.finish()
        assert outcome.status == "aborted" and outcome.exit_code == 3
        for psu in lab.supplies.values():
            assert not any(ch["on"] for ch in psu.snapshot()["channels"].values())
        assert lab.chamber.snapshot()["setpoint_c"] == 25.0
        assert all(not dut.powered() for dut in lab.duts())
        # The drives were told before their power went: an abort is not an unsafe shutdown.
        assert [lab.device(d.slot).health().unsafe_shutdowns for d in lab.duts()] == [0, 0, 0, 0]
    finally:
        engine.close()


def _run_all(tmp_path: Path, seed: int) -> list[tuple[object, ...]]:
    engine = Engine.start(_options(tmp_path, seed))
    try:
        for ref in engine.items:
            if engine.should_run(ref):
                engine.run_item(ref)
        engine.finish()
        return [
            tuple(r.values())
            for r in engine.store.rows(
                "SELECT s.dut_serial, s.stage, s.name, s.t_start, m.name, m.value FROM measurements m "
                "JOIN steps s ON s.id = m.step_id ORDER BY s.seq, m.name"
            )
        ]
    finally:
        engine.close()


def test_same_seed_same_readings_other_seed_other_readings(tmp_path: Path) -> None:
    first = _run_all(tmp_path / "a", seed=21)
    again = _run_all(tmp_path / "b", seed=21)
    other = _run_all(tmp_path / "c", seed=22)
    assert first == again
    assert len(first) == len(other) and first != other


def test_equivalent_hold_bakes_for_the_arrhenius_time(tmp_path: Path) -> None:
    # JESD218 enterprise: 3 months (2190 h) at 40 °C; at 66 °C and 1.1 eV that is 2190 / 22.76 h.
    plan = tmp_path / "bake.yaml"
    plan.write_text(
        """spec: qualify.plan/1
name: bake
version: "1"
applies_to: ssd
telemetry: {interval_s: 3600}
stages:
  - name: bake
    environment:
      chamber: {temp_c: 66, tolerance_c: 1.0}
      dut_power: "off"
      hold_equivalent: {hours: 2190, temp_c: 40, ea_ev: 1.1}
"""
    )
    from qualify.stats import arrhenius_af

    options = RunOptions(
        plan_path=str(plan), station_path=str(sim_station_path()), db_path=str(tmp_path / "q.db")
    )
    engine = Engine.start(options)
    try:
        (ref,) = engine.items
        t0 = engine.clock.now()
        engine.run_item(ref)
        hold_h = 2190 / arrhenius_af(1.1, 40, 66)
        assert 96.0 < hold_h < 96.5
        ramp_s = (66 - 25) / 5.0 * 60
        # The chamber poll (60 s at this plan's hourly telemetry) bounds how late "reached" is seen.
        assert abs((engine.clock.now() - t0) - (ramp_s + hold_h * 3600)) < 60
        rows = engine.store.rows("SELECT name, value FROM measurements WHERE name = 'equivalent_hold_h'")
        assert abs(rows[0]["value"] - hold_h) < 1e-9
        assert all(not d.powered() for d in engine.station.lab.duts())
        engine.finish()
    finally:
        engine.close()
