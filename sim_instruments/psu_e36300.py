"""A simulated Keysight E36300-series supply: its SCPI dialect and its programmable state.

Answers as the real instrument does (Keysight E36300 Series Programming Guide): short and long
header forms, optional nodes, channel lists `(@1)`, `(@1,3)`, `(@1:3)`, numeric replies in
`+1.20000E+01` form, no reply to settings, and errors queued for `SYST:ERR?` (`-113,"Undefined
header"`, `-222,"Data out of range"`). A query that fails queues its error and sends nothing,
so the client times out as it would on the bench.

Output protection, per channel: over-voltage (`VOLT:PROT <v>`, always armed, level from 0 to
110 % of the rating, `MAX` after *RST) and over-current (`CURR:PROT:STAT ON`, off after *RST,
tripping once the output has been in constant current for `CURR:PROT:DEL`, 50 ms after *RST
*(check)*). A trip latches: the output switches off, `OUTP?` answers 0, `VOLT:PROT:TRIP?` or
`CURR:PROT:TRIP?` answers 1, and `OUTP ON` leaves it off until `OUTP:PROT:CLE` clears the latch
and restores the output to the state it had before the trip (the E36300 guide's wording). The
lab decides when a trip happens, because only the lab knows the load.

The ratings table is the simulator's own, not the driver's: the simulated instrument is checked
against the manual independently of the driver that talks to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim_instruments import scpi_headers
from sim_instruments.scpi_headers import DATA_TYPE, ILLEGAL_VALUE, ScpiError

# Over-voltage protection reaches 10 % past the rated output *(check against the E36300 guide)*.
OVP_HEADROOM = 1.10
OCP_DELAY_DEFAULT_S = 0.050
OCP_DELAY_MAX_S = 0.255

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
    "PROTECTION": "PROT",
    "TRIPPED": "TRIP",
    "CLEAR": "CLE",
    "DELAY": "DEL",
}
# Nodes in square brackets in the manual's syntax: present or absent, same command. `STATe` is
# optional in `OUTPut[:STATe]`; in `CURRent:PROTection:STATe` it is not, but the E36300 has no
# `CURRent:PROTection[:LEVel]` for the short form to collide with.
_OPTIONAL_NODES = {"SOUR", "LEV", "IMM", "AMPL", "SCAL", "DC", "STAT", "NEXT", "TIME"}
_ARGS = re.compile(r"^(?P<value>[^(]*?)\s*,?\s*(?:\(@(?P<channels>[^)]*)\))?\s*$")


OUT_OF_RANGE = (-222, "Data out of range")


@dataclass
class ChannelState:
    """One output's programmed state and its protection latches."""

    volts: float
    amps_limit: float
    on: bool = False
    ovp_v: float = 0.0
    ocp_on: bool = False
    ocp_delay_s: float = OCP_DELAY_DEFAULT_S
    ovp_tripped: bool = False
    ocp_tripped: bool = False

    @property
    def tripped(self) -> bool:
        """Return whether a protection latch holds the output off."""
        return self.ovp_tripped or self.ocp_tripped

    def snapshot(self) -> dict[str, Any]:
        """Return the channel state as JSON-ready data."""
        return {
            "volts": self.volts,
            "amps_limit": self.amps_limit,
            "on": self.on,
            "ovp_v": self.ovp_v,
            "ocp_on": self.ocp_on,
            "ocp_delay_s": self.ocp_delay_s,
            "ovp_tripped": self.ovp_tripped,
            "ocp_tripped": self.ocp_tripped,
        }

    @classmethod
    def from_snapshot(cls, state: dict[str, Any]) -> ChannelState:
        """Build a channel from snapshot() data."""
        return cls(
            volts=float(state["volts"]),
            amps_limit=float(state["amps_limit"]),
            on=bool(state["on"]),
            ovp_v=float(state["ovp_v"]),
            ocp_on=bool(state["ocp_on"]),
            ocp_delay_s=float(state["ocp_delay_s"]),
            ovp_tripped=bool(state["ovp_tripped"]),
            ocp_tripped=bool(state["ocp_tripped"]),
        )


def ovp_max_v(rating: tuple[float, float, float]) -> float:
    """Return the highest over-voltage protection level of a channel (magnitude, volts)."""
    low, high, _ = rating
    return OVP_HEADROOM * max(abs(low), abs(high))


def format_number(value: float) -> str:
    """Format a reply number as the E36300 does: `+1.20000E+01`."""
    return f"{value:+.5E}"


