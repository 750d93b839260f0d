"""Quarch Torridon array controllers (QTL1461, QTL1079) switching DUT slots with drive modules.

A hot-plug drive module sits between the backplane and one drive and switches its power: pulled
is a drive removed from its slot. Dialect: Quarch's Torridon command set on the serial interface
(19200 8N1; station option `baudrate: 19200`), as Quarch's quarchpy library and application
notes AN-003 (U.2 hot-swap) and AN-006 (Python control) use it:

- every command is answered; the module echoes the command line, prints the reply lines, then
  its `>` prompt (this driver sets the serial transport's framing accordingly);
- a trailing `<n>` addresses array port n, and each reply line of a port starts with `n:`;
- `RUN:POWer UP <n>` / `RUN:POWer DOWN <n>` answer `OK`; `RUN:POWer? <n>` answers `PLUGGED` or
  `PULLED` (a power module answers `ON` or `OFF`); a refused command answers `FAIL: <reason>`;
- `*IDN?` answers `Key:value` lines (Family, Name, Part#, Processor, Serial#, ...).

Slots map to array ports one to one unless `port_map` says otherwise. Safe state pulls every
port the driver manages: a pulled drive is unpowered whatever the supply does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from drivers.errors import InstrumentError, ProtocolError
from drivers.scpi import Reading, Setting, one_of
from drivers.transport.base import MessageTransport

MODELS = ("QTL1461", "QTL1079")
ON_STATES = ("PLUGGED", "ON")
OFF_STATES = ("PULLED", "OFF")
_PORT_PREFIX = re.compile(r"^\d+(?:\.\d+)*:")


@runtime_checkable
class FramedTransport(Protocol):
    """A transport whose reply framing a driver can set (the serial transport)."""

    def set_framing(self, *, echo: bool, prompt: str) -> None:
        """Set echo and prompt framing."""
        ...


def _body(reply: str) -> list[str]:
    """Return a reply's lines without a leftover prompt or the `n:` port prefixes."""
    lines = []
    for line in reply.strip().lstrip(">").strip().splitlines():
        text = _PORT_PREFIX.sub("", line.strip(), count=1).strip()
        if text:
            lines.append(text)
    return lines


def _power_state(reply: str) -> bool:
    """Parse `RUN:POWer?`: PLUGGED/ON is powered, PULLED/OFF is not."""
    (state,) = _body(reply)
    if state.upper() in ON_STATES:
        return True
    if state.upper() in OFF_STATES:
        return False
    raise ValueError(f"unknown power state {state!r}")


class QuarchArray:
    """Drive a Quarch array controller's slot modules through a message transport."""

    def __init__(
        self,
        transport: MessageTransport,
        model: str = "QTL1461",
        ports: int | Sequence[int] = 4,
        port_map: Mapping[int, int] | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown Quarch array controller {model!r}; known: {list(MODELS)}")
        self._transport = transport
        self.address = transport.address
        self.model = model
        self.ports: tuple[int, ...] = tuple(range(1, ports + 1)) if isinstance(ports, int) else tuple(ports)
        self.port_map = dict(port_map or {})
        if isinstance(transport, FramedTransport):
            transport.set_framing(echo=True, prompt=">")
        owner = f"{model} at {self.address}"
        self.settings: dict[str, Setting[str]] = {
            "power": Setting(
                "RUN:POWer {value} <{channel}>",
                "Control a port's drive power: UP plugs the drive, DOWN pulls it.",
                one_of(("UP", "DOWN"), "power", owner),
            ),
        }
        self.readings: dict[str, Reading[bool]] = {
            "power": Reading("RUN:POWer? <{channel}>", "Get whether a port powers its drive.", _power_state),
        }

    def identify(self) -> str:
        """Return `Quarch Technology,<part>,<serial>,<processor firmware>` from `*IDN?`."""
        reply = self._transport.query("*IDN?")
        fields: dict[str, str] = {}
        for line in _body(reply):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        part = fields.get("Part#")
        if part is None:
            raise ProtocolError(self.address, f"*IDN? reply names no Part#: {reply!r}")
        if not part.startswith(self.model):
            raise ProtocolError(self.address, f"configured as {self.model} but the controller is {part}")
        return f"Quarch Technology,{part},{fields.get('Serial#', '0')},{fields.get('Processor', '')}"

    def power_on(self, slot: int) -> None:
        """Plug a slot's drive: its power comes on."""
        self._apply("UP", slot)

    def power_off(self, slot: int) -> None:
        """Pull a slot's drive: its power goes off."""
        self._apply("DOWN", slot)

    def is_on(self, slot: int) -> bool:
        """Return whether a slot's drive is powered."""
        reading = self.readings["power"]
        command = reading.render(self._port(slot))
        reply = self._transport.query(command)
        self._check_failure(command, reply)
        return reading.decode(reply, self.address, command)

    def cycle(self, slot: int, off_s: float = 0.0, sleep: Callable[[float], None] | None = None) -> None:
        """Pull a slot, wait `off_s` through `sleep` (the run's clock), then plug it again."""
        self.power_off(slot)
        if sleep is not None and off_s > 0:
            sleep(off_s)
        self.power_on(slot)

    def safe_state(self) -> None:
        """Pull every managed slot, so no DUT is powered through this switch."""
        for port in self.ports:
            self._send(self.settings["power"].render("DOWN", port))

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _port(self, slot: int) -> int:
        """Return the array port that switches `slot`."""
        port = self.port_map.get(slot, slot)
        if port not in self.ports:
            raise ValueError(
                f"{self.model} at {self.address} has no port for slot {slot} (ports {self.ports})"
            )
        return port

    def _apply(self, value: str, slot: int) -> None:
        """Send a power setting to the slot's port and check it answered OK."""
        self._send(self.settings["power"].render(value, self._port(slot)))

    def _send(self, command: str) -> None:
        """Send an action and require its `OK`."""
        reply = self._transport.query(command)
        self._check_failure(command, reply)
        if _body(reply) != ["OK"]:
            raise ProtocolError(self.address, f"{command!r}: unexpected reply {reply!r}")

    def _check_failure(self, command: str, reply: str) -> None:
        """Raise InstrumentError when the module refused the command (`FAIL: ...`)."""
        body = _body(reply)
        if body and body[0].upper().startswith("FAIL"):
            raise InstrumentError(self.address, f"{command!r} refused: {' '.join(body)}")
