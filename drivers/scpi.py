"""Declarative command tables for message-based instruments (pymeasure style).

A driver declares each setting and reading once, as data: its command template, the validator
that guards it and the parser of its reply. Methods then render and decode through the table
instead of hand-writing one get/set pair per property. Used by SCPI drivers and by instruments
with their own ASCII dialects alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from drivers.errors import InstrumentError, ProtocolError
from drivers.transport.base import MessageTransport

V = TypeVar("V")
T = TypeVar("T")


def accept_any(value: object, channel: int | None) -> None:
    """Accept every value: for settings whose domain the instrument itself defines."""


@dataclass(frozen=True)
class Setting(Generic[V]):
    """A value written to the instrument: template, validator and encoder."""

    command: str
    """Template with `{value}` and, for per-channel settings, `{channel}`."""
    doc: str
    validator: Callable[[V, int | None], None] = accept_any
    encode: Callable[[V], str] = str

    def render(self, value: V, channel: int | None = None) -> str:
        """Validate `value` and return the command line that sets it."""
        self.validator(value, channel)
        return self.command.format(value=self.encode(value), channel=channel)


@dataclass(frozen=True)
class Reading(Generic[T]):
    """A value read from the instrument: query template and reply parser."""

    command: str
    """Template, with `{channel}` for per-channel readings and any named query parameters."""
    doc: str
    parse: Callable[[str], T]

    def render(self, channel: int | None = None, **parameters: object) -> str:
        """Return the query line, with `parameters` filling named fields of the template."""
        return self.command.format(channel=channel, **parameters)

    def decode(self, reply: str, address: str, query: str | None = None) -> T:
        """Parse `reply`; raise ProtocolError naming the address and the query when it does not parse."""
        try:
            return self.parse(reply)
        except (ValueError, IndexError) as exc:
            raise ProtocolError(address, f"{(query or self.command)!r}: unparsable reply {reply!r}") from exc


def one_of(values: tuple[str, ...], quantity: str, owner: str) -> Callable[[str, int | None], None]:
    """Return a validator that accepts only the listed keyword values."""

    def validate(value: str, channel: int | None) -> None:
        if value not in values:
            raise ValueError(f"{owner}: {quantity} {value!r} is not one of {list(values)}")

    return validate


def channel_range(
    limits: Mapping[int, tuple[float, float]], quantity: str, unit: str, owner: str
) -> Callable[[float, int | None], None]:
    """Return a validator that checks a value against its channel's inclusive [low, high]."""

    def validate(value: float, channel: int | None) -> None:
        if channel is None or channel not in limits:
            raise ValueError(f"{owner} has no channel {channel}; channels are {sorted(limits)}")
        low, high = limits[channel]
        if not low <= value <= high:
            raise ValueError(
                f"{owner} channel {channel}: {quantity} {value:g} {unit} is outside "
                f"{low:g} to {high:g} {unit}"
            )

    return validate


def value_range(
    low: float, high: float, quantity: str, unit: str, owner: str
) -> Callable[[float, int | None], None]:
    """Return a validator that checks a channel-less value against inclusive [low, high]."""

    def validate(value: float, channel: int | None) -> None:
        if not low <= value <= high:
            raise ValueError(f"{owner}: {quantity} {value:g} {unit} is outside {low:g} to {high:g} {unit}")

    return validate


def known_channel(channels: tuple[int, ...], owner: str) -> Callable[[object, int | None], None]:
    """Return a validator that only checks the channel exists."""

    def validate(value: object, channel: int | None) -> None:
        if channel not in channels:
            raise ValueError(f"{owner} has no channel {channel}; channels are {list(channels)}")

    return validate


def parse_float(reply: str) -> float:
    """Parse one SCPI numeric reply (`+1.20000E+01`)."""
    return float(reply.strip())


def parse_bool(reply: str) -> bool:
    """Parse a SCPI boolean reply (`1`/`0`, `ON`/`OFF`)."""
    token = reply.strip().upper()
    if token in ("1", "ON"):
        return True
    if token in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean: {reply!r}")


def encode_on_off(on: bool) -> str:
    """Encode a boolean as the SCPI keyword `ON` or `OFF`."""
    return "ON" if on else "OFF"


def channel_list(channels: tuple[int, ...]) -> str:
    """Return a SCPI channel list, `(@1,2,3)`."""
    return "(@" + ",".join(str(ch) for ch in channels) + ")"


def parse_error(reply: str) -> tuple[int, str]:
    """Parse a `SYST:ERR?` reply (`-113,"Undefined header"`) into code and message."""
    code_text, _, message = reply.partition(",")
    return int(code_text), message.strip().strip('"')


def drain_errors(query: Callable[[str], str], address: str, limit: int = 20) -> list[str]:
    """Read `SYST:ERR?` until the queue is empty; return the errors found, oldest first."""
    errors: list[str] = []
    for _ in range(limit):
        reply = query("SYST:ERR?")
        try:
            code, message = parse_error(reply)
        except ValueError as exc:
            raise ProtocolError(address, f"'SYST:ERR?': unparsable reply {reply!r}") from exc
        if code == 0:
            return errors
        errors.append(f"{code},{message}")
    raise InstrumentError(address, f"error queue did not empty after {limit} reads: {errors}")


def query_identity(
    transport: MessageTransport, manufacturers: tuple[str, ...], what: str, model: str | None = None
) -> str:
    """Query `*IDN?` and check the IEEE 488.2 four-field form, the maker and (if given) the model.

    `what` names the instrument kind for the error (e.g. "Keysight supply").
    """
    address = transport.address
    reply = transport.query("*IDN?").strip()
    fields = [field.strip() for field in reply.split(",")]
    if len(fields) != 4:
        raise ProtocolError(address, f"*IDN? reply is not four fields: {reply!r}")
    if fields[0] not in manufacturers:
        raise ProtocolError(address, f"not a {what}: {reply!r}")
    if model is not None and fields[1] != model:
        raise ProtocolError(address, f"configured as {model} but the instrument is {fields[1]}")
    return reply