def canonical_header(header: str) -> str:
    """Reduce a SCPI header to this instrument's short form without optional nodes."""
    return scpi_headers.canonical_header(header, _LONG_TO_SHORT, _OPTIONAL_NODES)


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
            "VOLT:PROT": self._set_ovp,
            "VOLT:PROT?": lambda args: self._query(args, lambda ch: format_number(ch.ovp_v)),
            "VOLT:PROT:TRIP?": lambda args: self._query(args, lambda ch: "1" if ch.ovp_tripped else "0"),
            "CURR:PROT": self._set_ocp,
            "CURR:PROT?": lambda args: self._query(args, lambda ch: "1" if ch.ocp_on else "0"),
            "CURR:PROT:DEL": self._set_ocp_delay,
            "CURR:PROT:DEL?": lambda args: self._query(args, lambda ch: format_number(ch.ocp_delay_s)),
            "CURR:PROT:TRIP?": lambda args: self._query(args, lambda ch: "1" if ch.ocp_tripped else "0"),
            "OUTP:PROT:CLE": self._clear_protection,
        }

    def reset(self) -> None:
        """Apply the *RST state: outputs off, 0 V, limits at the rating, OVP at max, OCP off."""
        self.channels = {
            ch: ChannelState(volts=0.0, amps_limit=rating[2], ovp_v=ovp_max_v(rating))
            for ch, rating in self.ratings.items()
        }

    def trip(self, channel: int, protection: str) -> None:
        """Latch a protection trip (`ovp` or `ocp`): the output switches off until cleared."""
        state = self.channels[channel]
        if protection == "ovp":
            state.ovp_tripped = True
        elif protection == "ocp":
            state.ocp_tripped = True
        else:
            raise ValueError(f"unknown protection {protection!r}")
        state.on = False

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` measures the outputs (its reply can freeze)."""
        header = line.strip().partition(" ")[0]
        return canonical_header(header) in ("MEAS:VOLT?", "MEAS:CURR?")

    def impostor_reply(self, line: str) -> str | None:
        """Answer `*IDN?` as a sibling model would, for a wrong-identity fault."""
        if canonical_header(line.strip().partition(" ")[0]) != "*IDN?":
            return None
        other = "E36312A" if self.model != "E36312A" else "E36313A"
        return f"{MANUFACTURER},{other},{self.serial},{FIRMWARE}"

    def handle(self, line: str) -> str | None:
        """Execute one command line; return the reply, or None for settings and errors."""
        return scpi_headers.dispatch(line, self._commands, canonical_header, self._push)

    def snapshot(self) -> dict[str, Any]:
        """Return the programmable state as JSON-ready data."""
        return {
            "channels": {str(ch): st.snapshot() for ch, st in self.channels.items()},
            "errors": [[code, message] for code, message in self.errors],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.channels = {int(ch): ChannelState.from_snapshot(st) for ch, st in state["channels"].items()}
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
            # A latched protection holds the output off whatever OUTP asks, until cleared.
            self.channels[ch].on = on and not self.channels[ch].tripped

    def _set_ovp(self, args: str) -> None:
        """Apply VOLT:PROT <v>,(@list): the over-voltage level, a magnitude in volts."""
        value_text, channels = self._parse_args(args)
        values = [
            self._number(value_text, 0.0, ovp_max_v(self.ratings[ch]), ovp_max_v(self.ratings[ch]))
            for ch in channels
        ]
        for ch, value in zip(channels, values, strict=True):
            self.channels[ch].ovp_v = value

    def _set_ocp(self, args: str) -> None:
        """Apply CURR:PROT:STAT ON|OFF|1|0,(@list): arm or disarm over-current protection."""
        value_text, channels = self._parse_args(args)
        token = value_text.upper()
        if token not in ("ON", "1", "OFF", "0"):
            raise ScpiError(*ILLEGAL_VALUE)
        for ch in channels:
            self.channels[ch].ocp_on = token in ("ON", "1")

    def _set_ocp_delay(self, args: str) -> None:
        """Apply CURR:PROT:DEL <s>,(@list): how long constant current lasts before OCP trips."""
        value_text, channels = self._parse_args(args)
        value = self._number(value_text, 0.0, OCP_DELAY_MAX_S, OCP_DELAY_DEFAULT_S)
        for ch in channels:
            self.channels[ch].ocp_delay_s = value

    def _clear_protection(self, args: str) -> None:
        """Apply OUTP:PROT:CLE (@list): clear the latches and restore the outputs that tripped."""
        value_text, channels = self._parse_args(args)
        if value_text:
            raise ScpiError(*DATA_TYPE)
        for ch in channels:
            state = self.channels[ch]
            if state.tripped:
                # Only an output that was on can trip, so "the state before the trip" is on; if
                # the cause persists the lab trips it again at once (OVP) or after the delay (OCP).
                state.ovp_tripped = state.ocp_tripped = False
                state.on = True

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
