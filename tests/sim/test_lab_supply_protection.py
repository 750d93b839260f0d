"""E36300 over-voltage and over-current protection, and supply current following the DUT load.

Driven through the real driver over pyvisa `@py`; virtual time moves only when the test says.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import Lab

SEED = 5
TIMEOUT_MS = 300
IDLE_W = 6.0
RTH_C_PER_W = 2.0
TAU_S = 240.0


def config() -> dict[str, Any]:
    """Return one E36313A feeding one SSD on channel 2 (6 W, 2 °C/W, tau 240 s)."""
    return {
        "supplies": [{"name": "psu1", "model": "E36313A"}],
        "duts": [
            {
                "slot": 1,
                "kind": "ssd",
                "serial": "S1",
                "supply": "psu1",
                "channel": 2,
                "idle_w": IDLE_W,
                "rth_c_per_w": RTH_C_PER_W,
                "thermal_tau_s": TAU_S,
            }
        ],
    }


class Bench:
    """A started lab and a supply driver on a real VISA socket."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.lab = Lab(self.clock, SEED, config())
        self.lab.start()
        self.transport = VisaTransport(self.lab.addresses["psu1"], timeout_ms=TIMEOUT_MS)
        self.psu = KeysightE36300(self.transport)
        self.dut = self.lab.dut(1)

    def power(self, volts: float = 12.0, amps: float = 1.0) -> None:
        self.psu.set_voltage(2, volts)
        self.psu.set_current_limit(2, amps)
        self.psu.set_output(2, True)


@pytest.fixture
def bench() -> Iterator[Bench]:
    bench = Bench()
    yield bench
    bench.psu.close()
    bench.lab.stop()


def test_protection_defaults_after_reset(bench: Bench) -> None:
    assert bench.psu.ovp_level(1) == pytest.approx(6.6)
    assert bench.psu.ovp_level(2) == pytest.approx(27.5)
    assert bench.psu.ocp_enabled(2) is False
    assert bench.psu.ocp_delay(2) == pytest.approx(0.05)
    assert bench.psu.ovp_tripped(2) is False and bench.psu.ocp_tripped(2) is False


def test_raising_the_voltage_past_ovp_trips_and_latches_the_output_off(bench: Bench) -> None:
    bench.psu.set_ovp_level(2, 13.2)
    bench.power()
    assert bench.dut.powered()
    bench.psu.set_voltage(2, 13.5)
    assert bench.psu.ovp_tripped(2) is True
    assert bench.psu.output_on(2) is False
    assert bench.psu.measure_voltage(2) == pytest.approx(0.0, abs=0.005)
    assert not bench.dut.powered()
    bench.psu.set_output(2, True)  # the latch holds the output off
    assert bench.psu.output_on(2) is False
    # Clearing while the cause persists trips again at once; removing it restores the output.
    bench.psu.clear_protection(2)
    assert bench.psu.ovp_tripped(2) is True and bench.psu.output_on(2) is False
    bench.psu.set_voltage(2, 12.0)
    bench.psu.clear_protection(2)
    assert bench.psu.ovp_tripped(2) is False
    assert bench.psu.output_on(2) is True
    assert bench.dut.powered()


def test_lowering_ovp_below_the_output_trips_it(bench: Bench) -> None:
    bench.power()
    bench.psu.set_ovp_level(2, 11.9)
    assert bench.psu.ovp_tripped(2) is True and bench.psu.output_on(2) is False


def test_ovp_watches_the_terminals_so_a_sagging_cc_output_does_not_trip(bench: Bench) -> None:
    bench.power(volts=12.0, amps=0.25)  # 6 W at 12 V wants 0.5 A: CC, the output sags to 6 V
    assert bench.psu.measure_voltage(2) == pytest.approx(0.25 * 12.0**2 / IDLE_W, abs=0.005)
    bench.psu.set_ovp_level(2, 10.0)  # below the setting, above the terminals
    assert bench.psu.ovp_tripped(2) is False and bench.psu.output_on(2) is True


