"""Keysight E36300 series triple-output bench supplies (E36311A, E36312A, E36313A).

Dialect: Keysight E36300 Series Programming Guide (SCPI 1999.0). Every channel-scoped command
names its output with a trailing channel list, `VOLT 12.0000,(@2)`, `MEAS:CURR? (@2)`, so no
INSTrument:SELect state is shared between threads. `*IDN?` answers
`Keysight Technologies,E36313A,<serial>,<firmware>`; `SYST:ERR?` answers `+0,"No error"`.

Rated outputs (Keysight E36300 datasheet): E36313A 6 V/10 A, 25 V/2 A, 25 V/2 A (160 W);
E36312A 6 V/5 A, 25 V/1 A, 25 V/1 A (80 W); E36311A 6 V/5 A, +25 V/1 A, -25 V/1 A (80 W).
Values are validated against the rated ranges, not the slightly wider programming ranges the
firmware accepts, so a plan can never ask for more than the datasheet guarantees.

Every setting is followed by one `SYST:ERR?`: a round trip of a millisecond on LAN against
settings made a few times per stage, and it turns a silently rejected setting (a -222 "Data
out of range" the front panel would show) into an immediate InstrumentError.

Output protection (E36300 Programming Guide, `[SOURce:]VOLTage:PROTection`, `[SOURce:]CURRent:
PROTection:STATe|DELay|TRIPped?`, `OUTPut:PROTection:CLEar`): over-voltage protection is always
armed at its level (up to 110 % of the rating *(check)*); over-current protection trips after
the output has been in constant current for the OCP delay (0 to 255 ms). A trip switches the
output off and latches; `clear_protection` releases the latch and restores the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import InstrumentError
from drivers.scpi import (
    Reading,
    Setting,
    channel_list,
    channel_range,
    drain_errors,
    encode_on_off,
    known_channel,
    parse_bool,
    parse_float,
    query_identity,
    value_range,
)
from drivers.transport.base import MessageTransport

MANUFACTURERS = ("Keysight Technologies", "Agilent Technologies")
OVP_HEADROOM = 1.10  # OVP reaches 10 % past the rating *(check against the E36300 guide)*
OCP_DELAY_MAX_S = 0.255


@dataclass(frozen=True)
class ChannelRating:
    """One output's rated voltage span and maximum current."""

    volts_low: float
    volts_high: float
    amps_max: float

    @property
    def ovp_max_v(self) -> float:
        """Return the highest over-voltage protection level, a magnitude in volts."""
        return OVP_HEADROOM * max(abs(self.volts_low), abs(self.volts_high))


RATINGS: dict[str, dict[int, ChannelRating]] = {
    "E36311A": {
        1: ChannelRating(0.0, 6.0, 5.0),
        2: ChannelRating(0.0, 25.0, 1.0),
        # The E36311A's third output is the -25 V one (datasheet); programmed as a negative
        # value like the E3631A's N25V output *(check against an E36311A)*.
        3: ChannelRating(-25.0, 0.0, 1.0),
    },
    "E36312A": {
        1: ChannelRating(0.0, 6.0, 5.0),
        2: ChannelRating(0.0, 25.0, 1.0),
        3: ChannelRating(0.0, 25.0, 1.0),
    },
    "E36313A": {
        1: ChannelRating(0.0, 6.0, 10.0),
        2: ChannelRating(0.0, 25.0, 2.0),
        3: ChannelRating(0.0, 25.0, 2.0),
    },
}


def _seconds(value: float) -> str:
    """Encode seconds with 1 ms resolution, the OCP delay's step."""
    return f"{value:.3f}"


def _checked_channel(
    channel_check: Callable[[object, int | None], None], check: Callable[[float, int | None], None]
) -> Callable[[float, int | None], None]:
    """Return a validator that checks the channel exists, then the value."""

    def validate(value: float, channel: int | None) -> None:
        channel_check(value, channel)
        check(value, channel)

    return validate


def _volts(value: float) -> str:
    """Encode volts with 0.1 mV resolution, finer than the supply's programming resolution."""
    return f"{value:.4f}"


