"""Fault injection seen the way a station sees it: real drivers over real transports.

Every instrument fault kind is observed through pyvisa `@py` sockets or pyserial ptys by the
real drivers; device faults are handed to the device model attached to a slot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from drivers.chamber.espec import EspecChamber
from drivers.dmm.keysight_34465a import KeysightTruevolt
from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.slotpower.quarch_array import QuarchArray
from drivers.transport.serial import SerialTransport
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import Lab, LabConfig

SEED = 2024
TIMEOUT_MS = 100


def config(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a lab with every instrument kind and two SSDs, and the given faults."""
    return {
        "chamber": {"name": "chamber"},
        "supplies": [{"name": "psu1"}],
        "multimeters": [{"name": "dmm1", "volts": "slot1"}],
        "slot_power": [{"name": "sw1"}],
        "duts": [
            {"slot": 1, "kind": "ssd", "serial": "S1", "supply": "psu1", "channel": 2, "slot_power": "sw1"},
            {"slot": 2, "kind": "ssd", "serial": "S2", "supply": "psu1", "channel": 3},
        ],
        "faults": faults,
    }


class Bench:
    """A started lab with a driver per instrument on its real transport."""

    def __init__(self, faults: list[dict[str, Any]], seed: int = SEED) -> None:
        self.clock = VirtualClock()
        self.lab = Lab(self.clock, seed, config(faults))
        addresses = self.lab.start()
        self.psu = KeysightE36300(VisaTransport(addresses["psu1"], timeout_ms=TIMEOUT_MS))
        self.dmm = KeysightTruevolt(VisaTransport(addresses["dmm1"], timeout_ms=TIMEOUT_MS))
        self.chamber = EspecChamber(
            SerialTransport(addresses["chamber"], timeout_s=TIMEOUT_MS / 1000), controller="SCP220"
        )
        self.switch = QuarchArray(SerialTransport(addresses["sw1"], timeout_s=TIMEOUT_MS / 1000))

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        for driver in (self.psu, self.dmm, self.chamber, self.switch):
            driver.close()
        self.lab.stop()

    def power(self, volts: float = 12.0) -> None:
        self.psu.set_voltage(2, volts)
        self.psu.set_current_limit(2, 2.0)
        self.psu.set_output(2, True)


def on_all(kind: str, **trigger: Any) -> list[dict[str, Any]]:
    """Return the same fault on every instrument."""
    return [{"target": name, "kind": kind, **trigger} for name in ("psu1", "dmm1", "chamber", "sw1")]


def test_no_reply_times_out_every_instrument_from_its_time_on() -> None:
    with Bench(on_all("no_reply", at_s=10.0)) as bench:
        bench.power()
        assert bench.dmm.measure_dc_voltage() == pytest.approx(12.0, abs=1e-3)
        assert bench.switch.is_on(1)
        bench.clock.advance_to(10.0)
        with pytest.raises(InstrumentTimeout, match="no reply to 'MEAS:VOLT\\? \\(@2\\)'"):
            bench.psu.measure_voltage(2)
        with pytest.raises(InstrumentTimeout, match="MEAS:VOLT:DC"):
            bench.dmm.measure_dc_voltage()
        with pytest.raises(InstrumentTimeout, match="TEMP"):
            bench.chamber.read_temperature()
        with pytest.raises(InstrumentTimeout, match="RUN:POWer"):
            bench.switch.power_off(1)
        # A swallowed command does nothing: the slot is still plugged.
        assert bench.lab.dut(1).powered()


def test_disconnect_on_tcp_closes_the_connection_and_a_new_one_works_once_it_ends() -> None:
    with Bench([{"target": "psu1", "kind": "disconnect", "at_s": 5.0, "until_s": 6.0}]) as bench:
        assert bench.psu.identify().startswith("Keysight")
        bench.clock.advance_to(5.0)
        with pytest.raises(InstrumentError, match="closed the connection") as first:
            bench.psu.measure_voltage(2)
        assert not isinstance(first.value, InstrumentTimeout)
        with pytest.raises(InstrumentError, match="closed the connection"):
            bench.psu.identify()
        bench.clock.advance_to(6.0)
        again = KeysightE36300(VisaTransport(bench.lab.addresses["psu1"], timeout_ms=TIMEOUT_MS))
        try:
            assert again.identify().startswith("Keysight")
        finally:
            again.close()


