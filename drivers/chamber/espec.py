"""ESPEC temperature chambers with an SCP-220 or P-300 controller, over RS-232C/RS-485.

Dialect: ESPEC "SCP-220 / P-300 Communication Command Manual" (as implemented by ESPEC North
America's ChamberConnectLibrary): ASCII lines ending in CR LF, and every command is answered.
Queries answer with data (`TEMP?` -> `measured,setpoint,upper alarm,lower alarm`,
`TYPE?` -> `T,SCP220,150.0`, `MODE?` -> `CONSTANT`, `MON?` -> `temp,humidity,mode,alarms`,
`ALARM?` -> `count[,code...]`); settings answer `OK:<command>` (`OK:TEMP, S25.0`) and rejected
commands answer `NA:<reason>` (`NA:CMD ERR`, `NA:DATA OUT OF RANGE`).

Temperature alarms: `TEMP, H<upper> L<lower>` sets the absolute alarm band (`TEMP?` fields 3
and 4). Air leaving the band stops the controller (heaters and refrigeration off), `MODE?` then
answers STANDBY and `ALARM?` lists the codes; a new run command acknowledges the alarm.

Safe state leaves the chamber running, in constant mode at ambient (25 °C), rather than in
STANDBY: standby stops the air circulation and the refrigeration, so DUTs at 125 °C would cool
slowly with no airflow and a cold chamber would draw in moist room air and wet the boards.
Running to ambient brings the load to a temperature a technician can handle, under control.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.errors import InstrumentError, ProtocolError
from drivers.scpi import Reading, Setting, value_range
from drivers.transport.base import MessageTransport

AMBIENT_C = 25.0


def _csv_float(index: int) -> Callable[[str], float]:
    """Return a parser of comma-separated field `index` as a float."""

    def parse(reply: str) -> float:
        return float(reply.split(",")[index])

    return parse


def _parse_alarms(reply: str) -> list[int]:
    """Parse `ALARM?`: a count followed by that many alarm codes."""
    fields = [field.strip() for field in reply.split(",")]
    count = int(fields[0])
    codes = [int(code) for code in fields[1:]]
    if len(codes) != count:
        raise ValueError(f"alarm count {count} but {len(codes)} codes")
    return codes


def _parse_mode(reply: str) -> str:
    """Parse `MODE?`: one of OFF, STANDBY, CONSTANT, RUN."""
    mode = reply.strip()
    if mode not in ("OFF", "STANDBY", "CONSTANT", "RUN"):
        raise ValueError(f"unknown mode {mode!r}")
    return mode


def _temp_setpoint(temp_c: float) -> str:
    """Encode a setpoint with the controller's 0.1 °C resolution."""
    return f"{temp_c:.1f}"


