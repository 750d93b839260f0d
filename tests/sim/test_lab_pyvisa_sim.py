"""The SCPI drivers against pyvisa-sim device files (`@sim`): no lab, no instrument, no socket.

pyvisa-sim is a test dependency; without it these tests are skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.dmm.keysight_34465a import KeysightTruevolt
from drivers.errors import InstrumentError
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.transport.visa import VisaTransport

pytest.importorskip("pyvisa_sim", reason="pyvisa-sim is not installed (pip install pyvisa-sim)")

DEVICES = Path(__file__).resolve().parents[2] / "fixtures" / "pyvisa_sim"
ADDRESS = "TCPIP::localhost::5025::SOCKET"


def transport(device_file: str) -> VisaTransport:
    """Return a VISA transport on the pyvisa-sim backend for one device file."""
    return VisaTransport(ADDRESS, timeout_ms=100, backend=f"{DEVICES / device_file}@sim")


@pytest.fixture
def psu() -> Iterator[KeysightE36300]:
    driver = KeysightE36300(transport("e36300.yaml"))
    yield driver
    driver.close()


@pytest.fixture
def dmm() -> Iterator[KeysightTruevolt]:
    driver = KeysightTruevolt(transport("34465a.yaml"))
    yield driver
    driver.close()


def test_device_files_state_their_spec_version() -> None:
    for path in DEVICES.glob("*.yaml"):
        assert 'spec: "1.1"' in path.read_text(), path


def test_supply_driver_runs_its_conversation_on_pyvisa_sim(psu: KeysightE36300) -> None:
    assert psu.identify().startswith("Keysight Technologies,E36313A,")
    psu.set_current_limit(2, 1.5)
    psu.set_voltage(2, 12.0)
    psu.set_output(2, True)
    assert (psu.voltage_setpoint(2), psu.current_limit(2), psu.output_on(2)) == (12.0, 1.5, True)
    assert psu.output_on(3) is False
    assert psu.measure_voltage(2) == pytest.approx(12.0006)
    assert psu.measure_current(2) == pytest.approx(0.5)
    psu.set_ovp_level(2, 13.2)
    psu.set_ocp_enabled(2, True)
    psu.set_ocp_delay(2, 0.1)
    assert psu.ovp_level(2) == pytest.approx(13.2)
    assert psu.ocp_enabled(2) is True and psu.ocp_delay(2) == pytest.approx(0.1)
    assert psu.ovp_tripped(2) is False and psu.ocp_tripped(2) is False
    psu.clear_protection(2)
    psu.safe_state()


def test_values_outside_the_device_file_limits_queue_an_error(psu: KeysightE36300) -> None:
    # The driver refuses 40 V before sending; sent raw, pyvisa-sim queues its command error.
    with pytest.raises(ValueError, match="outside 0 to 25 V"):
        psu.set_voltage(2, 40.0)
    raw = transport("e36300.yaml")
    try:
        raw.write("VOLT 40.0000,(@2)")
        assert raw.query("SYST:ERR?") == '-113,"Undefined header"'
        assert raw.query("SYST:ERR?") == '+0,"No error"'
    finally:
        raw.close()


def test_meter_driver_runs_its_conversation_on_pyvisa_sim(dmm: KeysightTruevolt) -> None:
    assert dmm.identify().startswith("Keysight Technologies,34465A,")
    assert dmm.measure_dc_voltage() == pytest.approx(12.0001234)
    assert dmm.measure_dc_current() == pytest.approx(0.500012345)
    assert dmm.measure_temperature() == pytest.approx(25.1234567)
    dmm.configure("dc_voltage")
    assert dmm.read() == pytest.approx(12.0001234)
    dmm.safe_state()


def test_a_query_the_device_file_does_not_know_times_out(dmm: KeysightTruevolt) -> None:
    with pytest.raises(InstrumentError):
        dmm.measure_temperature("J")