def test_disconnect_on_a_serial_port_fails_the_port_for_good() -> None:
    with Bench([{"target": "chamber", "kind": "disconnect", "at_s": 5.0}]) as bench:
        assert bench.chamber.read_mode() == "STANDBY"
        bench.clock.advance_to(5.0)
        for _ in range(2):
            with pytest.raises(InstrumentError, match="failed") as caught:
                bench.chamber.read_mode()
            assert not isinstance(caught.value, InstrumentTimeout)
        assert bench.psu.identify().startswith("Keysight")  # other links are unaffected


def test_garbled_replies_are_protocol_errors() -> None:
    with Bench(on_all("garbled", at_s=1.0)) as bench:
        bench.power()
        bench.clock.advance_to(1.0)
        with pytest.raises(ProtocolError):
            bench.dmm.measure_dc_voltage()
        with pytest.raises(ProtocolError):
            bench.switch.is_on(1)
        with pytest.raises(ProtocolError):
            bench.chamber.read_temperature()
        with pytest.raises(ProtocolError):
            bench.psu.set_voltage(2, 11.0)  # the setting's SYST:ERR? comes back garbled


def test_partial_replies_time_out_waiting_for_the_terminator() -> None:
    with Bench(on_all("partial", at_s=1.0)) as bench:
        bench.clock.advance_to(1.0)
        with pytest.raises(InstrumentTimeout):
            bench.psu.measure_voltage(2)
        with pytest.raises(InstrumentTimeout, match="partial reply b'2"):
            bench.chamber.read_temperature()
        with pytest.raises(InstrumentTimeout, match="partial reply"):
            bench.switch.is_on(1)


def test_the_next_query_after_a_timeout_gets_its_own_reply() -> None:
    with Bench([{"target": "dmm1", "kind": "partial", "at_s": 1.0, "until_s": 2.0}]) as bench:
        bench.power()
        bench.clock.advance_to(1.0)
        with pytest.raises(InstrumentTimeout):
            bench.dmm.measure_dc_voltage()
        bench.clock.advance_to(2.0)
        assert bench.dmm.identify().startswith("Keysight Technologies,34465A")


def test_wrong_identity_is_caught_by_identify_and_other_commands_still_work() -> None:
    with Bench(on_all("wrong_identity", at_s=0.0)) as bench:
        with pytest.raises(ProtocolError, match="configured as E36313A but the instrument is E36312A"):
            bench.psu.identify()
        with pytest.raises(ProtocolError, match="configured as 34465A but the instrument is 34461A"):
            bench.dmm.identify()
        with pytest.raises(
            ProtocolError, match="configured for controller SCP220 but the chamber reports P-300"
        ):
            bench.chamber.identify()
        with pytest.raises(ProtocolError, match="configured as QTL1461 but the controller is QTL1079"):
            bench.switch.identify()
        bench.power()
        assert bench.psu.measure_voltage(2) == pytest.approx(12.0, abs=0.005)


def test_a_stuck_reading_freezes_at_its_last_value_while_settings_work() -> None:
    faults = [
        {"target": name, "kind": "stuck_reading", "at_s": 100.0} for name in ("psu1", "dmm1", "chamber")
    ]
    with Bench(faults) as bench:
        bench.power(12.0)
        bench.chamber.set_temperature(85.0)
        bench.clock.advance_to(50.0)
        frozen = (
            bench.psu.measure_voltage(2),
            bench.dmm.measure_dc_voltage(),
            bench.chamber.read_temperature(),
        )
        bench.clock.advance_to(100.0)
        bench.psu.set_voltage(2, 12.5)
        assert bench.psu.voltage_setpoint(2) == 12.5  # settings and their queries still work
        bench.clock.advance_to(300.0)
        assert bench.lab.chamber.air_temp_c() > frozen[2] + 10.0
        assert (
            bench.psu.measure_voltage(2),
            bench.dmm.measure_dc_voltage(),
            bench.chamber.read_temperature(),
        ) == frozen
        assert bench.dmm.measure_dc_voltage() == frozen[1]


def test_a_fault_after_n_commands_starts_with_the_next_one() -> None:
    with Bench([{"target": "dmm1", "kind": "garbled", "after_commands": 3}]) as bench:
        bench.power()
        for _ in range(3):
            assert bench.dmm.measure_dc_voltage() == pytest.approx(12.0, abs=1e-3)
        with pytest.raises(ProtocolError):
            bench.dmm.measure_dc_voltage()


