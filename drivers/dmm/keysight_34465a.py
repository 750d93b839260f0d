"""Keysight Truevolt digital multimeters (34460A, 34461A, 34465A, 34470A).

Dialect: Keysight Truevolt Series Digital Multimeters Operating and Service Guide (SCPI 1999.0):
`MEASure:VOLTage:DC?`, `MEASure:CURRent:DC?` and `MEASure:TEMPerature? TC,<type>` configure and
read in one query; `CONFigure:<function>` then `READ?` read again without reconfiguring. A reading
is `+1.23456789E+01`; `±9.9E37` is the meter's overload (input beyond the range, or an open
probe), which this driver reports as an InstrumentError rather than a number. `*IDN?` answers
`Keysight Technologies,34465A,<serial>,<firmware>`; the four models share the dialect.

Settings are followed by one `SYST:ERR?`, as for the supplies, so a rejected configuration
raises at once instead of surfacing as a wrong reading later.
"""

from __future__ import annotations

from typing import Any

from drivers.errors import InstrumentError
from drivers.scpi import Reading, Setting, drain_errors, one_of, parse_float, query_identity
from drivers.transport.base import MessageTransport

MANUFACTURERS = ("Keysight Technologies", "Agilent Technologies")
MODELS = ("34460A", "34461A", "34465A", "34470A")
THERMOCOUPLE_TYPES = ("B", "E", "J", "K", "N", "R", "S", "T")
OVERLOAD = 9.9e37
# CONFigure arguments per function: autorange, and a type-K thermocouple by default.
FUNCTIONS = {
    "dc_voltage": "VOLT:DC AUTO",
    "dc_current": "CURR:DC AUTO",
    "temperature": "TEMP TC,K",
}


class KeysightTruevolt:
    """Drive one Truevolt DMM through a message transport (VISA over LAN or USB)."""

    def __init__(self, transport: MessageTransport, model: str = "34465A") -> None:
        if model not in MODELS:
            raise ValueError(f"unknown Truevolt model {model!r}; known: {list(MODELS)}")
        self._transport = transport
        self.address = transport.address
        self.model = model
        owner = f"{model} at {self.address}"
        self.settings: dict[str, Setting[Any]] = {
            "function": Setting(
                "CONF:{value}",
                "Set the function READ? measures: dc_voltage, dc_current or temperature (type K).",
                one_of(tuple(FUNCTIONS), "function", owner),
                FUNCTIONS.__getitem__,
            ),
        }
        self.readings: dict[str, Reading[float]] = {
            "dc_voltage": Reading("MEAS:VOLT:DC?", "Measure DC voltage in volts, autoranged.", parse_float),
            "dc_current": Reading("MEAS:CURR:DC?", "Measure DC current in amperes, autoranged.", parse_float),
            "temperature": Reading(
                "MEAS:TEMP? TC,{tc_type}", "Measure a thermocouple's temperature in °C.", parse_float
            ),
            "reading": Reading("READ?", "Measure once with the configured function.", parse_float),
        }

    def identify(self) -> str:
        """Return the `*IDN?` string after checking it names this driver's model."""
        return query_identity(self._transport, MANUFACTURERS, "Keysight meter", self.model)

    def reset(self) -> None:
        """Reset to the power-on state (DC volts, autorange) and clear the error queue."""
        self._transport.write("*RST")
        self._transport.write("*CLS")

    def safe_state(self) -> None:
        """Return to DC volts: the high-impedance function, harmless whatever is wired."""
        self.configure("dc_voltage")

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def configure(self, function: str) -> None:
        """Set the function `read()` measures: dc_voltage, dc_current or temperature."""
        command = self.settings["function"].render(function)
        self._transport.write(command)
        errors = drain_errors(self._transport.query, self.address)
        if errors:
            raise InstrumentError(self.address, f"{command!r} rejected: {'; '.join(errors)}")

    def read(self) -> float:
        """Measure once with the configured function."""
        return self._measure("reading")

    def measure_dc_voltage(self) -> float:
        """Measure DC voltage in volts."""
        return self._measure("dc_voltage")

    def measure_dc_current(self) -> float:
        """Measure DC current in amperes."""
        return self._measure("dc_current")

    def measure_temperature(self, tc_type: str = "K") -> float:
        """Measure a thermocouple of `tc_type` in °C."""
        if tc_type not in THERMOCOUPLE_TYPES:
            raise ValueError(f"{self.model} at {self.address}: no thermocouple type {tc_type!r}")
        return self._measure("temperature", tc_type=tc_type)

    def _measure(self, name: str, tc_type: str = "K") -> float:
        """Query a declared reading; an overload reading is an InstrumentError, not a value."""
        reading = self.readings[name]
        command = reading.render(tc_type=tc_type)
        value = reading.decode(self._transport.query(command), self.address, command)
        if abs(value) >= OVERLOAD:
            raise InstrumentError(self.address, f"{command!r}: overload (input beyond range, or probe open)")
        return value
