"""The Keysight 34465A in the lab: the real driver over pyvisa `@py` reading wired lab signals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.dmm.keysight_34465a import KeysightTruevolt
from drivers.errors import InstrumentError
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import Lab, LabConfig

SEED = 11
TIMEOUT_MS = 300


def config(**meter: Any) -> dict[str, Any]:
    """Return a supply, two SSDs and a meter wired to slot 1 (rail, series current, case TC)."""
    wiring = {"name": "dmm1", "model": "34465A", "volts": "slot1", "amps": "slot1", "temp": "slot1"}
    wiring.update(meter)
    return {
        "chamber": {"name": "chamber"},
        "supplies": [{"name": "psu1"}],
        "multimeters": [wiring],
        "duts": [
            {"slot": 1, "kind": "ssd", "serial": "S1", "supply": "psu1", "channel": 2, "idle_w": 6.0},
            {"slot": 2, "kind": "ssd", "serial": "S2", "supply": "psu1", "channel": 3, "idle_w": 5.0},
        ],
    }


class Bench:
    """A started lab with supply and meter drivers on real VISA sockets."""

    def __init__(self, **meter: Any) -> None:
        self.clock = VirtualClock()
        self.lab = Lab(self.clock, SEED, config(**meter))
        self.lab.start()
        self.psu = KeysightE36300(VisaTransport(self.lab.addresses["psu1"], timeout_ms=TIMEOUT_MS))
        self.transport = VisaTransport(self.lab.addresses["dmm1"], timeout_ms=TIMEOUT_MS)
        self.dmm = KeysightTruevolt(self.transport)

    def close(self) -> None:
        self.psu.close()
        self.dmm.close()
        self.lab.stop()

    def power(self, channel: int, volts: float = 12.0) -> None:
        self.psu.set_voltage(channel, volts)
        self.psu.set_current_limit(channel, 2.0)
        self.psu.set_output(channel, True)


@pytest.fixture
def bench() -> Iterator[Bench]:
    bench = Bench()
    yield bench
    bench.close()


def test_meter_identifies_as_a_34465a(bench: Bench) -> None:
    manufacturer, model, serial, firmware = bench.dmm.identify().split(",")
    assert (manufacturer, model) == ("Keysight Technologies", "34465A")
    assert serial.startswith("MY") and firmware


def test_meter_reads_the_dut_rail_current_and_case_temperature(bench: Bench) -> None:
    assert bench.dmm.measure_dc_voltage() == pytest.approx(0.0, abs=1e-4)
    assert bench.dmm.measure_dc_current() == pytest.approx(0.0, abs=1e-5)
    bench.power(2, volts=12.3)
    assert bench.dmm.measure_dc_voltage() == pytest.approx(12.3, abs=1e-4)
    assert bench.dmm.measure_dc_current() == pytest.approx(bench.lab.dut(1).current_a(), abs=1e-5)
    bench.clock.advance_to(3600.0)
    assert bench.dmm.measure_temperature() == pytest.approx(bench.lab.dut(1).temperature_c(), abs=0.1)
    assert bench.dmm.measure_temperature() > 30.0  # 6 W × ~2 °C/W above the air
    # The meter's 6½ digits see more than the supply's readback: its noise is microvolts.
    readings = []
    for _ in range(5):
        bench.clock.sleep(1.0)
        readings.append(bench.dmm.measure_dc_voltage())
    assert max(readings) - min(readings) < 1e-4
    assert len(set(readings)) > 1


def test_configure_then_read_and_init_fetch(bench: Bench) -> None:
    bench.power(2)
    bench.dmm.configure("dc_current")
    assert bench.dmm.read() == pytest.approx(0.5, abs=1e-4)
    bench.transport.write("INIT")
    assert float(bench.transport.query("FETC?")) == pytest.approx(0.5, abs=1e-4)
    bench.transport.write("CONF:VOLT:DC 1")  # 1 V range, 12 V present: overload
    assert bench.transport.query("READ?") == "+9.90000000E+37"
    bench.transport.write("CONF:VOLT")
    bench.transport.write("FETCh?")  # no INIT since the last configure
    assert bench.transport.query("SYST:ERR?") == '-230,"Data corrupt or stale"'


def test_an_open_temperature_input_overloads(bench: Bench) -> None:
    bench.transport.write("CONF:TEMP FRTD")  # only a thermocouple is wired
    assert bench.transport.query("READ?") == "+9.90000000E+37"
    unwired = Bench(temp=None)
    try:
        with pytest.raises(InstrumentError, match="overload"):
            unwired.dmm.measure_temperature()
    finally:
        unwired.close()


def test_meter_inputs_can_be_wired_to_a_channel_or_the_chamber_air() -> None:
    bench = Bench(volts="psu1:3", amps=None, temp="chamber")
    try:
        bench.power(3, volts=11.5)
        assert bench.dmm.measure_dc_voltage() == pytest.approx(11.5, abs=1e-4)
        assert bench.dmm.measure_dc_current() == pytest.approx(0.0, abs=1e-5)  # nothing in series
        assert bench.dmm.measure_temperature() == pytest.approx(bench.lab.chamber.air_temp_c(), abs=0.1)
    finally:
        bench.close()


def test_meter_configuration_survives_snapshot_and_restore(bench: Bench) -> None:
    bench.power(2)
    bench.dmm.configure("dc_current")
    bench.clock.advance_to(50.0)
    state = json.loads(json.dumps(bench.lab.snapshot()))
    expected = bench.dmm.read()
    resumed = Lab(VirtualClock(50.0), SEED, config())
    resumed.restore(state)
    assert float(resumed.command("dmm1", "READ?") or "nan") == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "34401A"}, r"lab\.multimeters\[0\]\.model: unknown model"),
        ({"volts": "slot9"}, r"lab\.multimeters\[0\]\.volts: no DUT in slot 9"),
        ({"volts": "psu1:4"}, r"lab\.multimeters\[0\]\.volts: no supply channel"),
        ({"amps": "psu1:2"}, r"lab\.multimeters\[0\]\.amps: 'psu1:2' is not slot<N>"),
        ({"temp": "oven"}, r"lab\.multimeters\[0\]\.temp: 'oven' is not slot<N> or chamber"),
        ({"ohms": "slot1"}, r"lab\.multimeters\[0\]\.ohms: unknown key"),
        ({"name": "psu1"}, r"instrument names must be unique"),
    ],
)
def test_bad_meter_configs_name_the_key_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabConfig.from_dict(config(**change))
