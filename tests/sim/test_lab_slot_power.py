"""Per-slot power: a Quarch array controller on a pty gating each DUT's power in the lab."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import serial

from drivers.errors import InstrumentTimeout
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.slotpower.quarch_array import QuarchArray
from drivers.transport.serial import SerialTransport
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import Lab, LabConfig
from sim_instruments.servers import PtyLineServer

SEED = 3
TIMEOUT_MS = 300
TAU_S = 240.0


def config(**extra: Any) -> dict[str, Any]:
    """Return two SSDs sharing supply channel 2, each behind its own port of one array."""
    data: dict[str, Any] = {
        "supplies": [{"name": "psu1"}],
        "slot_power": [{"name": "sw1", "model": "QTL1461", "ports": 4}],
        "duts": [
            {
                "slot": 1,
                "kind": "ssd",
                "serial": "S1",
                "supply": "psu1",
                "channel": 2,
                "idle_w": 6.0,
                "rth_c_per_w": 2.0,
                "thermal_tau_s": TAU_S,
                "slot_power": "sw1",
            },
            {
                "slot": 2,
                "kind": "ssd",
                "serial": "S2",
                "supply": "psu1",
                "channel": 2,
                "idle_w": 4.0,
                "slot_power": "sw1",
                "slot_power_port": 4,
            },
        ],
    }
    data.update(extra)
    return data


class Bench:
    """A started lab with the supply on VISA and the array on its serial console."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.clock = VirtualClock()
        self.lab = Lab(self.clock, SEED, data or config())
        self.lab.start()
        self.psu = KeysightE36300(VisaTransport(self.lab.addresses["psu1"], timeout_ms=TIMEOUT_MS))
        self.switch = QuarchArray(
            SerialTransport(self.lab.addresses["sw1"], baudrate=19200, timeout_s=TIMEOUT_MS / 1000),
            port_map={2: 4},
        )

    def close(self) -> None:
        self.psu.close()
        self.switch.close()
        self.lab.stop()


@pytest.fixture
def bench() -> Iterator[Bench]:
    bench = Bench()
    bench.psu.set_voltage(2, 12.0)
    bench.psu.set_current_limit(2, 2.0)
    bench.psu.set_output(2, True)
    yield bench
    bench.close()


def test_array_identifies_over_its_serial_console(bench: Bench) -> None:
    assert bench.lab.addresses["sw1"].startswith("/dev/")
    part, serial_number = bench.switch.identify().split(",")[1:3]
    assert part == "QTL1461-02" and serial_number.startswith("QTL1461-02-")


def test_slots_start_plugged_so_the_supply_alone_decides(bench: Bench) -> None:
    assert bench.switch.is_on(1) and bench.switch.is_on(2)
    assert bench.lab.dut(1).powered() and bench.lab.dut(2).powered()
    assert bench.psu.measure_current(2) == pytest.approx(10.0 / 12.0, abs=0.001)


def test_pulling_a_slot_unpowers_its_dut_and_its_current_leaves_the_supply(bench: Bench) -> None:
    bench.switch.power_off(1)
    assert bench.switch.is_on(1) is False
    assert not bench.lab.dut(1).powered()
    assert bench.lab.dut(2).powered()  # same channel, other slot
    assert bench.psu.measure_current(2) == pytest.approx(4.0 / 12.0, abs=0.001)
    bench.switch.power_off(2)
    assert not bench.lab.dut(2).powered()
    assert bench.psu.measure_current(2) == pytest.approx(0.0, abs=0.001)
    assert bench.psu.output_on(2) is True  # the supply knows nothing of it
    bench.switch.power_on(1)
    assert bench.lab.dut(1).powered()


def test_a_pulled_dut_cools_from_the_moment_it_was_pulled(bench: Bench) -> None:
    dut = bench.lab.dut(1)
    bench.clock.advance_to(20 * TAU_S)
    rise_c = dut.temperature_c() - 25.0
    assert rise_c == pytest.approx(12.0, abs=1e-6)
    pulled_s = bench.clock.now()
    bench.switch.power_off(1)
    bench.clock.advance_to(pulled_s + TAU_S)
    assert dut.temperature_c() == pytest.approx(25.0 + rise_c * math.exp(-1.0), abs=1e-6)


