"""The chamber's closed-form dynamics: ramp, lag, overshoot, alarms, and the DUTs' thermal lag.

Expected trajectories come from an independent numerical integration of the stated models
(scipy.signal.lsim of the second-order air loop driven by the ramped setpoint, and of the DUT's
first-order lag), not from the lab's own formulas.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import signal

from drivers.chamber.espec import EspecChamber
from drivers.transport.serial import SerialTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import LOWER_ALARM, UPPER_ALARM, Lab, LabConfig, loop_parameters

SEED = 77
RAMP_C_PER_MIN = 5.0
RATE_C_PER_S = RAMP_C_PER_MIN / 60.0
LAG_S = 10.0
OVERSHOOT_PCT = 20.0
PASSIVE_TAU_S = 1800.0
AMBIENT_C = 25.0
STEP_S = 0.05  # integration grid


def config(**chamber: Any) -> dict[str, Any]:
    """Return a lab with the test chamber, one supply and one SSD (rth 2 °C/W, tau 240 s)."""
    settings = {
        "ramp_c_per_min": RAMP_C_PER_MIN,
        "lag_s": LAG_S,
        "overshoot_pct": OVERSHOOT_PCT,
        "passive_tau_s": PASSIVE_TAU_S,
        "ambient_c": AMBIENT_C,
    }
    settings.update(chamber)
    return {
        "chamber": settings,
        "supplies": [{"name": "psu1"}],
        "duts": [
            {
                "slot": 1,
                "kind": "ssd",
                "serial": "S1",
                "supply": "psu1",
                "channel": 2,
                "idle_w": 6.0,
                "rth_c_per_w": 2.0,
                "thermal_tau_s": 240.0,
            }
        ],
    }


def lab_at(start_s: float = 0.0, **chamber: Any) -> tuple[Lab, VirtualClock]:
    """Return an unstarted lab (commands go in-process) and its clock."""
    clock = VirtualClock(start_s)
    return Lab(clock, SEED, config(**chamber)), clock


def run_to(lab: Lab, setpoint_c: float) -> None:
    """Set a setpoint and run constant mode, through the controller's dialect."""
    assert lab.command("chamber", f"TEMP, S{setpoint_c:.1f}") == f"OK:TEMP, S{setpoint_c:.1f}"
    assert lab.command("chamber", "MODE, CONSTANT") == "OK:MODE, CONSTANT"