class EspecChamber:
    """Drive an ESPEC chamber controller (SCP-220 or P-300) through a message transport."""

    def __init__(
        self,
        transport: MessageTransport,
        min_temp_c: float = -40.0,
        max_temp_c: float = 150.0,
        ambient_c: float = AMBIENT_C,
        controller: str | None = None,
    ) -> None:
        if min_temp_c >= max_temp_c:
            raise ValueError(f"min_temp_c {min_temp_c} must be below max_temp_c {max_temp_c}")
        self._transport = transport
        self.address = transport.address
        self.min_temp_c = min_temp_c
        self.max_temp_c = max_temp_c
        self.ambient_c = ambient_c
        self.controller = controller
        owner = f"ESPEC chamber at {self.address}"
        self.settings: dict[str, Setting[Any]] = {
            "setpoint": Setting(
                "TEMP, S{value}",
                "Set the constant-mode temperature setpoint in °C.",
                value_range(min_temp_c, max_temp_c, "setpoint", "°C", owner),
                _temp_setpoint,
            ),
            "mode": Setting(
                "MODE, {value}",
                "Control the operating mode: CONSTANT runs to the setpoint, STANDBY stops.",
                _known_mode,
            ),
            "alarm_limits": Setting(
                "TEMP, {value}",
                "Set the absolute alarm band (upper, lower) in °C; leaving it stops the chamber.",
                _alarm_band,
                _encode_band,
            ),
        }
        self.readings: dict[str, Reading[Any]] = {
            "temperature": Reading("TEMP?", "Measure the chamber air temperature in °C.", _csv_float(0)),
            "setpoint": Reading("TEMP?", "Get the active temperature setpoint in °C.", _csv_float(1)),
            "upper_alarm": Reading("TEMP?", "Get the upper alarm limit in °C.", _csv_float(2)),
            "lower_alarm": Reading("TEMP?", "Get the lower alarm limit in °C.", _csv_float(3)),
            "mode": Reading("MODE?", "Get the operating mode.", _parse_mode),
            "alarms": Reading("ALARM?", "Get the active alarm codes.", _parse_alarms),
            "rom": Reading("ROM?", "Get the controller firmware (ROM) version.", str.strip),
            "type": Reading("TYPE?", "Get sensor type, controller model and maximum °C.", str.strip),
        }

    def identify(self) -> str:
        """Return `ESPEC,<controller>,0,<ROM version>` built from `TYPE?` and `ROM?`.

        The controller reports no serial number, so the serial field is `0` as IEEE 488.2
        prescribes for an absent field. A driver configured for one controller refuses another.
        """
        type_reply = str(self._read("type"))
        fields = [field.strip() for field in type_reply.split(",")]
        if len(fields) not in (3, 4):
            raise ProtocolError(self.address, f"TYPE? reply is not sensor,controller,max: {type_reply!r}")
        controller = fields[-2]
        if self.controller is not None and controller != self.controller:
            raise ProtocolError(
                self.address,
                f"configured for controller {self.controller} but the chamber reports {controller}",
            )
        rom = str(self._read("rom")).replace(",", " ")
        return f"ESPEC,{controller},0,{rom}"

    def set_temperature(self, temp_c: float) -> None:
        """Set the setpoint and run constant mode so the chamber goes to it."""
        self._apply("setpoint", temp_c)
        self._apply("mode", "CONSTANT")

    def standby(self) -> None:
        """Stop temperature control (STANDBY): heaters, refrigeration and fan stop."""
        self._apply("mode", "STANDBY")

    def read_temperature(self) -> float:
        """Measure the chamber air temperature in °C."""
        return float(self._read("temperature"))

    def read_setpoint(self) -> float:
        """Return the active setpoint in °C."""
        return float(self._read("setpoint"))

    def read_mode(self) -> str:
        """Return the operating mode: OFF, STANDBY, CONSTANT or RUN."""
        return str(self._read("mode"))

    def read_alarms(self) -> list[int]:
        """Return the active alarm codes, empty when there are none."""
        return list(self._read("alarms"))

    def set_alarm_limits(self, upper_c: float, lower_c: float) -> None:
        """Set the absolute alarm band in °C."""
        self._apply("alarm_limits", (upper_c, lower_c))

    def read_alarm_limits(self) -> tuple[float, float]:
        """Return the absolute alarm band as (upper °C, lower °C)."""
        return float(self._read("upper_alarm")), float(self._read("lower_alarm"))

    def safe_state(self) -> None:
        """Run the chamber to ambient in constant mode (see the module docstring for why)."""
        self.set_temperature(self.ambient_c)

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _apply(self, name: str, value: Any) -> None:
        """Send a declared setting and check the controller acknowledged it with `OK:`."""
        command = self.settings[name].render(value)
        reply = self._transport.query(command)
        if reply.startswith("NA:"):
            raise InstrumentError(self.address, f"{command!r} rejected: {reply[3:].strip()}")
        if not reply.startswith("OK:"):
            raise ProtocolError(self.address, f"{command!r}: unexpected reply {reply!r}")

    def _read(self, name: str) -> Any:
        """Query a declared reading and parse it; an `NA:` reply is an InstrumentError."""
        reading = self.readings[name]
        command = reading.render()
        reply = self._transport.query(command)
        if reply.startswith("NA:"):
            raise InstrumentError(self.address, f"{command!r} rejected: {reply[3:].strip()}")
        return reading.decode(reply, self.address, command)


def _alarm_band(band: tuple[float, float], channel: int | None) -> None:
    """Accept an alarm band whose upper limit lies above its lower one."""
    upper_c, lower_c = band
    if not lower_c < upper_c:
        raise ValueError(f"alarm band: upper {upper_c:g} °C must lie above lower {lower_c:g} °C")


def _encode_band(band: tuple[float, float]) -> str:
    """Encode an alarm band as the controller's `H<upper> L<lower>` with 0.1 °C resolution."""
    return f"H{band[0]:.1f} L{band[1]:.1f}"


def _known_mode(value: str, channel: int | None) -> None:
    """Accept the modes this driver commands."""
    if value not in ("CONSTANT", "STANDBY"):
        raise ValueError(f"mode {value!r} is not CONSTANT or STANDBY")
