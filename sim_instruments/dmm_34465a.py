"""A simulated Keysight Truevolt DMM (34460A, 34461A, 34465A, 34470A): its SCPI dialect.

Answers as the Keysight Truevolt Series Operating and Service Guide describes: `MEASure:VOLTage
[:DC]? [<range>|AUTO|MIN|MAX|DEF[,<resolution>]]`, `MEASure:CURRent[:DC]?`, `MEASure:TEMPerature?
TC,<type>`, `CONFigure:...` followed by `READ?` (or `INITiate` then `FETCh?`), `*IDN?`,
`SYSTem:ERRor?`. Readings come in `+1.23456789E+01` form; a value beyond 120 % of the range,
or an open temperature input, reads `+9.90000000E+37`, the meter's overload value. Errors queue
for `SYST:ERR?` (`-113,"Undefined header"`) and a failed query sends nothing.

The meter reads lab signals wired to its inputs: a DC voltage, a DC current through the meter
and a thermocouple. `signal(function)` returns the true value now, or None for an input that
is not wired; `noise(function)` the reading noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sim_instruments import scpi_headers
from sim_instruments.scpi_headers import DATA_TYPE, ILLEGAL_VALUE, ScpiError

MODELS = ("34460A", "34461A", "34465A", "34470A")
MANUFACTURER = "Keysight Technologies"
FIRMWARE = "A.03.01-03.15-03.01-00.52-04-02"
ERROR_QUEUE_DEPTH = 20
OVERLOAD = 9.9e37
OVERRANGE = 1.2  # a range reads up to 120 % of its nominal value
DATA_STALE = (-230, "Data corrupt or stale")

FUNCTIONS = ("volts", "amps", "temp")
RANGES: dict[str, tuple[float, ...]] = {
    "volts": (0.1, 1.0, 10.0, 100.0, 1000.0),
    "amps": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0),
}
TC_TYPES = ("B", "E", "J", "K", "N", "R", "S", "T")
_HEADER_FUNCTION = {"VOLT": "volts", "CURR": "amps", "TEMP": "temp"}

_LONG_TO_SHORT = {
    "MEASURE": "MEAS",
    "CONFIGURE": "CONF",
    "VOLTAGE": "VOLT",
    "CURRENT": "CURR",
    "TEMPERATURE": "TEMP",
    "SYSTEM": "SYST",
    "ERROR": "ERR",
    "VERSION": "VERS",
    "INITIATE": "INIT",
    "IMMEDIATE": "IMM",
    "FETCH": "FETC",
}
_OPTIONAL_NODES = {"DC", "IMM", "NEXT", "SCAL"}
_ARG_SPLIT = re.compile(r"\s*,\s*")


def format_reading(value: float) -> str:
    """Format a reading as the Truevolt meters do: `+1.23456789E+01`."""
    return f"{value:+.8E}"


def canonical_header(header: str) -> str:
    """Reduce a SCPI header to this instrument's short form without optional nodes."""
    return scpi_headers.canonical_header(header, _LONG_TO_SHORT, _OPTIONAL_NODES)


