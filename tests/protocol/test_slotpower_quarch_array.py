"""Protocol tests: the exact Torridon conversation of the Quarch array slot-power driver.

The scripted transport plays replies as the serial transport hands them over: echo and prompt
already removed, port prefixes (`2:`) still there.
"""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentError, ProtocolError
from drivers.protocols import SlotPower
from drivers.slotpower.quarch_array import QuarchArray
from tests.support.scripted import ScriptedTransport

IDN = "Family:Torridon System\nName:Array Controller\nPart#:QTL1461-02\nProcessor:QTL1159-01,4.007\nSerial#:QTL1461-02-0042"


def array(pairs: list[tuple[str, str | None]], **options: object) -> tuple[QuarchArray, ScriptedTransport]:
    """Return a driver on a scripted transport."""
    transport = ScriptedTransport(pairs, address="/dev/ttyUSB3")
    return QuarchArray(transport, **options), transport


def test_driver_provides_the_slot_power_capability() -> None:
    switch, _ = array([])
    assert isinstance(switch, SlotPower)
    assert switch.ports == (1, 2, 3, 4)


def test_identify_reads_part_serial_and_firmware_from_the_idn_block() -> None:
    switch, transport = array([("*IDN?", IDN)])
    assert switch.identify() == "Quarch Technology,QTL1461-02,QTL1461-02-0042,QTL1159-01,4.007"
    transport.assert_done()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (IDN.replace("QTL1461", "QTL1079"), "configured as QTL1461 but the controller is QTL1079-02"),
        ("Family:Torridon System\nName:Array Controller", "names no Part#"),
    ],
)
def test_identify_rejects_another_controller_or_a_block_without_part(reply: str, message: str) -> None:
    switch, transport = array([("*IDN?", reply)])
    with pytest.raises(ProtocolError, match=message):
        switch.identify()
    transport.assert_done()


def test_power_on_and_off_address_the_slots_port_and_require_ok() -> None:
    switch, transport = array([("RUN:POWer UP <2>", "2:OK"), ("RUN:POWer DOWN <3>", "3:OK")])
    switch.power_on(2)
    switch.power_off(3)
    transport.assert_done()


@pytest.mark.parametrize(
    ("reply", "on"), [("1:PLUGGED", True), ("1:PULLED", False), ("1:ON", True), ("OFF", False)]
)
def test_is_on_reads_plugged_or_pulled(reply: str, on: bool) -> None:
    switch, transport = array([("RUN:POWer? <1>", reply)])
    assert switch.is_on(1) is on
    transport.assert_done()


def test_a_leftover_prompt_before_the_reply_is_ignored() -> None:
    switch, _ = array([("RUN:POWer? <1>", ">1:PULLED")])
    assert switch.is_on(1) is False


def test_a_refused_command_is_an_instrument_error_with_the_reason() -> None:
    switch, _ = array([("RUN:POWer UP <4>", "4:FAIL: 0x41 -No module at this port")])
    with pytest.raises(InstrumentError, match="No module at this port"):
        switch.power_on(4)


@pytest.mark.parametrize("reply", ["2:O?", "2:PLUG?ED"])
def test_an_unexpected_reply_is_a_protocol_error(reply: str) -> None:
    switch, _ = array([("RUN:POWer? <2>", reply)])
    with pytest.raises(ProtocolError, match="/dev/ttyUSB3"):
        switch.is_on(2)
    switch, _ = array([("RUN:POWer DOWN <2>", reply)])
    with pytest.raises(ProtocolError, match="unexpected reply"):
        switch.power_off(2)


def test_cycle_pulls_waits_through_the_given_sleep_and_plugs() -> None:
    slept: list[float] = []
    switch, transport = array([("RUN:POWer DOWN <1>", "1:OK"), ("RUN:POWer UP <1>", "1:OK")])
    switch.cycle(1, off_s=5.0, sleep=slept.append)
    assert slept == [5.0]
    transport.assert_done()


def test_port_map_routes_slots_to_other_ports() -> None:
    switch, transport = array([("RUN:POWer UP <7>", "7:OK")], ports=[5, 6, 7], port_map={1: 7})
    switch.power_on(1)
    transport.assert_done()
    with pytest.raises(ValueError, match="no port for slot 2"):
        switch.power_on(2)


def test_safe_state_pulls_every_managed_port() -> None:
    switch, transport = array([(f"RUN:POWer DOWN <{p}>", f"{p}:OK") for p in (1, 2)], ports=2)
    switch.safe_state()
    transport.assert_done()


def test_close_releases_the_transport() -> None:
    switch, transport = array([])
    switch.close()
    assert transport.closed


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Quarch array controller 'QTL9999'"):
        QuarchArray(ScriptedTransport([]), model="QTL9999")


def test_settings_and_readings_are_declared_as_data_with_docstrings() -> None:
    switch, _ = array([])
    assert set(switch.settings) == {"power"} and set(switch.readings) == {"power"}
    for entry in [*switch.settings.values(), *switch.readings.values()]:
        assert entry.doc.split()[0] in {"Set", "Get", "Measure", "Control"}
