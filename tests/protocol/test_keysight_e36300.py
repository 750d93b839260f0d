"""Protocol tests: the exact SCPI conversation of the Keysight E36300 driver."""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentError, ProtocolError
from drivers.protocols import PowerSupply
from drivers.psu.keysight_e36300 import KeysightE36300
from tests.support.scripted import ScriptedTransport

NO_ERROR = '+0,"No error"'
IDN = "Keysight Technologies,E36313A,MY12345678,2.1.0-1.0.4-1.12"


def supply(
    pairs: list[tuple[str, str | None]], model: str = "E36313A"
) -> tuple[KeysightE36300, ScriptedTransport]:
    """Return a driver on a scripted transport."""
    transport = ScriptedTransport(pairs, address="TCPIP::psu::5025::SOCKET")
    return KeysightE36300(transport, model=model), transport


def test_driver_provides_the_power_supply_capability() -> None:
    psu, _ = supply([])
    assert isinstance(psu, PowerSupply)
    assert psu.channels == (1, 2, 3)
    assert psu.address == "TCPIP::psu::5025::SOCKET"


def test_identify_returns_the_idn_string() -> None:
    psu, transport = supply([("*IDN?", IDN)])
    assert psu.identify() == IDN
    transport.assert_done()


def test_identify_rejects_another_model() -> None:
    psu, transport = supply([("*IDN?", IDN.replace("E36313A", "E36312A"))])
    with pytest.raises(ProtocolError, match="configured as E36313A but the instrument is E36312A"):
        psu.identify()
    transport.assert_done()


@pytest.mark.parametrize(
    "reply",
    ["Keysight Technologies,E36313A,MY1", "Rigol Technologies,E36313A,MY1,1.0", ""],
)
def test_identify_rejects_a_malformed_or_foreign_identity(reply: str) -> None:
    psu, _ = supply([("*IDN?", reply)])
    with pytest.raises(ProtocolError):
        psu.identify()


def test_set_voltage_sends_channel_list_and_checks_the_error_queue() -> None:
    psu, transport = supply([("VOLT 12.0000,(@2)", None), ("SYST:ERR?", NO_ERROR)])
    psu.set_voltage(2, 12.0)
    transport.assert_done()


def test_set_current_limit() -> None:
    psu, transport = supply([("CURR 1.5000,(@3)", None), ("SYST:ERR?", NO_ERROR)])
    psu.set_current_limit(3, 1.5)
    transport.assert_done()


@pytest.mark.parametrize(("on", "word"), [(True, "ON"), (False, "OFF")])
def test_set_output(on: bool, word: str) -> None:
    psu, transport = supply([(f"OUTP {word},(@1)", None), ("SYST:ERR?", NO_ERROR)])
    psu.set_output(1, on)
    transport.assert_done()


def test_a_rejected_setting_raises_with_every_queued_error() -> None:
    psu, transport = supply(
        [
            ("VOLT 5.0000,(@1)", None),
            ("SYST:ERR?", '-222,"Data out of range"'),
            ("SYST:ERR?", '-221,"Settings conflict"'),
            ("SYST:ERR?", NO_ERROR),
        ]
    )
    with pytest.raises(InstrumentError, match="-222,Data out of range; -221,Settings conflict"):
        psu.set_voltage(1, 5.0)
    transport.assert_done()


def test_an_unparsable_error_reply_is_a_protocol_error() -> None:
    psu, _ = supply([("OUTP ON,(@2)", None), ("SYST:ERR?", "garbage")])
    with pytest.raises(ProtocolError, match="SYST:ERR"):
        psu.set_output(2, True)


def test_measure_voltage_and_current_parse_scpi_numbers() -> None:
    psu, transport = supply([("MEAS:VOLT? (@2)", "+1.20012E+01"), ("MEAS:CURR? (@2)", "+4.99870E-01")])
    assert psu.measure_voltage(2) == pytest.approx(12.0012)
    assert psu.measure_current(2) == pytest.approx(0.49987)
    transport.assert_done()