def test_the_last_listed_active_fault_wins() -> None:
    faults = [
        {"target": "psu1", "kind": "garbled", "at_s": 1.0},
        {"target": "psu1", "kind": "no_reply", "at_s": 10.0},
    ]
    with Bench(faults) as bench:
        bench.clock.advance_to(5.0)
        with pytest.raises(ProtocolError):
            bench.psu.identify()
        bench.clock.advance_to(10.0)
        with pytest.raises(InstrumentTimeout):
            bench.psu.identify()
    log_kinds = [(entry["kind"], entry["t_s"]) for entry in bench.lab.fault_log]
    assert log_kinds == [("garbled", 5.0), ("no_reply", 10.0)]


def garbled_commands(seed: int, probability: float) -> list[int]:
    """Return which of 60 in-process commands a random garbling fault hit."""
    lab = Lab(
        VirtualClock(), seed, config([{"target": "dmm1", "kind": "garbled", "probability": probability}])
    )
    clean = Lab(VirtualClock(), seed, config([])).command("dmm1", "*IDN?")
    return [i for i in range(60) if lab.command("dmm1", "*IDN?") != clean]


def test_random_faults_follow_the_seed() -> None:
    hits = garbled_commands(SEED, 0.3)
    assert hits == garbled_commands(SEED, 0.3)
    assert hits != garbled_commands(SEED + 1, 0.3)
    assert 6 <= len(hits) <= 30
    assert garbled_commands(SEED, 1.0) == list(range(60))


def test_a_random_fault_reaches_the_driver() -> None:
    with Bench([{"target": "dmm1", "kind": "no_reply", "probability": 0.5}]) as bench:
        outcomes = []
        for _ in range(5):  # with this seed the 4th and 5th commands are hit
            try:
                bench.dmm.identify()
                outcomes.append("ok")
            except InstrumentTimeout:
                outcomes.append("timeout")
    assert outcomes == ["ok", "ok", "ok", "timeout", "timeout"]


def test_fault_state_survives_snapshot_and_restore() -> None:
    faults = [
        {"target": "psu1", "kind": "garbled", "after_commands": 5},
        {"target": "dmm1", "kind": "stuck_reading", "at_s": 10.0},
    ]
    clock = VirtualClock()
    original = Lab(clock, SEED, config(faults))
    for line in ("VOLT 12,(@2)", "OUTP ON,(@2)", "*IDN?"):
        original.command("psu1", line)
    before = original.command("dmm1", "MEAS:VOLT:DC?")
    clock.advance_to(20.0)
    assert original.command("dmm1", "MEAS:VOLT:DC?") == before
    state = json.loads(json.dumps(original.snapshot()))
    resumed = Lab(VirtualClock(20.0), SEED, config(faults))
    resumed.restore(state)
    assert resumed.command("dmm1", "MEAS:VOLT:DC?") == before  # still frozen at its old value
    assert resumed.command("psu1", "VOLT? (@2)") == "+1.20000E+01"  # the 4th command
    assert resumed.command("psu1", "VOLT? (@2)") == "+1.20000E+01"  # the 5th
    assert resumed.command("psu1", "VOLT? (@2)") == "+1?20?00?+0?"  # the 6th: garbled


class Device:
    """A device model with the lab's device interface and a fault hook."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self.injected: list[tuple[str, float, float]] = []

    def snapshot(self) -> dict[str, Any]:
        return {"injected": [list(item) for item in self.injected]}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.injected = [(str(k), float(a), float(n)) for k, a, n in state["injected"]]

    def inject(self, kind: str, at_s: float) -> None:
        self.injected.append((kind, at_s, self._clock.now()))


class PlainDevice:
    """A device model without a fault hook."""

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Restore nothing."""


def test_device_faults_are_handed_to_the_device_once_as_of_their_time() -> None:
    clock = VirtualClock()
    lab = Lab(clock, SEED, config([{"target": "slot1", "kind": "drop_off", "at_s": 100.0}]))
    device = Device(clock)
    lab.attach_device(1, device)
    clock.advance_to(99.0)
    lab.dut(1).powered()
    assert device.injected == []
    clock.advance_to(150.0)
    lab.dut(1).powered()  # any lab activity hands due faults over
    lab.command("psu1", "*IDN?")
    assert device.injected == [("drop_off", 100.0, 150.0)]
    state = json.loads(json.dumps(lab.snapshot()))
    resumed_clock = VirtualClock(150.0)
    resumed = Lab(resumed_clock, SEED, config([{"target": "slot1", "kind": "drop_off", "at_s": 100.0}]))
    resumed_device = Device(resumed_clock)
    resumed.attach_device(1, resumed_device)
    resumed.restore(state)
    resumed_clock.advance_to(500.0)
    resumed.refresh()
    assert resumed_device.injected == [("drop_off", 100.0, 150.0)]  # restored, not injected again


