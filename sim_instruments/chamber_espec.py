"""A simulated ESPEC SCP-220 chamber controller: its serial command dialect.

Answers as the SCP-220 / P-300 communication manual describes: every command gets one reply;
queries answer with data, accepted settings echo the command after `OK:`, and rejected ones
answer `NA:` with the controller's reason (`NA:CMD ERR`, `NA:PARA ERR`,
`NA:DATA OUT OF RANGE`). The air temperature itself comes from the lab's chamber model.

Temperature alarms: `TEMP, H<upper> L<lower>` sets the absolute alarm band that `TEMP?` reports
in its third and fourth fields. When the air leaves the band the controller stops (heaters and
refrigeration off, as the ESPEC manual's alarm stop): `MODE?` answers STANDBY, `ALARM?` answers
the count and codes, `MON?` the count. A new `MODE, CONSTANT` or `POWER, ON` acknowledges the
alarm and restarts control (the panel's reset on the real chamber); if the air is still outside
the band the alarm trips again at once. Alarm codes are the simulator's own numbering (1: upper
temperature alarm, 2: lower), not verified against the P-300 code table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

CONTROLLER = "SCP220"
ROM_VERSION = "1.22"
MODES = ("OFF", "STANDBY", "CONSTANT")

_SETTING = re.compile(r"^(?P<header>[A-Z]+)\s*,\s*(?P<params>.*)$")
_TEMP_PARAM = re.compile(r"^(?P<which>[SHL])\s*(?P<value>[-+]?\d+(?:\.\d*)?)$")


class ChamberAir(Protocol):
    """What the dialect needs from the lab's chamber model."""

    setpoint_c: float
    upper_alarm_c: float
    lower_alarm_c: float
    min_c: float
    max_c: float

    @property
    def mode(self) -> str:
        """Return the operating mode now (STANDBY after an alarm stop)."""
        ...

    def air_temp_c(self) -> float:
        """Return the air temperature now."""
        ...

    def alarms(self) -> list[int]:
        """Return the active alarm codes now."""
        ...

    def change(self, *, setpoint_c: float | None = None, mode: str | None = None) -> None:
        """Change the setpoint and/or mode from now on."""
        ...

    def set_alarm_limits(self, upper_c: float, lower_c: float) -> None:
        """Set the absolute alarm band from now on."""
        ...


class EspecSim:
    """The controller behind the serial line: parses commands and answers every one."""

    def __init__(self, chamber: ChamberAir, noise: Callable[[], float]) -> None:
        self._chamber = chamber
        self._noise = noise

    def handle(self, line: str) -> str | None:
        """Execute one command line and return the controller's reply."""
        text = line.strip().upper()
        if not text:
            return None
        queries: dict[str, Callable[[], str]] = {
            "ROM?": lambda: ROM_VERSION,
            "TYPE?": lambda: f"T,{CONTROLLER},{self._chamber.max_c:.1f}",
            "TEMP?": self._temp,
            "MODE?": lambda: self._chamber.mode,
            "MON?": lambda: f"{self._measured_c():.1f},,{self._chamber.mode},{len(self._chamber.alarms())}",
            "ALARM?": self._alarms,
        }
        if text in queries:
            return queries[text]()
        match = _SETTING.match(text)
        if match is None:
            return "NA:CMD ERR"
        header, params = match.group("header"), match.group("params").strip()
        if header == "TEMP":
            error = self._set_temp(params)
        elif header == "MODE":
            error = self._set_mode(params)
        elif header == "POWER":
            error = self._set_power(params)
        else:
            return "NA:CMD ERR"
        return f"NA:{error}" if error else f"OK:{line.strip()}"

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` reads the air temperature (its reply can freeze)."""
        return line.strip().upper() in ("TEMP?", "MON?")

    def impostor_reply(self, line: str) -> str | None:
        """Answer `TYPE?` as another controller would, for a wrong-identity fault."""
        if line.strip().upper() != "TYPE?":
            return None
        return f"T,P-300,{self._chamber.max_c:.1f}"

    def _alarms(self) -> str:
        """Answer ALARM?: the number of active alarms, then their codes."""
        codes = self._chamber.alarms()
        return ",".join(str(value) for value in [len(codes), *codes])

    def _measured_c(self) -> float:
        """Return the displayed air temperature: model plus sensor noise."""
        return self._chamber.air_temp_c() + self._noise()

    def _temp(self) -> str:
        """Answer TEMP?: measured, setpoint, upper alarm, lower alarm."""
        ch = self._chamber
        return f"{self._measured_c():.1f},{ch.setpoint_c:.1f},{ch.upper_alarm_c:.1f},{ch.lower_alarm_c:.1f}"

    def _set_temp(self, params: str) -> str | None:
        """Apply `S<sp> H<upper> L<lower>` (any subset); return an error reason or None."""
        values: dict[str, float] = {}
        for token in params.split():
            match = _TEMP_PARAM.match(token)
            if match is None:
                return "PARA ERR"
            values[match.group("which")] = float(match.group("value"))
        if not values:
            return "PARA ERR"
        ch = self._chamber
        upper = values.get("H", ch.upper_alarm_c)
        lower = values.get("L", ch.lower_alarm_c)
        setpoint = values.get("S", ch.setpoint_c)
        if not ch.min_c <= setpoint <= ch.max_c or not lower < setpoint < upper:
            return "DATA OUT OF RANGE"
        if "H" in values or "L" in values:
            ch.set_alarm_limits(upper, lower)
        if "S" in values:
            ch.change(setpoint_c=setpoint)
        return None

    def _set_mode(self, params: str) -> str | None:
        """Apply MODE, OFF | STANDBY | CONSTANT; programs (RUN) are not stored here."""
        if params in MODES:
            self._chamber.change(mode=params)
            return None
        if params.startswith("RUN"):
            return "DATA NOT READY"
        return "PARA ERR"

    def _set_power(self, params: str) -> str | None:
        """Apply POWER, ON (run constant) | OFF (controller off)."""
        if params == "ON":
            self._chamber.change(mode="CONSTANT")
            return None
        if params == "OFF":
            self._chamber.change(mode="OFF")
            return None
        return "PARA ERR"
