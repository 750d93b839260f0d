"""The real drivers over their real transports against the simulated lab.

Supplies are reached with pyvisa `@py` over loopback TCP, the chamber with pyserial over a pty;
time is a VirtualClock that only the test advances. The chamber air trails its ramp by
rate × lag and settles within a couple of minutes of the ramp's end (tests/sim/test_lab_chamber.py
checks the dynamics against a numerical integration).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.chamber.espec import EspecChamber
from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.transport.serial import SerialTransport
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from sim_instruments import noise
from sim_instruments.lab import Lab, LabConfig
from sim_instruments.servers import TcpLineServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 1234
TIMEOUT_MS = 300
RAMP_C_PER_MIN = 5.0
RATE_C_PER_S = RAMP_C_PER_MIN / 60.0
LAG_S = 10.0
PASSIVE_TAU_S = 1800.0
TRAIL_C = RATE_C_PER_S * LAG_S  # how far the air trails a ramp
SETTLE_S = 120.0  # ringing after a 5 °C/min ramp is below 0.01 °C two minutes after its end


def lab_config(**extra: Any) -> dict[str, Any]:
    """Return a small lab: one chamber, one E36313A, an SSD and a DIMM on channel 2 and 3."""
    config: dict[str, Any] = {
        "chamber": {
            "name": "chamber",
            "ramp_c_per_min": RAMP_C_PER_MIN,
            "lag_s": LAG_S,
            "overshoot_pct": 20.0,
            "passive_tau_s": PASSIVE_TAU_S,
        },
        "supplies": [{"name": "psu1", "model": "E36313A"}],
        "duts": [
            {"slot": 1, "kind": "ssd", "serial": "SSD001", "supply": "psu1", "channel": 2},
            {"slot": 2, "kind": "dimm", "serial": "DIMM001", "supply": "psu1", "channel": 3},
        ],
    }
    config.update(extra)
    return config


def server_threads() -> list[threading.Thread]:
    """Return the live threads that belong to line servers."""
    return [t for t in threading.enumerate() if t.name.startswith(("TcpLineServer", "PtyLineServer"))]


class Bench:
    """A started lab with drivers connected over real transports; closes everything."""

    def __init__(self, config: dict[str, Any], seed: int = SEED, start_s: float = 0.0) -> None:
        self.clock = VirtualClock(start_s)
        self.lab = Lab(self.clock, seed, config)
        self.addresses = self.lab.start()
        self.psu = KeysightE36300(VisaTransport(self.addresses["psu1"], timeout_ms=TIMEOUT_MS))
        self.chamber = EspecChamber(SerialTransport(self.addresses["chamber"], timeout_s=TIMEOUT_MS / 1000))

    def close(self) -> None:
        self.psu.close()
        self.chamber.close()
        self.lab.stop()

    def power_channel(self, channel: int, volts: float = 12.0, amps: float = 2.0) -> None:
        self.psu.set_voltage(channel, volts)
        self.psu.set_current_limit(channel, amps)
        self.psu.set_output(channel, True)


@pytest.fixture
def bench() -> Iterator[Bench]:
    before = set(server_threads())
    bench = Bench(lab_config())
    yield bench
    bench.close()
    assert set(server_threads()) <= before, "lab.stop() left server threads running"


def test_supply_identifies_over_a_visa_socket(bench: Bench) -> None:
    assert bench.addresses["psu1"].startswith("TCPIP::127.0.0.1::")
    idn = bench.psu.identify()
    manufacturer, model, serial, firmware = idn.split(",")
    assert (manufacturer, model) == ("Keysight Technologies", "E36313A")
    assert serial.startswith("MY") and len(serial) == 10
    assert firmware


def test_a_plain_pyvisa_client_gets_the_idn_reply(bench: Bench) -> None:
    import pyvisa

    manager = pyvisa.ResourceManager("@py")
    try:
        resource = manager.open_resource(
            bench.addresses["psu1"], read_termination="\n", write_termination="\n", timeout=2000
        )
        reply = resource.query("*IDN?")
        resource.close()
    finally:
        manager.close()
    assert reply.startswith("Keysight Technologies,E36313A,MY")


def test_set_and_measure_a_supply_channel(bench: Bench) -> None:
    bench.power_channel(2, volts=12.0, amps=1.5)
    assert bench.psu.voltage_setpoint(2) == 12.0
    assert bench.psu.current_limit(2) == 1.5
    assert bench.psu.output_on(2) is True
    assert bench.psu.output_on(1) is False
    assert bench.psu.measure_voltage(2) == pytest.approx(12.0, abs=0.005)
    ssd = bench.lab.dut(1)
    assert bench.psu.measure_current(2) == pytest.approx(ssd.idle_w / 12.0, abs=0.001)


def test_dut_current_follows_supply_voltage_and_output(bench: Bench) -> None:
    ssd = bench.lab.dut(1)
    bench.psu.set_voltage(2, 12.0)
    assert not ssd.powered()
    assert bench.psu.measure_current(2) == pytest.approx(0.0, abs=0.001)

    bench.psu.set_output(2, True)
    assert ssd.powered()
    assert ssd.power_w() == ssd.idle_w
    at_12v = bench.psu.measure_current(2)
    assert at_12v == pytest.approx(ssd.idle_w / 12.0, abs=0.001)

    bench.psu.set_voltage(2, 13.0)
    at_13v = bench.psu.measure_current(2)
    assert at_13v == pytest.approx(ssd.idle_w / 13.0, abs=0.001)
    assert at_13v < at_12v

    bench.psu.set_voltage(2, 10.0)  # below the ±10 % window around 12 V
    assert not ssd.powered()
    assert bench.psu.measure_current(2) == pytest.approx(0.0, abs=0.001)

    bench.psu.set_voltage(2, 12.0)
    bench.psu.set_output(2, False)
    assert not ssd.powered()
    assert bench.psu.measure_voltage(2) == pytest.approx(0.0, abs=0.005)


def test_a_current_limit_below_the_demand_puts_the_channel_in_cc(bench: Bench) -> None:
    ssd = bench.lab.dut(1)
    bench.power_channel(2, volts=12.0, amps=0.2)
    assert ssd.idle_w / 12.0 > 0.2
    assert bench.psu.measure_current(2) == pytest.approx(0.2, abs=0.001)
    assert bench.psu.measure_voltage(2) < 11.0
    assert ssd.current_a() == pytest.approx(0.2)
    assert ssd.power_w() < ssd.idle_w
    assert not ssd.powered()


def test_each_dut_draws_from_its_own_channel(bench: Bench) -> None:
    bench.power_channel(3)
    assert bench.lab.dut(2).powered()
    assert not bench.lab.dut(1).powered()
    assert bench.psu.measure_current(3) == pytest.approx(bench.lab.dut(2).idle_w / 12.0, abs=0.001)
    assert bench.psu.measure_current(2) == pytest.approx(0.0, abs=0.001)


def test_chamber_identifies_over_a_pty(bench: Bench) -> None:
    assert bench.addresses["chamber"].startswith("/dev/")
    assert bench.chamber.identify() == "ESPEC,SCP220,0,1.22"
    assert bench.chamber.read_mode() == "STANDBY"
    assert bench.chamber.read_alarms() == []


def test_chamber_ramp_takes_the_setpoint_step_over_the_ramp_rate(bench: Bench) -> None:
    assert bench.chamber.read_temperature() == pytest.approx(25.0, abs=0.15)
    bench.chamber.set_temperature(85.0)
    assert bench.chamber.read_setpoint() == 85.0
    assert bench.chamber.read_mode() == "CONSTANT"
    ramp_s = (85.0 - 25.0) / RAMP_C_PER_MIN * 60.0  # 720 s: |Δ| / ramp rate

    # Mid-ramp the air runs parallel to the ramp, trailing it by rate × lag.
    bench.clock.advance_to(ramp_s / 2)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(55.0 - TRAIL_C, abs=1e-4)
    assert bench.chamber.read_temperature() == pytest.approx(55.0 - TRAIL_C, abs=0.15)
    bench.clock.advance_to(ramp_s)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(85.0 - TRAIL_C, abs=1e-4)
    # Then the lag settles: within 0.01 °C two minutes later, and exact after an hour.
    bench.clock.advance_to(ramp_s + SETTLE_S)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(85.0, abs=0.01)
    assert bench.chamber.read_temperature() == pytest.approx(85.0, abs=0.15)
    bench.clock.advance_to(ramp_s + 3600.0)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(85.0, abs=1e-9)

    bench.chamber.set_temperature(-40.0)
    start_s = bench.clock.now()
    down_s = (85.0 + 40.0) / RAMP_C_PER_MIN * 60.0
    bench.clock.advance_to(start_s + down_s - 60.0)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(-35.0 + TRAIL_C, abs=1e-4)
    bench.clock.advance_to(start_s + down_s + SETTLE_S)
    assert bench.chamber.read_temperature() == pytest.approx(-40.0, abs=0.15)


def test_a_setpoint_change_mid_ramp_starts_from_the_present_air_temperature(bench: Bench) -> None:
    bench.chamber.set_temperature(85.0)
    bench.clock.advance_to(360.0)
    air_c = bench.lab.chamber.air_temp_c()
    assert air_c == pytest.approx(55.0 - TRAIL_C, abs=1e-4)
    bench.chamber.set_temperature(25.0)
    # The new ramp starts at the present air, not at the old setpoint nor at 55 °C, and takes
    # (air − 25) / rate; 200 s in, the reversal has settled and the air trails the new ramp.
    bench.clock.advance_to(360.0 + 200.0)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(air_c - 200.0 * RATE_C_PER_S + TRAIL_C, abs=1e-3)
    bench.clock.advance_to(360.0 + (air_c - 25.0) / RATE_C_PER_S + SETTLE_S)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(25.0, abs=0.01)


def test_standby_and_safe_state_return_the_air_to_ambient(bench: Bench) -> None:
    bench.chamber.set_temperature(65.0)
    bench.clock.advance_to(480.0 + SETTLE_S)
    stopped_c = bench.lab.chamber.air_temp_c()
    assert stopped_c == pytest.approx(65.0, abs=0.01)
    bench.chamber.standby()
    assert bench.chamber.read_mode() == "STANDBY"
    # Controller stopped: the air relaxes to ambient with the chamber's passive time constant.
    bench.clock.sleep(600.0)
    expected_c = 25.0 + (stopped_c - 25.0) * math.exp(-600.0 / PASSIVE_TAU_S)
    assert bench.lab.chamber.air_temp_c() == pytest.approx(expected_c, abs=1e-9)
    bench.chamber.safe_state()
    assert bench.chamber.read_mode() == "CONSTANT"
    assert bench.chamber.read_setpoint() == 25.0
    bench.clock.sleep(3600.0)
    assert bench.chamber.read_temperature() == pytest.approx(25.0, abs=0.15)


def test_the_controller_rejects_an_out_of_range_setpoint(bench: Bench) -> None:
    # The driver's range is wider than this controller's: the NA reply must surface.
    wide = EspecChamber(
        SerialTransport(bench.addresses["chamber"], timeout_s=TIMEOUT_MS / 1000), max_temp_c=180.0
    )
    try:
        with pytest.raises(InstrumentError, match="DATA OUT OF RANGE"):
            wide.set_temperature(170.0)
    finally:
        wide.close()


def test_dut_temperature_is_chamber_air_plus_power_times_rth(bench: Bench) -> None:
    ssd, dimm = bench.lab.dut(1), bench.lab.dut(2)
    bench.chamber.set_temperature(85.0)
    bench.clock.advance_to(3600.0)
    assert ssd.temperature_c() == pytest.approx(85.0, abs=1e-3)  # unpowered: at air temperature
    bench.power_channel(2)
    bench.power_channel(3)
    # First-order lag: no jump at power-on, 1 − 1/e of the rise after one time constant.
    assert ssd.temperature_c() == pytest.approx(85.0, abs=1e-3)
    bench.clock.sleep(ssd.thermal_tau_s)
    rise_c = ssd.idle_w * ssd.rth_c_per_w
    assert ssd.temperature_c() == pytest.approx(85.0 + rise_c * (1.0 - math.exp(-1.0)), abs=1e-3)
    bench.clock.advance_to(3600.0 + 20.0 * ssd.thermal_tau_s)
    assert ssd.temperature_c() == pytest.approx(85.0 + rise_c, abs=1e-6)
    assert dimm.temperature_c() == pytest.approx(85.0 + dimm.idle_w * dimm.rth_c_per_w, abs=1e-6)
    measured_w = bench.psu.measure_voltage(2) * bench.psu.measure_current(2)
    air_c = bench.chamber.read_temperature()
    assert ssd.temperature_c() == pytest.approx(air_c + measured_w * ssd.rth_c_per_w, abs=0.3)


def test_no_reply_fault_times_out_the_supply() -> None:
    config = lab_config(faults=[{"target": "psu1", "kind": "no_reply", "at_s": 100.0}])
    bench = Bench(config)
    try:
        bench.power_channel(2)
        bench.clock.advance_to(99.0)
        assert bench.psu.measure_voltage(2) == pytest.approx(12.0, abs=0.005)
        bench.clock.advance_to(100.0)
        with pytest.raises(InstrumentTimeout, match=bench.addresses["psu1"]):
            bench.psu.measure_voltage(2)
        with pytest.raises(InstrumentTimeout):
            bench.psu.identify()
        # The chamber on its own link is unaffected.
        assert bench.chamber.read_mode() == "STANDBY"
    finally:
        bench.close()


def test_no_reply_fault_times_out_the_chamber() -> None:
    bench = Bench(lab_config(faults=[{"target": "chamber", "kind": "no_reply", "at_s": 10.0}]))
    try:
        assert bench.chamber.read_temperature() == pytest.approx(25.0, abs=0.15)
        bench.clock.advance_to(10.0)
        with pytest.raises(InstrumentTimeout, match="no reply to 'TEMP\\?'"):
            bench.chamber.read_temperature()
        assert bench.psu.identify().startswith("Keysight")
    finally:
        bench.close()


def test_garbled_fault_gives_protocol_errors() -> None:
    faults = [
        {"target": "psu1", "kind": "garbled", "at_s": 5.0},
        {"target": "chamber", "kind": "garbled", "at_s": 5.0},
    ]
    bench = Bench(lab_config(faults=faults))
    try:
        bench.clock.advance_to(5.0)
        with pytest.raises(ProtocolError):
            bench.psu.measure_voltage(2)
        with pytest.raises(ProtocolError):
            bench.chamber.read_temperature()
    finally:
        bench.close()


def test_unknown_commands_queue_scpi_errors_like_the_real_supply(bench: Bench) -> None:
    transport = VisaTransport(bench.addresses["psu1"], timeout_ms=TIMEOUT_MS)
    try:
        transport.write("FOO:BAR 1")
        transport.write("VOLT 30,(@2)")
        transport.write("SOURce:VOLTage:LEVel:IMMediate:AMPLitude 12.5,(@2)")
        assert transport.query("SYST:ERR?") == '-113,"Undefined header"'
        assert transport.query("SYSTem:ERRor:NEXT?") == '-222,"Data out of range"'
        assert transport.query("SYST:ERR?") == '+0,"No error"'
        assert transport.query("VOLT? (@1:3)") == "+0.00000E+00,+1.25000E+01,+0.00000E+00"
    finally:
        transport.close()


def test_threads_sharing_one_transport_each_get_their_own_reply(bench: Bench) -> None:
    for channel, volts in ((1, 3.3), (2, 12.0), (3, 5.0)):
        bench.psu.set_voltage(channel, volts)
    expected = {1: 3.3, 2: 12.0, 3: 5.0}
    failures: list[str] = []

    def worker(channel: int) -> None:
        for _ in range(25):
            got = bench.psu.voltage_setpoint(channel)
            if got != expected[channel]:
                failures.append(f"channel {channel} read {got}")

    threads = [threading.Thread(target=worker, args=(ch,)) for ch in (1, 2, 3, 1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def read_everything(bench: Bench) -> list[float]:
    """Return every reading a run would take at the present virtual time."""
    return [
        bench.psu.measure_voltage(2),
        bench.psu.measure_current(2),
        bench.psu.measure_current(3),
        bench.chamber.read_temperature(),
        bench.lab.dut(1).temperature_c(),
        bench.lab.dut(2).temperature_c(),
    ]


def drive(bench: Bench) -> None:
    """Put a lab mid-ramp with both DUTs powered."""
    bench.power_channel(2, volts=12.1)
    bench.power_channel(3, volts=11.9, amps=1.0)
    bench.chamber.set_temperature(70.0)
    bench.clock.advance_to(200.0)


def test_snapshot_and_restore_reproduce_identical_readings() -> None:
    original = Bench(lab_config())
    try:
        drive(original)
        state = json.loads(json.dumps(original.lab.snapshot()))
        expected = read_everything(original)
        original.clock.advance_to(500.0)
        later = read_everything(original)
    finally:
        original.close()

    resumed = Bench(lab_config(), start_s=200.0)
    try:
        assert read_everything(resumed) != expected  # a fresh lab is elsewhere
        resumed.lab.restore(state)
        assert read_everything(resumed) == expected
        resumed.clock.advance_to(500.0)
        assert read_everything(resumed) == later
    finally:
        resumed.close()


def test_restore_refuses_a_state_from_another_seed() -> None:
    clock = VirtualClock()
    state = Lab(clock, 1, lab_config()).snapshot()
    with pytest.raises(ValueError, match="seed"):
        Lab(clock, 2, lab_config()).restore(state)


def test_same_seed_gives_same_readings_and_another_seed_does_not() -> None:
    runs = []
    for seed in (SEED, SEED, SEED + 1):
        bench = Bench(lab_config(), seed=seed)
        try:
            drive(bench)
            runs.append((read_everything(bench), bench.psu.identify(), bench.lab.dut(1).idle_w))
        finally:
            bench.close()
    assert runs[0] == runs[1]
    assert runs[2][0] != runs[0][0]
    assert runs[2][1] != runs[0][1]  # the supply serial is seeded too
    assert runs[2][2] != runs[0][2]


def test_dut_defaults_vary_around_their_kind_and_config_values_win() -> None:
    lab = Lab(VirtualClock(), SEED, lab_config())
    ssd, dimm = lab.dut(1), lab.dut(2)
    assert 5.0 < ssd.idle_w < 7.0 and ssd.idle_w != 6.0
    assert 3.0 < dimm.idle_w < 5.0
    assert 1.4 < ssd.rth_c_per_w < 2.6 and ssd.rth_c_per_w != 2.0
    assert (ssd.kind, ssd.serial, dimm.kind) == ("ssd", "SSD001", "dimm")
    config = lab_config()
    config["duts"][0].update(idle_w=9.5, rth_c_per_w=1.25, nominal_v=5.0)
    fixed = Lab(VirtualClock(), SEED, config).dut(1)
    assert (fixed.idle_w, fixed.rth_c_per_w, fixed.nominal_v) == (9.5, 1.25, 5.0)
    with pytest.raises(KeyError, match="no DUT in slot 9"):
        lab.dut(9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chamber": {"ramp": 5}}, r"lab\.chamber\.ramp: unknown key"),
        ({"supplies": [{"name": "psu1", "model": "E3631A"}]}, r"lab\.supplies\[0\]\.model"),
        (
            {"duts": [{"slot": 1, "kind": "ssd", "serial": "A", "supply": "nope", "channel": 2}]},
            r"lab\.duts\[0\]\.supply",
        ),
        (
            {"duts": [{"slot": 1, "kind": "hdd", "serial": "A", "supply": "psu1", "channel": 2}]},
            r"lab\.duts\[0\]\.kind",
        ),
        (
            {"duts": [{"slot": 1, "kind": "ssd", "serial": "A", "supply": "psu1", "channel": 4}]},
            r"lab\.duts\[0\]\.channel",
        ),
        (
            {"duts": [{"slot": 1, "kind": "ssd", "serial": "A", "supply": "psu1"}]},
            r"lab\.duts\[0\]\.channel: required",
        ),
        (
            {"duts": [{"slot": "1", "kind": "ssd", "serial": "A", "supply": "psu1", "channel": 2}]},
            r"lab\.duts\[0\]\.slot: expected an integer",
        ),
        ({"faults": [{"target": "psu9", "kind": "no_reply"}]}, r"lab\.faults\[0\]\.target"),
        ({"faults": [{"target": "psu1", "kind": "smoke"}]}, r"lab\.faults\[0\]\.kind"),
        ({"extra": 1}, r"lab\.extra: unknown key"),
    ],
)
def test_bad_lab_configs_name_the_key_path(change: dict[str, Any], message: str) -> None:
    config = lab_config()
    config.update(change)
    with pytest.raises(ValueError, match=message):
        LabConfig.from_dict(config)


def test_noise_is_deterministic_across_processes() -> None:
    here = noise.gauss(7, "psu1", "volts", 2, 12.5, sigma=0.001)
    assert here == noise.gauss(7, "psu1", "volts", 2, 12.5, sigma=0.001)
    assert here != noise.gauss(7, "psu1", "volts", 2, 12.6, sigma=0.001)
    assert here != noise.gauss(8, "psu1", "volts", 2, 12.5, sigma=0.001)
    code = (
        "from sim_instruments import noise; "
        "print(repr(noise.gauss(7, 'psu1', 'volts', 2, 12.5, sigma=0.001)))"
    )
    # A fresh interpreter has a different hash() salt; the value must not depend on it.
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "random", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert float(other.stdout) == here


def test_noise_has_the_requested_spread() -> None:
    values = [noise.gauss(1, "spread", i, sigma=2.0) for i in range(4000)]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert abs(mean) < 0.1
    assert sd == pytest.approx(2.0, rel=0.05)
    uniforms = [noise.uniform(1, "u", i) for i in range(1000)]
    assert all(0.0 < u < 1.0 for u in uniforms)


def test_tcp_server_stops_cleanly_with_a_client_still_connected() -> None:
    import socket

    server = TcpLineServer(lambda line: None if line.startswith("SET") else line.upper())
    server.start()
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        client.sendall(b"SET 1\nping\n")
        assert client.recv(100) == b"PING\n"
        server.stop()
        assert not [t for t in server_threads() if str(server.port) in t.name]
        assert client.recv(100) == b""  # the server closed its end
    finally:
        client.close()


def test_visa_transport_reports_an_unreachable_address() -> None:
    with pytest.raises(InstrumentError, match=re.escape("TCPIP::127.0.0.1::1::SOCKET")):
        transport = VisaTransport("TCPIP::127.0.0.1::1::SOCKET", timeout_ms=TIMEOUT_MS)
        transport.query("*IDN?")


def test_serial_transport_reports_a_missing_port() -> None:
    with pytest.raises(InstrumentError, match="/dev/qualify-no-such-port"):
        SerialTransport("/dev/qualify-no-such-port")


def test_closed_transports_refuse_further_use(bench: Bench) -> None:
    transport = VisaTransport(bench.addresses["psu1"], timeout_ms=TIMEOUT_MS)
    transport.close()
    transport.close()
    with pytest.raises(InstrumentError, match="closed"):
        transport.query("*IDN?")
    serial_link = SerialTransport(bench.addresses["chamber"], timeout_s=TIMEOUT_MS / 1000)
    serial_link.close()
    with pytest.raises(InstrumentError, match="closed"):
        serial_link.write("MODE?")