def test_cycle_waits_in_virtual_time(bench: Bench) -> None:
    states: list[bool] = []

    def sleep(seconds: float) -> None:
        states.append(bench.lab.dut(1).powered())
        bench.clock.sleep(seconds)

    bench.switch.cycle(1, off_s=30.0, sleep=sleep)
    assert states == [False]
    assert bench.clock.now() == 30.0
    assert bench.lab.dut(1).powered()


def test_the_console_echoes_prefixes_the_port_and_prompts(bench: Bench) -> None:
    port = serial.serial_for_url(bench.lab.addresses["sw1"], baudrate=19200, timeout=0.5)
    try:
        port.write(b"run:power? <4>\r\n")
        assert port.read_until(b"\r\n>") == b"run:power? <4>\r\n4:PLUGGED\r\n>"
        port.write(b"RUN:POWer DOWN <9>\r\n")
        assert port.read_until(b"\r\n>") == b"RUN:POWer DOWN <9>\r\n9:FAIL: 0x41 -No module at this port\r\n>"
    finally:
        port.close()


def test_port_states_survive_snapshot_and_restore(bench: Bench) -> None:
    bench.switch.power_off(2)
    state = json.loads(json.dumps(bench.lab.snapshot()))
    resumed = Lab(VirtualClock(), SEED, config())
    assert resumed.dut(2).powered() is False  # unpowered: the supply is off in a fresh lab
    resumed.restore(state)
    assert resumed.command("sw1", "RUN:POWer? <4>") == "4:PULLED"
    assert resumed.dut(1).powered() and not resumed.dut(2).powered()


def test_a_lab_without_slot_power_is_unchanged() -> None:
    data = config()
    del data["slot_power"]
    for dut in data["duts"]:
        dut.pop("slot_power")
        dut.pop("slot_power_port", None)
    lab = Lab(VirtualClock(), SEED, data)
    for line in ("VOLT 12,(@2)", "OUTP ON,(@2)"):
        lab.command("psu1", line)
    assert lab.dut(1).powered() and lab.dut(2).powered()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"slot_power": [{"name": "sw1", "model": "QTL9999"}]},
            r"lab\.slot_power\[0\]\.model: unknown model",
        ),
        ({"slot_power": [{"name": "sw1", "ports": 0}]}, r"lab\.slot_power\[0\]\.ports: must be 1 to 28"),
        ({"slot_power": [{"name": "sw1", "port": 4}]}, r"lab\.slot_power\[0\]\.port: unknown key"),
        (
            {"slot_power": [{"name": "sw1", "ports": 1}]},
            r"lab\.duts\[1\]\.slot_power_port: sw1 has ports 1 to 1",
        ),
        ({"slot_power": [{"name": "sw2"}]}, r"lab\.duts\[0\]\.slot_power: no slot_power unit named 'sw1'"),
    ],
)
def test_bad_slot_power_configs_name_the_key_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabConfig.from_dict(config(**change))


def test_two_duts_on_one_port_are_refused() -> None:
    data = config()
    data["duts"][1]["slot_power_port"] = 1
    with pytest.raises(ValueError, match=r"lab\.duts\[1\]\.slot_power_port: port 1 of sw1 is used twice"):
        LabConfig.from_dict(data)
    data["duts"][1].pop("slot_power")
    with pytest.raises(ValueError, match=r"lab\.duts\[1\]\.slot_power_port: needs slot_power"):
        LabConfig.from_dict(data)


def test_the_serial_transport_skips_an_echo_and_waits_for_the_prompt() -> None:
    echoing = PtyLineServer(lambda line: line.upper(), echo=True)
    prompting = PtyLineServer(lambda line: f"{line.upper()}\r\n{line.lower()}", echo=True, prompt=">")
    echoing.start()
    prompting.start()
    try:
        link = SerialTransport(echoing.address, timeout_s=0.2, echo=True)
        assert link.query("ping") == "PING"
        link.set_framing(echo=True, prompt=">")  # this console never prompts
        with pytest.raises(InstrumentTimeout, match="partial reply b'ping"):
            link.query("ping")
        link.close()
        link = SerialTransport(prompting.address, timeout_s=0.2, echo=True, prompt=">")
        assert link.query("Two Lines") == "TWO LINES\ntwo lines"
        link.close()
    finally:
        echoing.stop()
        prompting.stop()