def integrate_air(start_c: float, target_c: float, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (t, air) integrated numerically: ramped setpoint through the second-order loop."""
    zeta, omega_n = loop_parameters(LAG_S, OVERSHOOT_PCT)
    t = np.arange(0.0, duration_s + STEP_S / 2, STEP_S)
    ramp_s = abs(target_c - start_c) / RATE_C_PER_S
    working = np.where(t < ramp_s, start_c + math.copysign(RATE_C_PER_S, target_c - start_c) * t, target_c)
    loop = signal.lti([omega_n**2], [1.0, 2.0 * zeta * omega_n, omega_n**2])
    _, air, _ = signal.lsim(loop, working - start_c, t)
    return t, air + start_c


def sample(lab: Lab, clock: VirtualClock, times: np.ndarray, read: Any) -> np.ndarray:
    """Return `read()` at each time, advancing the clock."""
    values = []
    for t_s in times:
        clock.advance_to(float(t_s))
        values.append(read())
    return np.array(values)


def test_loop_parameters_follow_the_stated_lag_and_overshoot() -> None:
    zeta, omega_n = loop_parameters(LAG_S, OVERSHOOT_PCT)
    assert math.exp(-math.pi * zeta / math.sqrt(1 - zeta**2)) == pytest.approx(OVERSHOOT_PCT / 100)
    assert 2 * zeta / omega_n == pytest.approx(LAG_S)


def test_ramp_lag_and_overshoot_match_a_numerical_integration() -> None:
    lab, clock = lab_at()
    run_to(lab, 85.0)
    t, expected = integrate_air(25.0, 85.0, 1500.0)
    ramp_s = 60.0 / RATE_C_PER_S  # the ramp takes |Δ| / rate
    # During the ramp the air trails it by rate × lag ...
    clock.advance_to(ramp_s - 100.0)
    assert lab.chamber.air_temp_c() == pytest.approx(
        85.0 - 100.0 * RATE_C_PER_S - RATE_C_PER_S * LAG_S, abs=1e-4
    )
    # ... then overshoots once, by what the integration says, and settles in two minutes.
    peak = int(np.argmax(expected))
    assert t[peak] > ramp_s
    assert 0.2 < expected[peak] - 85.0 < 0.5  # "a small overshoot"
    clock.advance_to(float(t[peak]))
    assert lab.chamber.air_temp_c() == pytest.approx(expected[peak], abs=1e-3)
    clock.advance_to(ramp_s + 120.0)
    assert abs(lab.chamber.air_temp_c() - 85.0) < 0.01
    # And the whole trajectory agrees with the integration.
    fresh, fresh_clock = lab_at()
    run_to(fresh, 85.0)
    every = slice(0, None, 200)  # every 10 s
    got = sample(fresh, fresh_clock, t[every], fresh.chamber.air_temp_c)
    assert np.max(np.abs(got - expected[every])) < 1e-3


def test_a_near_step_shows_the_loops_step_overshoot() -> None:
    lab, clock = lab_at(ramp_c_per_min=1e6)  # the ramp takes 0.6 ms: a step for the loop
    run_to(lab, 35.0)
    times = np.arange(0.0, 60.0, 0.01)
    peak_c = float(np.max(sample(lab, clock, times, lab.chamber.air_temp_c)))
    assert (peak_c - 35.0) / 10.0 == pytest.approx(OVERSHOOT_PCT / 100, abs=0.002)


def test_the_air_follows_the_controller_not_the_query_times() -> None:
    queried, clock_q = lab_at()
    quiet, clock_s = lab_at()
    for lab in (queried, quiet):
        run_to(lab, 70.0)
    for t_s in range(0, 700, 7):
        clock_q.advance_to(float(t_s))
        queried.command("chamber", "TEMP?")
    clock_q.advance_to(700.0)
    clock_s.advance_to(700.0)
    assert queried.chamber.air_temp_c() == quiet.chamber.air_temp_c()


def test_an_overshoot_past_the_upper_alarm_stops_the_controller_when_it_happens() -> None:
    lab, clock = lab_at()
    lab.start()
    chamber = EspecChamber(SerialTransport(lab.addresses["chamber"], timeout_s=0.3))
    try:
        upper_c = 85.2
        chamber.set_alarm_limits(upper_c, -45.0)
        assert chamber.read_alarm_limits() == (upper_c, -45.0)
        chamber.set_temperature(85.0)
        t, expected = integrate_air(25.0, 85.0, 1200.0)
        crossing_s = float(t[np.argmax(expected > upper_c)])
        clock.advance_to(crossing_s - 1.0)
        assert chamber.read_alarms() == [] and chamber.read_mode() == "CONSTANT"
        clock.advance_to(crossing_s + 1.0)
        assert chamber.read_alarms() == [UPPER_ALARM]
        assert chamber.read_mode() == "STANDBY"
        assert lab.chamber.alarm is not None
        alarm_s = lab.chamber.alarm[0]
        assert alarm_s == pytest.approx(crossing_s, abs=2 * STEP_S)
        # Heat and refrigeration off: the air relaxes from the alarm limit to ambient.
        clock.advance_to(alarm_s + PASSIVE_TAU_S)
        assert lab.chamber.air_temp_c() == pytest.approx(25.0 + (upper_c - 25.0) * math.exp(-1.0), abs=1e-6)
        assert lab.command("chamber", "MON?").endswith(",STANDBY,1")
        # A run command acknowledges the alarm and restarts control.
        chamber.set_temperature(25.0)
        assert chamber.read_alarms() == [] and chamber.read_mode() == "CONSTANT"
        clock.sleep(3600.0)
        assert lab.chamber.air_temp_c() == pytest.approx(25.0, abs=1e-6)
    finally:
        chamber.close()
        lab.stop()


def test_an_undershoot_past_the_lower_alarm_trips_the_lower_alarm() -> None:
    lab, clock = lab_at()
    run_to(lab, 85.0)
    clock.advance_to(3600.0)
    assert lab.command("chamber", "TEMP, S60.0 L59.8") == "OK:TEMP, S60.0 L59.8"
    t, expected = integrate_air(85.0, 60.0, 1200.0)
    crossing_s = 3600.0 + float(t[np.argmax(expected < 59.8)])
    clock.advance_to(crossing_s + 1.0)
    assert lab.command("chamber", "ALARM?") == f"1,{LOWER_ALARM}"
    assert lab.chamber.alarm is not None
    assert lab.chamber.alarm[0] == pytest.approx(crossing_s, abs=2 * STEP_S)


def test_limits_the_air_is_already_outside_trip_at_once_and_a_run_command_retrips() -> None:
    lab, clock = lab_at()
    run_to(lab, 85.0)
    clock.advance_to(3600.0)
    assert lab.command("chamber", "TEMP, S80.0 H84.0") == "OK:TEMP, S80.0 H84.0"
    assert lab.chamber.alarm == (3600.0, UPPER_ALARM)
    assert lab.command("chamber", "MODE?") == "STANDBY"
    clock.sleep(10.0)
    assert lab.command("chamber", "MODE, CONSTANT") == "OK:MODE, CONSTANT"
    assert lab.chamber.alarm == (3610.0, UPPER_ALARM)  # still above 84 °C: stopped again
    clock.advance_to(3610.0 + PASSIVE_TAU_S)  # passive cooling below the limit ...
    assert lab.chamber.air_temp_c() < 84.0
    assert lab.command("chamber", "MODE, CONSTANT") == "OK:MODE, CONSTANT"  # ... then it runs
    assert lab.command("chamber", "ALARM?") == "0"
    clock.sleep(3600.0)
    assert lab.chamber.air_temp_c() == pytest.approx(80.0, abs=1e-6)


def test_setpoints_outside_the_alarm_band_are_refused() -> None:
    lab, _ = lab_at()
    assert lab.command("chamber", "TEMP, S40.0 H35.0") == "NA:DATA OUT OF RANGE"
    assert lab.command("chamber", "TEMP, S200.0") == "NA:DATA OUT OF RANGE"


def test_a_dut_lags_the_air_plus_its_dissipation_like_a_first_order_system() -> None:
    lab, clock = lab_at()
    for line in ("VOLT 12,(@2)", "CURR 2,(@2)", "OUTP ON,(@2)"):
        lab.command("psu1", line)
    run_to(lab, 85.0)
    dut = lab.dut(1)
    t, air = integrate_air(25.0, 85.0, 2400.0)
    drive = air + dut.idle_w * dut.rth_c_per_w
    _, expected, _ = signal.lsim(signal.lti([1.0], [dut.thermal_tau_s, 1.0]), drive - 25.0, t)
    expected += 25.0
    every = slice(0, None, 600)  # every 30 s
    got = sample(lab, clock, t[every], dut.temperature_c)
    assert np.max(np.abs(got - expected[every])) < 2e-3


def test_a_2000_hour_bake_is_one_evaluation_and_ends_exactly_at_the_bake_temperature() -> None:
    lab, clock = lab_at()
    run_to(lab, 125.0)
    clock.advance_to(2000 * 3600.0)
    assert lab.chamber.air_temp_c() == pytest.approx(125.0, abs=1e-9)
    assert lab.dut(1).temperature_c() == pytest.approx(125.0, abs=1e-9)
    assert len(lab.chamber.pieces) == 2  # ramp, then hold: nothing accumulates with time


def test_snapshot_and_restore_carry_the_trajectory_and_a_pending_alarm() -> None:
    original, clock = lab_at()
    original.command("chamber", "TEMP, H85.2")
    run_to(original, 85.0)
    clock.advance_to(500.0)
    assert original.chamber.alarm is not None and original.chamber.alarm[0] > 500.0
    state = json.loads(json.dumps(original.snapshot()))
    resumed, clock_r = lab_at(start_s=500.0)
    resumed.restore(state)
    for t_s in (500.0, 700.0, 900.0, 5000.0):
        clock.advance_to(t_s)
        clock_r.advance_to(t_s)
        assert resumed.chamber.air_temp_c() == original.chamber.air_temp_c()
        assert resumed.dut(1).temperature_c() == original.dut(1).temperature_c()
        assert resumed.command("chamber", "ALARM?") == original.command("chamber", "ALARM?")
    assert resumed.chamber.alarm == original.chamber.alarm


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lag_s": 0}, r"lab\.chamber\.lag_s: must be positive"),
        ({"passive_tau_s": -1}, r"lab\.chamber\.passive_tau_s: must be positive"),
        ({"overshoot_pct": 0}, r"lab\.chamber\.overshoot_pct: must be in \(0, 50\]"),
        ({"overshoot_pct": 60}, r"lab\.chamber\.overshoot_pct"),
        ({"lag_s": "fast"}, r"lab\.chamber\.lag_s: expected a number"),
    ],
)
def test_bad_chamber_dynamics_name_the_key_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabConfig.from_dict(config(**change))