def _amps(value: float) -> str:
    """Encode amperes with 0.1 mA resolution, finer than the supply's programming resolution."""
    return f"{value:.4f}"


class KeysightE36300:
    """Drive one E36300-series supply through a message transport (VISA over LAN or USB)."""

    def __init__(self, transport: MessageTransport, model: str = "E36313A") -> None:
        if model not in RATINGS:
            raise ValueError(f"unknown E36300 model {model!r}; known: {sorted(RATINGS)}")
        self._transport = transport
        self.address = transport.address
        self.model = model
        ratings = RATINGS[model]
        self.channels: tuple[int, ...] = tuple(sorted(ratings))
        owner = f"{model} at {self.address}"
        is_channel = known_channel(self.channels, owner)
        self.settings: dict[str, Setting[Any]] = {
            "voltage": Setting(
                "VOLT {value},(@{channel})",
                "Set a channel's output voltage in volts.",
                channel_range(
                    {ch: (r.volts_low, r.volts_high) for ch, r in ratings.items()},
                    "voltage",
                    "V",
                    owner,
                ),
                _volts,
            ),
            "current_limit": Setting(
                "CURR {value},(@{channel})",
                "Set a channel's current limit in amperes.",
                channel_range(
                    {ch: (0.0, r.amps_max) for ch, r in ratings.items()},
                    "current limit",
                    "A",
                    owner,
                ),
                _amps,
            ),
            "output": Setting(
                "OUTP {value},(@{channel})",
                "Control a channel's output relay: ON or OFF.",
                is_channel,
                encode_on_off,
            ),
            "ovp_level": Setting(
                "VOLT:PROT {value},(@{channel})",
                "Set a channel's over-voltage protection level in volts (a magnitude).",
                channel_range({ch: (0.0, r.ovp_max_v) for ch, r in ratings.items()}, "OVP level", "V", owner),
                _volts,
            ),
            "ocp": Setting(
                "CURR:PROT:STAT {value},(@{channel})",
                "Control a channel's over-current protection: ON or OFF.",
                is_channel,
                encode_on_off,
            ),
            "ocp_delay": Setting(
                "CURR:PROT:DEL {value},(@{channel})",
                "Set how long a channel may stay in constant current before OCP trips, in seconds.",
                _checked_channel(is_channel, value_range(0.0, OCP_DELAY_MAX_S, "OCP delay", "s", owner)),
                _seconds,
            ),
        }
        self.readings: dict[str, Reading[Any]] = {
            "voltage": Reading(
                "MEAS:VOLT? (@{channel})",
                "Measure a channel's output voltage in volts.",
                parse_float,
            ),
            "current": Reading(
                "MEAS:CURR? (@{channel})",
                "Measure a channel's output current in amperes.",
                parse_float,
            ),
            "voltage_setpoint": Reading(
                "VOLT? (@{channel})", "Get a channel's programmed voltage in volts.", parse_float
            ),
            "current_limit": Reading(
                "CURR? (@{channel})",
                "Get a channel's programmed current limit in amperes.",
                parse_float,
            ),
            "output": Reading("OUTP? (@{channel})", "Get whether a channel's output is on.", parse_bool),
            "ovp_level": Reading(
                "VOLT:PROT? (@{channel})",
                "Get a channel's over-voltage protection level in volts.",
                parse_float,
            ),
            "ocp": Reading(
                "CURR:PROT:STAT? (@{channel})",
                "Get whether a channel's over-current protection is on.",
                parse_bool,
            ),
            "ocp_delay": Reading(
                "CURR:PROT:DEL? (@{channel})",
                "Get a channel's over-current protection delay in seconds.",
                parse_float,
            ),
            "ovp_tripped": Reading(
                "VOLT:PROT:TRIP? (@{channel})",
                "Get whether a channel's over-voltage protection tripped.",
                parse_bool,
            ),
            "ocp_tripped": Reading(
                "CURR:PROT:TRIP? (@{channel})",
                "Get whether a channel's over-current protection tripped.",
                parse_bool,
            ),
        }
        self._is_channel = is_channel

    def identify(self) -> str:
        """Return the `*IDN?` string after checking it names this driver's model."""
        return query_identity(self._transport, MANUFACTURERS, "Keysight supply", self.model)

    def reset(self) -> None:
        """Reset to the power-on state (outputs off) and clear the status and error queue."""
        self._transport.write("*RST")
        self._transport.write("*CLS")

    def safe_state(self) -> None:
        """Switch every output off with one command, then check it was accepted."""
        command = f"OUTP OFF,{channel_list(self.channels)}"
        self._transport.write(command)
        self._check_errors(command)

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def set_voltage(self, channel: int, volts: float) -> None:
        """Set a channel's output voltage in volts."""
        self._apply("voltage", volts, channel)

    def set_current_limit(self, channel: int, amps: float) -> None:
        """Set a channel's current limit in amperes."""
        self._apply("current_limit", amps, channel)

    def set_output(self, channel: int, on: bool) -> None:
        """Switch a channel's output on or off."""
        self._apply("output", bool(on), channel)

    def measure_voltage(self, channel: int) -> float:
        """Measure a channel's output voltage in volts."""
        return float(self._read("voltage", channel))

    def measure_current(self, channel: int) -> float:
        """Measure a channel's output current in amperes."""
        return float(self._read("current", channel))

    def voltage_setpoint(self, channel: int) -> float:
        """Return a channel's programmed voltage in volts."""
        return float(self._read("voltage_setpoint", channel))

    def current_limit(self, channel: int) -> float:
        """Return a channel's programmed current limit in amperes."""
        return float(self._read("current_limit", channel))

    def output_on(self, channel: int) -> bool:
        """Return whether a channel's output is on."""
        return bool(self._read("output", channel))

    def set_ovp_level(self, channel: int, volts: float) -> None:
        """Set a channel's over-voltage protection level in volts."""
        self._apply("ovp_level", volts, channel)

    def ovp_level(self, channel: int) -> float:
        """Return a channel's over-voltage protection level in volts."""
        return float(self._read("ovp_level", channel))

    def set_ocp_enabled(self, channel: int, on: bool) -> None:
        """Arm or disarm a channel's over-current protection."""
        self._apply("ocp", bool(on), channel)

    def ocp_enabled(self, channel: int) -> bool:
        """Return whether a channel's over-current protection is armed."""
        return bool(self._read("ocp", channel))

    def set_ocp_delay(self, channel: int, seconds: float) -> None:
        """Set how long a channel may stay in constant current before OCP trips."""
        self._apply("ocp_delay", seconds, channel)

    def ocp_delay(self, channel: int) -> float:
        """Return a channel's over-current protection delay in seconds."""
        return float(self._read("ocp_delay", channel))

    def ovp_tripped(self, channel: int) -> bool:
        """Return whether a channel's over-voltage protection has tripped (and latched)."""
        return bool(self._read("ovp_tripped", channel))

    def ocp_tripped(self, channel: int) -> bool:
        """Return whether a channel's over-current protection has tripped (and latched)."""
        return bool(self._read("ocp_tripped", channel))

    def clear_protection(self, channel: int) -> None:
        """Clear a channel's protection latch; the output returns to its state before the trip."""
        self._is_channel(None, channel)
        command = f"OUTP:PROT:CLE (@{channel})"
        self._transport.write(command)
        self._check_errors(command)

    def _apply(self, name: str, value: float | bool, channel: int) -> None:
        """Render a declared setting (validating it first), send it, check the error queue."""
        setting = self.settings[name]
        command = setting.render(value, channel)
        self._transport.write(command)
        self._check_errors(command)

    def _read(self, name: str, channel: int) -> Any:
        """Query a declared reading for a channel and parse the reply."""
        self._is_channel(None, channel)
        reading = self.readings[name]
        query = reading.render(channel)
        return reading.decode(self._transport.query(query), self.address, query)

    def _check_errors(self, command: str) -> None:
        """Raise InstrumentError if the supply queued errors after `command`."""
        errors = drain_errors(self._transport.query, self.address)
        if errors:
            raise InstrumentError(self.address, f"{command!r} rejected: {'; '.join(errors)}")
