"""A simulated Keysight E36300-series supply: its SCPI dialect and its programmable state.

Answers as the real instrument does (Keysight E36300 Series Programming Guide): short and long
header forms, optional nodes, channel lists `(@1)`, `(@1,3)`, `(@1:3)`, numeric replies in
`+1.20000E+01` form, no reply to settings, and errors queued for `SYST:ERR?` (`-113,"Undefined
header"`, `-222,"Data out of range"`). A query that fails queues its error and sends nothing,
so the client times out as it would on the bench.

The ratings table is the simulator's own, not the driver's: the simulated instrument is checked
against the manual independently of the driver that talks to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FIRMWARE = "2.1.0-1.0.4-1.12"
MANUFACTURER = "Keysight Technologies"
ERROR_QUEUE_DEPTH = 20

# model -> channel -> (volts low, volts high, amps max), from the E36300 datasheet.
RATINGS: dict[str, dict[int, tuple[float, float, float]]] = {
    "E36311A": {1: (0.0, 6.0, 5.0), 2: (0.0, 25.0, 1.0), 3: (-25.0, 0.0, 1.0)},
    "E36312A": {1: (0.0, 6.0, 5.0), 2: (0.0, 25.0, 1.0), 3: (0.0, 25.0, 1.0)},
    "E36313A": {1: (0.0, 6.0, 10.0), 2: (0.0, 25.0, 2.0), 3: (0.0, 25.0, 2.0)},
}

_LONG_TO_SHORT = {
    "VOLTAGE": "VOLT",
    "CURRENT": "CURR",
    "OUTPUT": "OUTP",
    "MEASURE": "MEAS",
    "SYSTEM": "SYST",
    "ERROR": "ERR",
    "SOURCE": "SOUR",
    "LEVEL": "LEV",
    "IMMEDIATE": "IMM",
    "AMPLITUDE": "AMPL",
    "SCALAR": "SCAL",
    "STATE": "STAT",
    "VERSION": "VERS",
}
# Nodes in square brackets in the manual's syntax: present or absent, same command.
_OPTIONAL_NODES = {"SOUR", "LEV", "IMM", "AMPL", "SCAL", "DC", "STAT", "NEXT"}
_ARGS = re.compile(r"^(?P<value>[^(]*?)\s*,?\s*(?:\(@(?P<channels>[^)]*)\))?\s*$")


class ScpiError(Exception):
    """A command error the instrument would queue for SYST:ERR?."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_TYPE = (-104, "Data type error")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
OUT_OF_RANGE = (-222, "Data out of range")


@dataclass
class ChannelState:
    """One output's programmed state."""

    volts: float
    amps_limit: float
    on: bool = False


def format_number(value: float) -> str:
    """Format a reply number as the E36300 does: `+1.20000E+01`."""
    return f"{value:+.5E}"


def canonical_header(header: str) -> str:
    """Reduce a SCPI header to its short form without optional nodes (`MEAS:VOLT?`)."""
    text = header.strip().lstrip(":").upper()
    is_query = text.endswith("?")
    text = text.rstrip("?")
    if text.startswith("*"):
        return text + ("?" if is_query else "")
    nodes = [_LONG_TO_SHORT.get(node, node) for node in text.split(":")]
    kept = [node for node in nodes if node not in _OPTIONAL_NODES] or nodes[:1]
    return ":".join(kept) + ("?" if is_query else "")


