"""Driver for DIMM slot testers speaking qualify's tester dialect (docs/dimm_tester_dialect.md).

Settings and readings are declared as data (drivers.scpi); every setting is followed by one
`SYST:ERR?` so a rejected value fails at once. A run is started with `RUN` and polled with
`STAT?` until it leaves RUNNING; the tester then reports the device time the run took (`TIME?`)
and its fail log (`ERR:LOG? first,count`, 64 entries a page, `0xADDR,0xMASK,ELEM,OP` separated by
`;`). Algorithm names are qualify.march's, so a plan's `March C-` means the same on the tester
and in the host memory-test engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.scpi import (
    Reading,
    Setting,
    drain_errors,
    encode_on_off,
    parse_bool,
    parse_float,
    query_identity,
    value_range,
)
from drivers.transport.base import MessageTransport
from qualify.march import algorithm

MANUFACTURERS = ("Qualify Instruments",)
LOG_PAGE = 64
PATTERNS = ("SOLID0", "SOLID1", "CHECKER", "CHECKER_INV", "ROWSTRIPE", "ROWSTRIPE_INV", "HAMMER")
FINISHED = ("PASS", "FAIL", "ABORTED", "ERROR", "IDLE")


@dataclass(frozen=True)
class FailEntry:
    """Record one failing word of a run: address, failing bits, the element/op that first caught it."""

    address: int
    mask: int
    element: int
    op: int


@dataclass(frozen=True)
class MemoryTestResult:
    """Hold what one tester run reports."""

    slot: int
    test: str
    state: str
    duration_s: float
    error_count: int
    error_bits: int
    failures: tuple[FailEntry, ...]

    @property
    def passed(self) -> bool:
        """Get whether the run finished with no failing word."""
        return self.state == "PASS"

    @property
    def failing_addresses(self) -> list[int]:
        """Get the logged failing word addresses, ascending."""
        return sorted(entry.address for entry in self.failures)


def _quoted(text: str) -> str:
    return f'"{text}"'


def _known_algorithm(value: str, channel: int | None) -> None:
    try:
        algorithm(value)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None


def _known_pattern(value: str, channel: int | None) -> None:
    if value not in PATTERNS:
        raise ValueError(f"unknown pattern {value!r}; the tester knows {', '.join(PATTERNS)}")


def _ms(value: float) -> str:
    return f"{value:g}"


def parse_quoted(reply: str) -> str:
    """Parse a quoted string reply (`"March C-"`)."""
    text = reply.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError(f"not a quoted string: {reply!r}")
    return text[1:-1]


def parse_int(reply: str) -> int:
    """Parse an integer reply."""
    return int(reply.strip())


def parse_log(reply: str) -> list[FailEntry]:
    """Parse one `ERR:LOG?` page: `0xADDR,0xMASK,ELEM,OP` entries separated by `;` (empty: none)."""
    text = reply.strip()
    if not text:
        return []
    entries = []
    for part in text.split(";"):
        address, mask, element, op = part.split(",")
        entries.append(FailEntry(int(address, 16), int(mask, 16), int(element), int(op)))
    return entries


class DimmTester:
    """Drive a qualify-dialect DIMM tester over a message transport; implements MemoryTester."""

    def __init__(
        self,
        transport: MessageTransport,
        *,
        slots: int = 8,
        poll_s: float = 0.5,
        run_timeout_s: float = 7 * 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.address = transport.address
        self.slots = tuple(range(1, slots + 1))
        self._poll_s = poll_s
        self._run_timeout_s = run_timeout_s
        self._sleep = sleep
        self._clock = clock
        owner = f"DIMM tester at {self.address}"
        self.settings: dict[str, Setting[Any]] = {
            "slot": Setting(
                "SLOT {value}", "Set the slot the following commands address.", _slot_check(self.slots, owner)
            ),
            "algorithm": Setting(
                "TEST:ALG {value}",
                "Set the march algorithm by qualify.march name.",
                _known_algorithm,
                _quoted,
            ),
            "notation": Setting(
                "TEST:NOT {value}", "Set a march test by its notation (ASCII).", encode=_quoted
            ),
            "pattern": Setting("TEST:PATT {value}", "Set a data-pattern or hammer test.", _known_pattern),
            "delay_ms": Setting(
                "TEST:DEL {value}",
                "Set the retention pause before each reading element in ms (0: none).",
                value_range(0, 3_600_000, "delay", "ms", owner),
                _ms,
            ),
            "hold_ms": Setting(
                "TEST:HOLD {value}",
                "Set a pattern test's hold time in ms.",
                value_range(0, 3_600_000, "hold", "ms", owner),
                _ms,
            ),
            "refresh_ms": Setting(
                "REFR:INT {value}",
                "Set the refresh interval in ms.",
                value_range(1, 10_000, "refresh interval", "ms", owner),
                _ms,
            ),
            "tcr": Setting(
                "REFR:TCR {value}",
                "Control temperature-compensated refresh (interval halves above 85 °C).",
                encode=encode_on_off,
            ),
            "vdd_margin_pct": Setting(
                "VOLT:MARG {value}",
                "Set the VDD margin in percent of nominal.",
                value_range(-10, 10, "VDD margin", "%", owner),
                _ms,
            ),
            "hammer_sides": Setting(
                "HAMM:SIDE {value}",
                "Set the aggressor rows of the hammer pattern.",
                value_range(1, 64, "sides", "", owner),
            ),
            "hammer_count": Setting(
                "HAMM:COUN {value}",
                "Set the activations per aggressor and refresh window.",
                value_range(1, 10_000_000, "hammer count", "", owner),
            ),
        }
        self.readings: dict[str, Reading[Any]] = {
            "status": Reading("STAT?", "Get the selected slot's run state.", str.strip),
            "progress": Reading("PROG?", "Get the run's progress in percent.", parse_float),
            "duration_s": Reading("TIME?", "Get the device time the last run took, in seconds.", parse_float),
            "error_count": Reading("ERR:COUN?", "Get the failing words of the last run.", parse_int),
            "error_bits": Reading("ERR:BITS?", "Get the failing bits of the last run.", parse_int),
            "temperature_c": Reading("TEMP?", "Measure the module temperature in °C.", parse_float),
            "vdd_v": Reading("VOLT:VDD?", "Measure the module's VDD setpoint in volts.", parse_float),
            "vdd_margin_pct": Reading("VOLT:MARG?", "Get the VDD margin in percent.", parse_float),
            "present": Reading("SLOT:PRES?", "Get whether a module sits in the slot.", parse_bool),
            "algorithm": Reading("TEST:ALG?", "Get the march algorithm name.", parse_quoted),
            "notation": Reading("TEST:NOT?", "Get the march test in notation.", parse_quoted),
            "mode": Reading("TEST:MODE?", "Get whether the slot runs a MARCH or a PATTERN.", str.strip),
            "refresh_ms": Reading("REFR:INT?", "Get the refresh interval in ms.", parse_float),
            "tcr": Reading("REFR:TCR?", "Get whether temperature-compensated refresh is on.", parse_bool),
        }

    def identify(self) -> str:
        """Return the `*IDN?` string after checking it is a four-field qualify-dialect identity."""
        return query_identity(self._transport, MANUFACTURERS, "qualify-dialect DIMM tester")

    def reset(self) -> None:
        """Reset every slot's settings (`*RST`) and clear the error queue (`*CLS`)."""
        self._transport.write("*RST")
        self._transport.write("*CLS")

    def safe_state(self) -> None:
        """Abort any run on every slot that holds a module and return VDD to nominal."""
        for slot in self.slots:
            self._apply("slot", slot)
            if self._read("present"):
                self._transport.write("ABOR")
                self._apply("vdd_margin_pct", 0.0)

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def configure(
        self,
        slot: int,
        *,
        algorithm: str | None = None,
        notation: str | None = None,
        pattern: str | None = None,
        refresh_ms: float | None = None,
        tcr: bool | None = None,
        delay_ms: float | None = None,
        hold_ms: float | None = None,
        vdd_margin_pct: float | None = None,
        hammer_sides: int | None = None,
        hammer_count: int | None = None,
    ) -> None:
        """Select `slot` and set what is given; exactly one of algorithm, notation or pattern at most."""
        chosen = [x for x in (algorithm, notation, pattern) if x is not None]
        if len(chosen) > 1:
            raise ValueError("give one of algorithm, notation or pattern")
        self._apply("slot", slot)
        for name, value in (
            ("algorithm", algorithm),
            ("notation", notation),
            ("pattern", pattern),
            ("refresh_ms", refresh_ms),
            ("tcr", tcr),
            ("delay_ms", delay_ms),
            ("hold_ms", hold_ms),
            ("vdd_margin_pct", vdd_margin_pct),
            ("hammer_sides", hammer_sides),
            ("hammer_count", hammer_count),
        ):
            if value is not None:
                self._apply(name, value)

    def start(self, slot: int) -> None:
        """Start the configured test on `slot`."""
        self._apply("slot", slot)
        self._transport.write("RUN")
        self._check_errors("RUN")

    def status(self, slot: int) -> tuple[str, float]:
        """Return (state, progress percent) of `slot`."""
        self._apply("slot", slot)
        return str(self._read("status")), float(self._read("progress"))

    def wait(self, slot: int) -> str:
        """Poll `slot` until its run leaves RUNNING; return the final state."""
        deadline = self._clock() + self._run_timeout_s
        while True:
            state, _ = self.status(slot)
            if state in FINISHED:
                return state
            if state != "RUNNING":
                raise ProtocolError(self.address, f"STAT? answered {state!r}")
            if self._clock() > deadline:
                raise InstrumentTimeout(
                    self.address, f"slot {slot} still running after {self._run_timeout_s} s"
                )
            self._sleep(self._poll_s)

    def results(self, slot: int, test: str = "") -> MemoryTestResult:
        """Read the finished run's state, device time, counts and the whole fail log of `slot`."""
        self._apply("slot", slot)
        state = str(self._read("status"))
        count = int(self._read("error_count"))
        failures: list[FailEntry] = []
        while len(failures) < count:
            query = f"ERR:LOG? {len(failures)},{LOG_PAGE}"
            reply = self._transport.query(query)
            try:
                page = parse_log(reply)
            except ValueError as exc:
                raise ProtocolError(self.address, f"{query!r}: unparsable reply {reply!r}") from exc
            if not page:
                break  # the fail memory is full: the tester counted more than it logged
            failures.extend(page)
        return MemoryTestResult(
            slot=slot,
            test=test,
            state=state,
            duration_s=float(self._read("duration_s")),
            error_count=count,
            error_bits=int(self._read("error_bits")),
            failures=tuple(failures),
        )

    def run(self, slot: int, **settings: Any) -> MemoryTestResult:
        """Configure `slot` (as configure()), run, wait and return the result."""
        self.configure(slot, **settings)
        test = settings.get("algorithm") or settings.get("notation") or settings.get("pattern") or ""
        self.start(slot)
        state = self.wait(slot)
        if state == "ERROR":
            raise InstrumentError(self.address, f"slot {slot}: the run ended in ERROR")
        return self.results(slot, str(test))

    def run_test(
        self,
        slot: int,
        algorithm: str,
        refresh_ms: float,
        *,
        delay_ms: float = 0.0,
        vdd_margin_pct: float = 0.0,
        tcr: bool = True,
    ) -> list[int]:
        """Run a qualify.march algorithm on `slot`; return the failing word addresses, ascending."""
        result = self.run(
            slot,
            algorithm=algorithm,
            refresh_ms=refresh_ms,
            delay_ms=delay_ms,
            vdd_margin_pct=vdd_margin_pct,
            tcr=tcr,
        )
        return result.failing_addresses

    def error_log(self, slot: int) -> list[tuple[int, int, int, int]]:
        """Return the last run's fail log on `slot` as (address, bit mask, element, op)."""
        result = self.results(slot)
        return [(e.address, e.mask, e.element, e.op) for e in result.failures]

    def last_duration_s(self, slot: int) -> float:
        """Return the device time the last run on `slot` took, in seconds."""
        self._apply("slot", slot)
        return float(self._read("duration_s"))

    def _apply(self, name: str, value: Any) -> None:
        command = self.settings[name].render(value)
        self._transport.write(command)
        self._check_errors(command)

    def _read(self, name: str) -> Any:
        reading = self.readings[name]
        query = reading.render()
        return reading.decode(self._transport.query(query), self.address, query)

    def _check_errors(self, command: str) -> None:
        errors = drain_errors(self._transport.query, self.address)
        if errors:
            raise InstrumentError(self.address, f"{command!r} rejected: {'; '.join(errors)}")


def _slot_check(slots: tuple[int, ...], owner: str) -> Callable[[int, int | None], None]:
    def validate(value: int, channel: int | None) -> None:
        if value not in slots:
            raise ValueError(f"{owner} has slots {slots[0]}..{slots[-1]}, not {value}")

    return validate