class TruevoltSim:
    """The meter behind the socket: parses SCPI lines, keeps its configuration, reads inputs."""

    def __init__(
        self,
        model: str,
        serial: str,
        signal: Callable[[str], float | None],
        noise: Callable[[str], float],
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown Truevolt model {model!r}; known: {list(MODELS)}")
        self.model = model
        self.serial = serial
        self._signal = signal
        self._noise = noise
        self.errors: list[tuple[int, str]] = []
        self.function = "volts"
        self.range_v: float | None = None  # None: autorange
        self.probe = "TC"
        self.tc_type = "K"
        self.stored: str | None = None
        self._commands: dict[str, Callable[[str], str | None]] = {
            "*IDN?": lambda args: f"{MANUFACTURER},{self.model},{self.serial},{FIRMWARE}",
            "*RST": lambda args: self.reset(),
            "*CLS": lambda args: self.errors.clear(),
            "*OPC?": lambda args: "1",
            "SYST:ERR?": lambda args: self._next_error(),
            "SYST:VERS?": lambda args: "1999.0",
            "MEAS:VOLT?": lambda args: self._measure("volts", args),
            "MEAS:CURR?": lambda args: self._measure("amps", args),
            "MEAS:TEMP?": lambda args: self._measure("temp", args),
            "CONF:VOLT": lambda args: self._configure("volts", args),
            "CONF:CURR": lambda args: self._configure("amps", args),
            "CONF:TEMP": lambda args: self._configure("temp", args),
            "READ?": lambda args: self._read(),
            "INIT": lambda args: self._initiate(),
            "FETC?": lambda args: self._fetch(),
        }

    def reset(self) -> None:
        """Apply the *RST state: DC volts, autorange, no stored reading."""
        self.function = "volts"
        self.range_v = None
        self.probe = "TC"
        self.tc_type = "K"
        self.stored = None

    def handle(self, line: str) -> str | None:
        """Execute one command line; return the reply, or None for settings and errors."""
        return scpi_headers.dispatch(line, self._commands, canonical_header, self._push)

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` returns a reading (its reply can freeze)."""
        header = canonical_header(line.strip().partition(" ")[0])
        return header.startswith("MEAS:") or header in ("READ?", "FETC?")

    def impostor_reply(self, line: str) -> str | None:
        """Answer `*IDN?` as a sibling model would, for a wrong-identity fault."""
        if canonical_header(line.strip().partition(" ")[0]) != "*IDN?":
            return None
        other = "34461A" if self.model != "34461A" else "34465A"
        return f"{MANUFACTURER},{other},{self.serial},{FIRMWARE}"

    def snapshot(self) -> dict[str, Any]:
        """Return the configuration and error queue as JSON-ready data."""
        return {
            "function": self.function,
            "range_v": self.range_v,
            "probe": self.probe,
            "tc_type": self.tc_type,
            "stored": self.stored,
            "errors": [[code, message] for code, message in self.errors],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.function = str(state["function"])
        self.range_v = None if state["range_v"] is None else float(state["range_v"])
        self.probe = str(state["probe"])
        self.tc_type = str(state["tc_type"])
        self.stored = None if state["stored"] is None else str(state["stored"])
        self.errors = [(int(code), str(message)) for code, message in state["errors"]]

    def _push(self, code: int, message: str) -> None:
        """Queue an error; a full queue ends in -350 as on the instrument."""
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = (-350, "Error queue overflow")
            return
        self.errors.append((code, message))

    def _next_error(self) -> str:
        """Pop the oldest error, or `+0,"No error"`."""
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.pop(0)
        return f'{code:+d},"{message}"'

    def _configure(self, function: str, args: str) -> None:
        """Apply CONF:<function> [<range>|<probe>,<type>...]: what READ? and INIT measure."""
        tokens = [token.upper() for token in _ARG_SPLIT.split(args)] if args else []
        if function == "temp":
            # The meter's default probe is a 4-wire RTD; only `TC` reads the wired thermocouple.
            probe = tokens[0] if tokens else "DEF"
            if probe not in ("TC", "TCOUPLE", "DEF", "FRTD", "RTD", "THER", "FTH"):
                raise ScpiError(*ILLEGAL_VALUE)
            tc_type = tokens[1] if len(tokens) > 1 and tokens[1] != "DEF" else "K"
            if tc_type not in TC_TYPES:
                raise ScpiError(*ILLEGAL_VALUE)
            self.function, self.range_v = function, None
            self.probe, self.tc_type = ("TC" if probe in ("TC", "TCOUPLE") else probe), tc_type
        else:
            self.function, self.range_v = (
                function,
                self._parse_range(function, tokens[0] if tokens else "AUTO"),
            )
        self.stored = None

    def _parse_range(self, function: str, token: str) -> float | None:
        """Parse a range parameter: a value, AUTO/DEF (None), MIN or MAX."""
        ranges = RANGES[function]
        if token in ("AUTO", "DEF"):
            return None
        if token in ("MIN", "MINIMUM"):
            return ranges[0]
        if token in ("MAX", "MAXIMUM"):
            return ranges[-1]
        try:
            requested = float(token)
        except ValueError:
            raise ScpiError(*DATA_TYPE) from None
        fitting = [value for value in ranges if value >= abs(requested)]
        if not fitting:
            raise ScpiError(*ILLEGAL_VALUE)
        return fitting[0]

    def _measure(self, function: str, args: str) -> str:
        """Answer MEAS:<function>?: configure, then read."""
        self._configure(function, args)
        return self._read()

    def _read(self) -> str:
        """Answer READ?: one reading of the configured function."""
        value = self._signal(self.function)
        if self.function == "temp":
            if value is None or self.probe != "TC":
                return format_reading(OVERLOAD)
            return format_reading(value + self._noise("temp"))
        reading = (value or 0.0) + self._noise(self.function)
        ranges = (self.range_v,) if self.range_v is not None else RANGES[self.function]
        if not any(abs(reading) <= OVERRANGE * limit for limit in ranges):
            return format_reading(OVERLOAD if reading >= 0 else -OVERLOAD)
        return format_reading(reading)

    def _initiate(self) -> None:
        """Apply INIT: take a reading into memory for FETC?."""
        self.stored = self._read()

    def _fetch(self) -> str:
        """Answer FETC?: the reading INIT took; without one the meter queues -230."""
        if self.stored is None:
            raise ScpiError(*DATA_STALE)
        return self.stored
