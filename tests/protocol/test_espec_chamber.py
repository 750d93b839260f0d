"""Protocol tests: the exact serial conversation of the ESPEC chamber driver."""

from __future__ import annotations

import pytest

from drivers.chamber.espec import EspecChamber
from drivers.errors import InstrumentError, ProtocolError
from drivers.protocols import ThermalChamber
from tests.support.scripted import ScriptedTransport


def chamber(pairs: list[tuple[str, str | None]], **limits: float) -> tuple[EspecChamber, ScriptedTransport]:
    """Return a driver on a scripted transport."""
    transport = ScriptedTransport(pairs, address="/dev/ttyUSB0")
    return EspecChamber(transport, **limits), transport


def test_driver_provides_the_thermal_chamber_capability() -> None:
    espec, _ = chamber([])
    assert isinstance(espec, ThermalChamber)
    assert espec.address == "/dev/ttyUSB0"


def test_identify_builds_a_four_field_identity_from_type_and_rom() -> None:
    espec, transport = chamber([("TYPE?", "T,SCP220,150.0"), ("ROM?", "1.22")])
    assert espec.identify() == "ESPEC,SCP220,0,1.22"
    transport.assert_done()


def test_identify_reads_the_controller_of_a_humidity_chamber() -> None:
    espec, transport = chamber([("TYPE?", "T,T,P-300,105.0"), ("ROM?", "P-300 1,04")])
    assert espec.identify() == "ESPEC,P-300,0,P-300 1 04"
    transport.assert_done()


def test_identify_refuses_another_controller_when_one_is_configured() -> None:
    transport = ScriptedTransport([("TYPE?", "T,P-300,150.0")], address="/dev/ttyUSB0")
    espec = EspecChamber(transport, controller="SCP220")
    with pytest.raises(ProtocolError, match="configured for controller SCP220 but the chamber reports P-300"):
        espec.identify()
    transport.assert_done()


def test_identify_accepts_the_configured_controller() -> None:
    transport = ScriptedTransport([("TYPE?", "T,SCP220,150.0"), ("ROM?", "1.22")], address="/dev/ttyUSB0")
    assert EspecChamber(transport, controller="SCP220").identify() == "ESPEC,SCP220,0,1.22"
    transport.assert_done()


def test_alarm_band_is_set_with_h_and_l_and_read_from_temp() -> None:
    espec, transport = chamber(
        [
            ("TEMP, H90.5 L-45.0", "OK:TEMP, H90.5 L-45.0"),
            ("TEMP?", "25.0,25.0,90.5,-45.0"),
            ("TEMP?", "25.0,25.0,90.5,-45.0"),
        ]
    )
    espec.set_alarm_limits(90.5, -45.0)
    assert espec.read_alarm_limits() == (90.5, -45.0)
    transport.assert_done()


def test_an_inverted_alarm_band_is_refused_before_sending() -> None:
    espec, transport = chamber([])
    with pytest.raises(ValueError, match="must lie above"):
        espec.set_alarm_limits(10.0, 20.0)
    transport.assert_done()


def test_identify_rejects_a_malformed_type_reply() -> None:
    espec, _ = chamber([("TYPE?", "SCP220")])
    with pytest.raises(ProtocolError, match="TYPE"):
        espec.identify()


def test_set_temperature_sets_the_setpoint_then_runs_constant_mode() -> None:
    espec, transport = chamber([("TEMP, S85.0", "OK:TEMP, S85.0"), ("MODE, CONSTANT", "OK:MODE, CONSTANT")])
    espec.set_temperature(85.0)
    transport.assert_done()


def test_setpoints_are_sent_with_the_controllers_tenth_of_a_degree() -> None:
    espec, transport = chamber([("TEMP, S-40.0", "OK:TEMP, S-40.0"), ("MODE, CONSTANT", "OK:MODE, CONSTANT")])
    espec.set_temperature(-39.96)
    transport.assert_done()


@pytest.mark.parametrize("temp_c", [-40.5, 150.1, 200.0])
def test_setpoints_outside_the_range_are_refused_before_sending(temp_c: float) -> None:
    espec, transport = chamber([])
    with pytest.raises(ValueError, match="outside -40 to 150 °C"):
        espec.set_temperature(temp_c)
    transport.assert_done()


def test_the_range_is_configurable_per_chamber() -> None:
    espec, transport = chamber([], min_temp_c=-20.0, max_temp_c=100.0)
    with pytest.raises(ValueError, match="outside -20 to 100 °C"):
        espec.set_temperature(-30.0)
    transport.assert_done()


def test_an_na_reply_to_a_setting_is_an_instrument_error_with_the_reason() -> None:
    espec, transport = chamber([("TEMP, S85.0", "NA:DATA OUT OF RANGE")])
    with pytest.raises(InstrumentError, match="DATA OUT OF RANGE"):
        espec.set_temperature(85.0)
    transport.assert_done()


def test_a_setting_answered_without_ok_is_a_protocol_error() -> None:
    espec, _ = chamber([("TEMP, S85.0", "TEMP, S85.0")])
    with pytest.raises(ProtocolError, match="unexpected reply"):
        espec.set_temperature(85.0)


def test_read_temperature_and_setpoint_parse_temp_query() -> None:
    espec, transport = chamber([("TEMP?", "-12.3,-40.0,155.0,-45.0"), ("TEMP?", "-12.1,-40.0,155.0,-45.0")])
    assert espec.read_temperature() == pytest.approx(-12.3)
    assert espec.read_setpoint() == pytest.approx(-40.0)
    transport.assert_done()


def test_a_garbled_temperature_is_a_protocol_error() -> None:
    espec, _ = chamber([("TEMP?", "2??3,?5.0")])
    with pytest.raises(ProtocolError, match="/dev/ttyUSB0"):
        espec.read_temperature()


def test_an_na_reply_to_a_query_is_an_instrument_error() -> None:
    espec, _ = chamber([("TEMP?", "NA:CMD ERR")])
    with pytest.raises(InstrumentError, match="CMD ERR"):
        espec.read_temperature()


def test_read_mode_and_alarms() -> None:
    espec, transport = chamber([("MODE?", "STANDBY"), ("ALARM?", "0"), ("ALARM?", "2,13,24")])
    assert espec.read_mode() == "STANDBY"
    assert espec.read_alarms() == []
    assert espec.read_alarms() == [13, 24]
    transport.assert_done()


@pytest.mark.parametrize(("command", "reply"), [("MODE?", "WARMING"), ("ALARM?", "2,13")])
def test_unexpected_mode_or_alarm_replies_are_protocol_errors(command: str, reply: str) -> None:
    espec, _ = chamber([(command, reply)])
    with pytest.raises(ProtocolError):
        espec.read_mode() if command == "MODE?" else espec.read_alarms()


def test_standby_stops_temperature_control() -> None:
    espec, transport = chamber([("MODE, STANDBY", "OK:MODE, STANDBY")])
    espec.standby()
    transport.assert_done()


def test_safe_state_runs_to_ambient_and_keeps_control() -> None:
    espec, transport = chamber([("TEMP, S25.0", "OK:TEMP, S25.0"), ("MODE, CONSTANT", "OK:MODE, CONSTANT")])
    espec.safe_state()
    transport.assert_done()


def test_close_releases_the_transport() -> None:
    espec, transport = chamber([])
    espec.close()
    assert transport.closed


def test_an_inverted_range_is_refused() -> None:
    with pytest.raises(ValueError, match="must be below"):
        EspecChamber(ScriptedTransport([]), min_temp_c=50.0, max_temp_c=10.0)