class E36300Sim:
    """The instrument behind the socket: parses SCPI lines, keeps settings, reports outputs.

    `measure(channel)` returns the true (volts, amps) at the terminals for the present time; the
    lab computes it from the loads, and `noise(kind, channel)` returns the reading noise.
    """

    def __init__(
        self,
        model: str,
        serial: str,
        measure: Callable[[int], tuple[float, float]],
        noise: Callable[[str, int], float],
    ) -> None:
        if model not in RATINGS:
            raise ValueError(f"unknown E36300 model {model!r}; known: {sorted(RATINGS)}")
        self.model = model
        self.serial = serial
        self.ratings = RATINGS[model]
        self._measure = measure
        self._noise = noise
        self.channels: dict[int, ChannelState] = {}
        self.errors: list[tuple[int, str]] = []
        self.reset()
        self._commands: dict[str, Callable[[str], str | None]] = {
            "*IDN?": self._idn,
            "*RST": lambda args: self.reset(),
            "*CLS": lambda args: self._clear(),
            "*OPC?": lambda args: "1",
            "SYST:ERR?": self._next_error,
            "SYST:VERS?": lambda args: "1999.0",
            "VOLT": self._set_volts,
            "VOLT?": lambda args: self._query(args, lambda ch: format_number(ch.volts)),
            "CURR": self._set_amps,
            "CURR?": lambda args: self._query(args, lambda ch: format_number(ch.amps_limit)),
            "OUTP": self._set_output,
            "OUTP?": lambda args: self._query(args, lambda ch: "1" if ch.on else "0"),
            "MEAS:VOLT?": lambda args: self._measure_query(args, "volts"),
            "MEAS:CURR?": lambda args: self._measure_query(args, "amps"),
        }

    def reset(self) -> None:
        """Apply the *RST state: outputs off, 0 V, current limits at the rated maximum."""
        self.channels = {
            ch: ChannelState(volts=0.0, amps_limit=amps) for ch, (_, _, amps) in self.ratings.items()
        }

    def handle(self, line: str) -> str | None:
        """Execute one command line; return the reply, or None for settings and errors."""
        text = line.strip()
        if not text:
            return None
        header, _, args = text.partition(" ")
        command = self._commands.get(canonical_header(header))
        if command is None:
            self._push(*UNDEFINED_HEADER)
            return None
        try:
            return command(args.strip())
        except ScpiError as exc:
            self._push(exc.code, exc.message)
            return None

    def snapshot(self) -> dict[str, Any]:
        """Return the programmable state as JSON-ready data."""
        return {
            "channels": {
                str(ch): {"volts": st.volts, "amps_limit": st.amps_limit, "on": st.on}
                for ch, st in self.channels.items()
            },
            "errors": [[code, message] for code, message in self.errors],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.channels = {
            int(ch): ChannelState(
                volts=float(st["volts"]), amps_limit=float(st["amps_limit"]), on=bool(st["on"])
            )
            for ch, st in state["channels"].items()
        }
        self.errors = [(int(code), str(message)) for code, message in state["errors"]]

    def _push(self, code: int, message: str) -> None:
        """Queue an error; a full queue ends in -350 as on the instrument."""
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = (-350, "Error queue overflow")
            return
        self.errors.append((code, message))

    def _clear(self) -> None:
        """Clear the error queue (*CLS)."""
        self.errors.clear()

    def _idn(self, args: str) -> str:
        """Answer *IDN? in the IEEE 488.2 four-field form."""
        return f"{MANUFACTURER},{self.model},{self.serial},{FIRMWARE}"

    def _next_error(self, args: str) -> str:
        """Pop the oldest error, or `+0,"No error"`."""
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.pop(0)
        return f'{code:+d},"{message}"'

    def _parse_args(self, args: str) -> tuple[str, list[int]]:
        """Split `<value>,(@<list>)` into the value text and the channels it names."""
        match = _ARGS.match(args)
        if match is None:
            raise ScpiError(*DATA_TYPE)
        value = match.group("value").strip()
        listed = match.group("channels")
        # Without a channel list a command acts on the selected output, channel 1 after *RST.
        channels = self._parse_channel_list(listed) if listed is not None else [1]
        return value, channels

    def _parse_channel_list(self, text: str) -> list[int]:
        """Expand `1,3` or `1:3` into channel numbers; unknown channels are -224."""
        channels: list[int] = []
        try:
            for item in text.split(","):
                first, _, last = item.strip().partition(":")
                low = int(first)
                high = int(last) if last else low
                channels.extend(range(low, high + 1))
        except ValueError:
            raise ScpiError(*ILLEGAL_VALUE) from None
        if not channels or any(ch not in self.ratings for ch in channels):
            raise ScpiError(*ILLEGAL_VALUE)
        return channels

    def _number(self, text: str, low: float, high: float, default: float) -> float:
        """Parse a numeric parameter or MIN/MAX/DEF; out of [low, high] is -222."""
        keyword = text.upper()
        if keyword in ("MIN", "MINIMUM"):
            return low
        if keyword in ("MAX", "MAXIMUM"):
            return high
        if keyword in ("DEF", "DEFAULT"):
            return default
        try:
            value = float(text)
        except ValueError:
            raise ScpiError(*DATA_TYPE) from None
        if not low <= value <= high:
            raise ScpiError(*OUT_OF_RANGE)
        return value

    def _set_volts(self, args: str) -> None:
        """Apply VOLT <v>,(@list); nothing changes unless every channel accepts the value."""
        value_text, channels = self._parse_args(args)
        values = [self._number(value_text, *self.ratings[ch][:2], 0.0) for ch in channels]
        for ch, value in zip(channels, values, strict=True):
            self.channels[ch].volts = value

    def _set_amps(self, args: str) -> None:
        """Apply CURR <a>,(@list); nothing changes unless every channel accepts the value."""
        value_text, channels = self._parse_args(args)
        values = [self._number(value_text, 0.0, self.ratings[ch][2], self.ratings[ch][2]) for ch in channels]
        for ch, value in zip(channels, values, strict=True):
            self.channels[ch].amps_limit = value

    def _set_output(self, args: str) -> None:
        """Apply OUTP ON|OFF|1|0,(@list)."""
        value_text, channels = self._parse_args(args)
        token = value_text.upper()
        if token in ("ON", "1"):
            on = True
        elif token in ("OFF", "0"):
            on = False
        else:
            raise ScpiError(*ILLEGAL_VALUE)
        for ch in channels:
            self.channels[ch].on = on

    def _query(self, args: str, render: Callable[[ChannelState], str]) -> str:
        """Answer a setting query for every listed channel, comma-separated."""
        value_text, channels = self._parse_args(args)
        if value_text:
            raise ScpiError(*DATA_TYPE)
        return ",".join(render(self.channels[ch]) for ch in channels)

    def _measure_query(self, args: str, kind: str) -> str:
        """Answer MEAS:VOLT? or MEAS:CURR?: terminal truth plus reading noise per channel."""
        value_text, channels = self._parse_args(args)
        if value_text:
            raise ScpiError(*DATA_TYPE)
        readings = []
        for ch in channels:
            volts, amps = self._measure(ch)
            true_value = volts if kind == "volts" else amps
            readings.append(format_number(true_value + self._noise(kind, ch)))
        return ",".join(readings)