def test_ocp_trips_after_its_delay_in_constant_current_and_the_dut_cools_from_then(bench: Bench) -> None:
    bench.power(amps=1.0)
    bench.clock.advance_to(20 * TAU_S)  # the DUT has settled at air + P·Rth
    assert bench.dut.temperature_c() == pytest.approx(25.0 + IDLE_W * RTH_C_PER_W, abs=1e-6)
    bench.psu.set_ocp_delay(2, 0.1)
    bench.psu.set_ocp_enabled(2, True)
    cc_start_s = bench.clock.now()
    bench.psu.set_current_limit(2, 0.4)  # below the 0.5 A demand: constant current begins
    bench.clock.advance_to(cc_start_s + 0.099)
    assert bench.psu.ocp_tripped(2) is False and bench.psu.output_on(2) is True
    assert bench.psu.measure_current(2) == pytest.approx(0.4, abs=0.001)
    bench.clock.advance_to(cc_start_s + 0.2)
    assert bench.psu.ocp_tripped(2) is True
    assert bench.psu.output_on(2) is False
    assert bench.psu.measure_current(2) == pytest.approx(0.0, abs=0.001)
    # The trip happened at cc_start + delay, not when the test looked: cooling counts from then,
    # starting from the lower power the DUT drew in constant current.
    cc_power_w = IDLE_W * (0.4 * 12.0 / IDLE_W) ** 2
    trip_s = cc_start_s + 0.1
    rise_at_cc = IDLE_W * RTH_C_PER_W
    rise_at_trip = cc_power_w * RTH_C_PER_W + (rise_at_cc - cc_power_w * RTH_C_PER_W) * math.exp(-0.1 / TAU_S)
    bench.clock.advance_to(trip_s + TAU_S)
    assert bench.dut.temperature_c() == pytest.approx(25.0 + rise_at_trip * math.exp(-1.0), abs=1e-6)
    # Raising the limit above the demand and clearing restores the output for good.
    bench.psu.set_current_limit(2, 1.0)
    bench.psu.clear_protection(2)
    bench.clock.sleep(10.0)
    assert bench.psu.output_on(2) is True and bench.psu.ocp_tripped(2) is False
    assert bench.psu.measure_current(2) == pytest.approx(IDLE_W / 12.0, abs=0.001)


def test_clearing_ocp_while_the_overload_persists_trips_again_after_the_delay(bench: Bench) -> None:
    bench.psu.set_ocp_enabled(2, True)
    bench.power(amps=0.3)
    bench.clock.sleep(0.06)
    assert bench.psu.ocp_tripped(2) is True
    bench.psu.clear_protection(2)
    assert bench.psu.output_on(2) is True
    bench.clock.sleep(0.06)
    assert bench.psu.ocp_tripped(2) is True and bench.psu.output_on(2) is False


def test_without_ocp_constant_current_is_held_indefinitely(bench: Bench) -> None:
    bench.power(amps=0.3)
    bench.clock.sleep(1000 * 3600.0)
    assert bench.psu.output_on(2) is True
    assert bench.psu.measure_current(2) == pytest.approx(0.3, abs=0.001)


def test_measured_current_and_heat_follow_the_dut_load(bench: Bench) -> None:
    bench.power(amps=2.0)
    assert bench.psu.measure_current(2) == pytest.approx(IDLE_W / 12.0, abs=0.001)
    bench.clock.advance_to(20 * TAU_S)
    bench.dut.set_load_w(9.0)  # a workload: 15 W in all
    assert bench.psu.measure_current(2) == pytest.approx(15.0 / 12.0, abs=0.001)
    assert bench.dut.power_w() == pytest.approx(15.0)
    start_s = bench.clock.now()
    bench.clock.advance_to(start_s + TAU_S)
    expected_c = 25.0 + IDLE_W * RTH_C_PER_W + 9.0 * RTH_C_PER_W * (1.0 - math.exp(-1.0))
    assert bench.dut.temperature_c() == pytest.approx(expected_c, abs=1e-6)
    with pytest.raises(ValueError, match="must not be negative"):
        bench.dut.set_load_w(-1.0)


def test_a_load_beyond_the_limit_trips_an_armed_ocp(bench: Bench) -> None:
    bench.psu.set_ocp_enabled(2, True)
    bench.power(amps=1.0)
    bench.dut.set_load_w(9.0)  # 1.25 A wanted
    bench.clock.sleep(0.05)
    assert bench.psu.ocp_tripped(2) is True


def test_protection_commands_take_long_forms_and_check_their_ranges(bench: Bench) -> None:
    bench.transport.write("SOURce:VOLTage:PROTection:LEVel 13.0,(@3)")
    bench.transport.write("SOURce:CURRent:PROTection:DELay:TIME 0.3,(@3)")
    bench.transport.write("CURRent:PROTection:STATe MAYBE,(@3)")
    assert bench.transport.query("SYST:ERR?") == '-222,"Data out of range"'
    assert bench.transport.query("SYST:ERR?") == '-224,"Illegal parameter value"'
    assert bench.transport.query("SYST:ERR?") == '+0,"No error"'
    assert bench.transport.query("VOLT:PROT? (@1:3)") == "+6.60000E+00,+2.75000E+01,+1.30000E+01"
    assert bench.transport.query("CURR:PROT:TRIP? (@1,2,3)") == "0,0,0"


def test_reset_clears_the_latches(bench: Bench) -> None:
    bench.power()
    bench.psu.set_ovp_level(2, 5.0)
    assert bench.psu.ovp_tripped(2) is True
    bench.psu.reset()
    assert bench.psu.ovp_tripped(2) is False and bench.psu.ovp_level(2) == pytest.approx(27.5)