def test_setpoint_readback_queries() -> None:
    psu, transport = supply(
        [
            ("VOLT? (@2)", "+1.20000E+01"),
            ("CURR? (@2)", "+2.00000E+00"),
            ("OUTP? (@2)", "1"),
            ("OUTP? (@3)", "0"),
        ]
    )
    assert psu.voltage_setpoint(2) == 12.0
    assert psu.current_limit(2) == 2.0
    assert psu.output_on(2) is True
    assert psu.output_on(3) is False
    transport.assert_done()


def test_a_garbled_measurement_is_a_protocol_error_naming_the_address() -> None:
    psu, _ = supply([("MEAS:VOLT? (@1)", "+1?20?00")])
    with pytest.raises(ProtocolError, match="TCPIP::psu::5025::SOCKET"):
        psu.measure_voltage(1)


def test_safe_state_switches_every_output_off_in_one_command() -> None:
    psu, transport = supply([("OUTP OFF,(@1,2,3)", None), ("SYST:ERR?", NO_ERROR)])
    psu.safe_state()
    transport.assert_done()


def test_reset_sends_rst_and_cls() -> None:
    psu, transport = supply([("*RST", None), ("*CLS", None)])
    psu.reset()
    transport.assert_done()


def test_close_releases_the_transport() -> None:
    psu, transport = supply([])
    psu.close()
    assert transport.closed


@pytest.mark.parametrize(
    ("model", "channel", "volts", "message"),
    [
        ("E36313A", 1, 6.5, "channel 1: voltage 6.5 V is outside 0 to 6 V"),
        ("E36313A", 2, 25.01, "channel 2: voltage 25.01 V is outside 0 to 25 V"),
        ("E36313A", 2, -1.0, "outside 0 to 25 V"),
        ("E36311A", 3, 5.0, "channel 3: voltage 5 V is outside -25 to 0 V"),
        ("E36313A", 4, 5.0, "has no channel 4"),
    ],
)
def test_voltage_outside_the_channel_rating_is_refused_before_sending(
    model: str, channel: int, volts: float, message: str
) -> None:
    psu, transport = supply([], model=model)
    with pytest.raises(ValueError, match=message):
        psu.set_voltage(channel, volts)
    transport.assert_done()


@pytest.mark.parametrize(
    ("model", "channel", "amps", "ok"),
    [
        ("E36313A", 1, 10.0, True),
        ("E36313A", 1, 10.5, False),
        ("E36313A", 2, 2.0, True),
        ("E36313A", 2, 2.1, False),
        ("E36312A", 1, 5.5, False),
        ("E36312A", 3, 1.0, True),
        ("E36313A", 2, -0.1, False),
    ],
)
def test_current_limit_follows_the_model_ratings(model: str, channel: int, amps: float, ok: bool) -> None:
    pairs: list[tuple[str, str | None]] = [
        (f"CURR {amps:.4f},(@{channel})", None),
        ("SYST:ERR?", NO_ERROR),
    ]
    psu, transport = supply(pairs if ok else [], model=model)
    if ok:
        psu.set_current_limit(channel, amps)
    else:
        with pytest.raises(ValueError, match="current limit"):
            psu.set_current_limit(channel, amps)
    transport.assert_done()


def test_measuring_an_unknown_channel_is_refused_before_sending() -> None:
    psu, transport = supply([])
    with pytest.raises(ValueError, match="no channel 0"):
        psu.measure_current(0)
    transport.assert_done()


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown E36300 model 'E36399A'"):
        KeysightE36300(ScriptedTransport([]), model="E36399A")


def test_ovp_level_is_set_and_read_per_channel() -> None:
    psu, transport = supply(
        [
            ("VOLT:PROT 13.2000,(@2)", None),
            ("SYST:ERR?", NO_ERROR),
            ("VOLT:PROT? (@2)", "+1.32000E+01"),
        ]
    )
    psu.set_ovp_level(2, 13.2)
    assert psu.ovp_level(2) == pytest.approx(13.2)
    transport.assert_done()


