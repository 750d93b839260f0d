"""A simulated Quarch Torridon array controller with a hot-plug drive module on each port.

Quarch drive modules sit between a backplane and a drive and switch its power: a pulled module
is a drive removed from its slot, which is what power-off bakes, hot-plug and power-loss tests
need per slot. Dialect (Torridon command set, as Quarch's quarchpy library and application
notes AN-003/AN-006 use it on the serial interface, 19200 8N1): the module echoes each command
line, answers, then prints its `>` prompt; commands are case-insensitive with `:` or spaces
between nodes and short or long node names (`RUN:POWer UP`, `run pow up`); a trailing `<n>`
addresses array port n, and the reply lines of a port then start with `n:`.

    *IDN? [<n>]              Family:/Name:/Part#:/Processor:/Serial# lines
    hello? [<n>]             one line naming the controller or the module
    RUN:POWer UP <n>         OK   (plug: power the drive)
    RUN:POWer DOWN <n>       OK   (pull: remove its power)
    RUN:POWer? <n>           PLUGGED | PULLED
    CONF:DEFault:STATE <n>   OK   (the module's default state: plugged)

A command the module refuses answers `FAIL: 0x<code> -<reason>`. The failure codes and texts,
the `hello?` wording and the firmware fields are the simulator's own, shaped like Quarch's.
"""

from __future__ import annotations

import re
from typing import Any

CONTROLLER_MODELS = ("QTL1461", "QTL1079")
MODULE_PART = "QTL1743-03"
FIRMWARE = "QTL1159-01,4.007"
MAX_PORTS = 28
_ADDRESS = re.compile(r"\s*<(?P<port>\d+)>\s*$")
_NODES = re.compile(r"[:\s]+")
_LONG_TO_SHORT = {"POWER": "POW", "CONFIG": "CONF", "DEFAULT": "DEF"}
BAD_COMMAND = "FAIL: 0x40 -Command not recognised"
NO_MODULE = "FAIL: 0x41 -No module at this port"


def _nodes(command: str) -> list[str]:
    """Split a command into upper-case short-form nodes: `run:power? ` -> [RUN, POW?]."""
    nodes = []
    for node in _NODES.split(command.strip().upper()):
        if node:
            base = node.rstrip("?")
            nodes.append(_LONG_TO_SHORT.get(base, base) + node[len(base) :])
    return nodes


class QuarchArraySim:
    """The array controller behind the serial line and the drive modules on its ports."""

    def __init__(self, model: str, serial: str, ports: int) -> None:
        if model not in CONTROLLER_MODELS:
            raise ValueError(f"unknown Quarch array controller {model!r}; known: {list(CONTROLLER_MODELS)}")
        if not 1 <= ports <= MAX_PORTS:
            raise ValueError(f"an array controller has 1 to {MAX_PORTS} ports, not {ports}")
        self.model = model
        self.serial = serial
        self.ports = ports
        # A drive module powers up plugged, so a slot without commands behaves as if no switch
        # were there.
        self.plugged: dict[int, bool] = dict.fromkeys(range(1, ports + 1), True)

    def is_on(self, port: int) -> bool:
        """Return whether the module on `port` powers its drive."""
        return self.plugged[port]

    def handle(self, line: str) -> str | None:
        """Execute one command line; return the reply body (the server adds echo and prompt)."""
        text = line.strip()
        if not text:
            return None
        match = _ADDRESS.search(text)
        port = int(match.group("port")) if match else None
        command = text[: match.start()] if match else text
        nodes = _nodes(command)
        if port is None:
            return self._controller(nodes)
        if port not in self.plugged:
            return f"{port}:{NO_MODULE}"
        return "\r\n".join(f"{port}:{reply}" for reply in self._module(nodes, port).split("\r\n"))

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` reads a power state (its reply can freeze)."""
        return _nodes(_ADDRESS.sub("", line)) == ["RUN", "POW?"]

    def impostor_reply(self, line: str) -> str | None:
        """Answer the controller's `*IDN?` or `hello?` as the other array controller would."""
        if _ADDRESS.search(line) is not None:
            return None
        other = next(model for model in CONTROLLER_MODELS if model != self.model)
        nodes = _nodes(line)
        if nodes == ["*IDN?"]:
            return self._idn("Array Controller", f"{other}-02", f"{other}-02-{self.serial}")
        if nodes == ["HELLO?"]:
            return f"{other} Array Controller"
        return None

    def snapshot(self) -> dict[str, Any]:
        """Return the port states as JSON-ready data."""
        return {"plugged": {str(port): on for port, on in self.plugged.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.plugged = {int(port): bool(on) for port, on in state["plugged"].items()}

    def _idn(self, name: str, part: str, serial: str) -> str:
        """Return a Torridon `*IDN?` block."""
        return "\r\n".join(
            [
                "Family:Torridon System",
                f"Name:{name}",
                f"Part#:{part}",
                f"Processor:{FIRMWARE}",
                f"Serial#:{serial}",
            ]
        )

    def _controller(self, nodes: list[str]) -> str:
        """Answer a command addressed to the controller itself."""
        if nodes == ["*IDN?"]:
            return self._idn("Array Controller", f"{self.model}-02", f"{self.model}-02-{self.serial}")
        if nodes == ["HELLO?"]:
            return f"{self.model} Array Controller"
        return BAD_COMMAND

    def _module(self, nodes: list[str], port: int) -> str:
        """Answer a command addressed to the drive module on `port`."""
        if nodes == ["*IDN?"]:
            return self._idn("Drive Module", MODULE_PART, f"{MODULE_PART}-{self.serial}-{port:02d}")
        if nodes == ["HELLO?"]:
            return f"{MODULE_PART} Drive Module"
        if nodes == ["RUN", "POW?"]:
            return "PLUGGED" if self.plugged[port] else "PULLED"
        if nodes[:2] == ["RUN", "POW"] and len(nodes) == 3 and nodes[2] in ("UP", "DOWN"):
            self.plugged[port] = nodes[2] == "UP"
            return "OK"
        if nodes == ["CONF", "DEF", "STATE"]:
            self.plugged[port] = True
            return "OK"
        return BAD_COMMAND
