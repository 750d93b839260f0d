"""Protocol tests: the exact SCPI conversation of the Keysight Truevolt DMM driver."""

from __future__ import annotations

import pytest

from drivers.dmm.keysight_34465a import KeysightTruevolt
from drivers.errors import InstrumentError, ProtocolError
from drivers.protocols import Multimeter
from tests.support.scripted import ScriptedTransport

NO_ERROR = '+0,"No error"'
IDN = "Keysight Technologies,34465A,MY57000001,A.03.01-03.15-03.01-00.52-04-02"


def meter(
    pairs: list[tuple[str, str | None]], model: str = "34465A"
) -> tuple[KeysightTruevolt, ScriptedTransport]:
    """Return a driver on a scripted transport."""
    transport = ScriptedTransport(pairs, address="TCPIP::dmm::5025::SOCKET")
    return KeysightTruevolt(transport, model=model), transport


def test_driver_provides_the_multimeter_capability() -> None:
    dmm, _ = meter([])
    assert isinstance(dmm, Multimeter)
    assert dmm.address == "TCPIP::dmm::5025::SOCKET"


def test_identify_returns_the_idn_string() -> None:
    dmm, transport = meter([("*IDN?", IDN)])
    assert dmm.identify() == IDN
    transport.assert_done()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (IDN.replace("34465A", "34461A"), "configured as 34465A but the instrument is 34461A"),
        ("Rigol Technologies,34465A,X,1", "not a Keysight meter"),
        ("Keysight Technologies,34465A", "not four fields"),
    ],
)
def test_identify_rejects_another_model_or_a_malformed_identity(reply: str, message: str) -> None:
    dmm, transport = meter([("*IDN?", reply)])
    with pytest.raises(ProtocolError, match=message):
        dmm.identify()
    transport.assert_done()


def test_measure_queries_configure_and_read_in_one_command() -> None:
    dmm, transport = meter(
        [
            ("MEAS:VOLT:DC?", "+1.20012345E+01"),
            ("MEAS:CURR:DC?", "-4.98765432E-01"),
            ("MEAS:TEMP? TC,K", "+8.51234567E+01"),
            ("MEAS:TEMP? TC,J", "+2.50000000E+01"),
        ]
    )
    assert dmm.measure_dc_voltage() == pytest.approx(12.0012345)
    assert dmm.measure_dc_current() == pytest.approx(-0.498765432)
    assert dmm.measure_temperature() == pytest.approx(85.1234567)
    assert dmm.measure_temperature("J") == pytest.approx(25.0)
    transport.assert_done()


def test_an_unknown_thermocouple_type_is_refused_before_sending() -> None:
    dmm, transport = meter([])
    with pytest.raises(ValueError, match="no thermocouple type 'X'"):
        dmm.measure_temperature("X")
    transport.assert_done()


def test_configure_then_read_checks_the_error_queue() -> None:
    dmm, transport = meter(
        [("CONF:CURR:DC AUTO", None), ("SYST:ERR?", NO_ERROR), ("READ?", "+1.00000000E-03")]
    )
    dmm.configure("dc_current")
    assert dmm.read() == pytest.approx(1e-3)
    transport.assert_done()


def test_a_rejected_configuration_raises_with_the_queued_error() -> None:
    dmm, transport = meter(
        [("CONF:TEMP TC,K", None), ("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", NO_ERROR)]
    )
    with pytest.raises(InstrumentError, match="-113,Undefined header"):
        dmm.configure("temperature")
    transport.assert_done()


def test_an_unknown_function_is_refused_before_sending() -> None:
    dmm, transport = meter([])
    with pytest.raises(ValueError, match="function 'resistance'"):
        dmm.configure("resistance")
    transport.assert_done()


@pytest.mark.parametrize("reply", ["+9.90000000E+37", "-9.90000000E+37"])
def test_an_overload_reading_is_an_instrument_error_not_a_value(reply: str) -> None:
    dmm, _ = meter([("MEAS:VOLT:DC?", reply)])
    with pytest.raises(InstrumentError, match="overload"):
        dmm.measure_dc_voltage()


def test_a_garbled_reading_is_a_protocol_error_naming_the_address() -> None:
    dmm, _ = meter([("MEAS:VOLT:DC?", "+1.2?01?34")])
    with pytest.raises(ProtocolError, match="TCPIP::dmm::5025::SOCKET"):
        dmm.measure_dc_voltage()


def test_safe_state_returns_to_dc_volts() -> None:
    dmm, transport = meter([("CONF:VOLT:DC AUTO", None), ("SYST:ERR?", NO_ERROR)])
    dmm.safe_state()
    transport.assert_done()


def test_reset_and_close() -> None:
    dmm, transport = meter([("*RST", None), ("*CLS", None)])
    dmm.reset()
    dmm.close()
    transport.assert_done()
    assert transport.closed


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Truevolt model '34401A'"):
        KeysightTruevolt(ScriptedTransport([]), model="34401A")


def test_settings_and_readings_are_declared_as_data_with_docstrings() -> None:
    dmm, _ = meter([])
    assert set(dmm.settings) == {"function"}
    assert set(dmm.readings) == {"dc_voltage", "dc_current", "temperature", "reading"}
    for entry in [*dmm.settings.values(), *dmm.readings.values()]:
        assert entry.doc.split()[0] in {"Set", "Get", "Measure", "Control"}