@pytest.mark.parametrize(
    ("channel", "volts", "ok"),
    [(1, 6.6, True), (1, 6.7, False), (2, 27.5, True), (2, 27.6, False), (2, -0.1, False)],
)
def test_ovp_level_is_limited_to_110_percent_of_the_rating(channel: int, volts: float, ok: bool) -> None:
    pairs: list[tuple[str, str | None]] = [
        (f"VOLT:PROT {volts:.4f},(@{channel})", None),
        ("SYST:ERR?", NO_ERROR),
    ]
    psu, transport = supply(pairs if ok else [])
    if ok:
        psu.set_ovp_level(channel, volts)
    else:
        with pytest.raises(ValueError, match="OVP level"):
            psu.set_ovp_level(channel, volts)
    transport.assert_done()


def test_ocp_is_armed_with_its_delay_and_read_back() -> None:
    psu, transport = supply(
        [
            ("CURR:PROT:STAT ON,(@3)", None),
            ("SYST:ERR?", NO_ERROR),
            ("CURR:PROT:DEL 0.020,(@3)", None),
            ("SYST:ERR?", NO_ERROR),
            ("CURR:PROT:STAT? (@3)", "1"),
            ("CURR:PROT:DEL? (@3)", "+2.00000E-02"),
        ]
    )
    psu.set_ocp_enabled(3, True)
    psu.set_ocp_delay(3, 0.02)
    assert psu.ocp_enabled(3) is True
    assert psu.ocp_delay(3) == pytest.approx(0.02)
    transport.assert_done()


@pytest.mark.parametrize(("channel", "seconds"), [(2, 0.3), (2, -0.001), (4, 0.01)])
def test_ocp_delay_outside_its_range_or_channel_is_refused(channel: int, seconds: float) -> None:
    psu, transport = supply([])
    with pytest.raises(ValueError, match=r"OCP delay|no channel"):
        psu.set_ocp_delay(channel, seconds)
    transport.assert_done()


def test_trips_are_queried_and_cleared_per_channel() -> None:
    psu, transport = supply(
        [
            ("VOLT:PROT:TRIP? (@2)", "1"),
            ("CURR:PROT:TRIP? (@2)", "0"),
            ("OUTP:PROT:CLE (@2)", None),
            ("SYST:ERR?", NO_ERROR),
        ]
    )
    assert psu.ovp_tripped(2) is True
    assert psu.ocp_tripped(2) is False
    psu.clear_protection(2)
    transport.assert_done()


def test_clearing_an_unknown_channel_is_refused_before_sending() -> None:
    psu, transport = supply([])
    with pytest.raises(ValueError, match="no channel 5"):
        psu.clear_protection(5)
    transport.assert_done()


def test_settings_are_declared_as_data_with_docstrings() -> None:
    psu, _ = supply([])
    assert set(psu.settings) == {"voltage", "current_limit", "output", "ovp_level", "ocp", "ocp_delay"}
    assert set(psu.readings) >= {"voltage", "current", "ovp_level", "ocp", "ovp_tripped", "ocp_tripped"}
    for entry in [*psu.settings.values(), *psu.readings.values()]:
        assert entry.doc.split()[0] in {"Set", "Get", "Measure", "Control"}


# The scripted transport itself must fail loudly, or every protocol test above could pass
# while the driver says something else.


def test_script_fails_on_an_unexpected_command() -> None:
    transport = ScriptedTransport([("*IDN?", IDN)])
    with pytest.raises(pytest.fail.Exception, match="script expects '\\*IDN\\?'"):
        transport.query("*RST?")


def test_script_fails_on_a_write_where_a_query_is_expected() -> None:
    transport = ScriptedTransport([("*IDN?", IDN)])
    with pytest.raises(pytest.fail.Exception, match="expects a query"):
        transport.write("*IDN?")


def test_script_fails_on_a_query_where_a_write_is_expected() -> None:
    transport = ScriptedTransport([("*RST", None)])
    with pytest.raises(pytest.fail.Exception, match="expects a write"):
        transport.query("*RST")


def test_script_fails_after_its_end_and_on_leftovers() -> None:
    transport = ScriptedTransport([("*RST", None), ("*CLS", None)])
    with pytest.raises(pytest.fail.Exception, match="not sent"):
        transport.assert_done()
    transport.write("*RST")
    transport.write("*CLS")
    transport.assert_done()
    with pytest.raises(pytest.fail.Exception, match="after the script ended"):
        transport.write("*RST")