def test_a_device_fault_waits_for_a_device_and_is_logged_when_it_has_no_hook() -> None:
    clock = VirtualClock(200.0)
    faults = [
        {"target": "slot1", "kind": "error_storm", "at_s": 100.0},
        {"target": "slot2", "kind": "drop_off", "at_s": 100.0},
    ]
    lab = Lab(clock, SEED, config(faults))
    lab.refresh()
    assert lab.fault_log == []  # no device attached yet
    device = Device(clock)
    lab.attach_device(1, device)
    lab.attach_device(2, PlainDevice())
    assert device.injected == [("error_storm", 100.0, 200.0)]
    notes = {entry["target"]: entry["note"] for entry in lab.fault_log}
    assert notes == {"slot1": "injected", "slot2": "device model has no inject(): fault not applied"}


class PickyDevice(Device):
    """A device model that names its fault kinds and refuses others."""

    fault_kinds = ("drop_off",)

    def inject(self, kind: str, at_s: float) -> None:
        if kind not in self.fault_kinds:
            raise ValueError(f"unknown fault {kind!r}")
        super().inject(kind, at_s)


def test_a_device_naming_its_fault_kinds_refuses_others_when_it_attaches() -> None:
    clock = VirtualClock()
    lab = Lab(clock, SEED, config([{"target": "slot1", "kind": "meltdown", "at_s": 10.0}]))
    with pytest.raises(
        ValueError, match=r"lab\.faults\[0\]\.kind: the device in slot 1 has no fault 'meltdown'"
    ):
        lab.attach_device(1, PickyDevice(clock))


def test_a_device_refusing_a_fault_late_is_logged_and_the_lab_carries_on() -> None:
    clock = VirtualClock()
    lab = Lab(clock, SEED, config([{"target": "slot1", "kind": "meltdown", "at_s": 10.0}]))
    device = PickyDevice(clock)
    device.fault_kinds = ("drop_off", "meltdown")  # claims it, then refuses it
    lab.attach_device(1, device)
    device.fault_kinds = ("drop_off",)
    clock.advance_to(20.0)
    assert (lab.command("psu1", "*IDN?") or "").startswith("Keysight")
    assert lab.fault_log[-1]["note"] == "device refused the fault: unknown fault 'meltdown'"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"target": "psu1", "kind": "smoke"}, r"lab\.faults\[0\]\.kind: 'smoke' is not one of"),
        ({"target": "psu9", "kind": "no_reply"}, r"lab\.faults\[0\]\.target: no instrument named 'psu9'"),
        ({"target": "slot9", "kind": "drop_off"}, r"lab\.faults\[0\]\.target: no DUT in slot 9"),
        (
            {"target": "psu1", "kind": "garbled", "at_s": 5, "probability": 0.1},
            r"lab\.faults\[0\]: give one trigger",
        ),
        (
            {"target": "psu1", "kind": "garbled", "after_commands": 2, "probability": 0.1},
            r"lab\.faults\[0\]: give one trigger",
        ),
        (
            {"target": "psu1", "kind": "garbled", "probability": 1.5},
            r"lab\.faults\[0\]\.probability: must be in",
        ),
        (
            {"target": "psu1", "kind": "garbled", "at_s": 5, "until_s": 5},
            r"lab\.faults\[0\]\.until_s: must be after",
        ),
        ({"target": "psu1", "kind": "garbled", "after_commands": -1}, r"lab\.faults\[0\]\.after_commands"),
        (
            {"target": "psu1", "kind": "garbled", "after_commands": 1.5},
            r"after_commands: expected an integer",
        ),
        ({"target": "slot1", "kind": "drop_off", "probability": 0.5}, r"lab\.faults\[0\]: a device fault"),
        ({"target": "psu1", "kind": "garbled", "every": 3}, r"lab\.faults\[0\]\.every: unknown key"),
    ],
)
def test_bad_faults_name_the_key_path(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabConfig.from_dict(config([fault]))
