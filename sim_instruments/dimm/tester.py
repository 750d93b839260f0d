"""The simulated DIMM slot tester: qualify's SCPI-style dialect (docs/dimm_tester_dialect.md) on DIMM models.

A `TcpLineServer` serves `DimmTesterSim.handle`. The tester runs the qualify.march definitions
against each module's cell array over the window of cells that matter, stamping each access
with its time in a full-size run, so a 16 GiB module is never enumerated. A run completes at
once and reports its device-time duration (`TIME?`), as the lab's other device actions do; with
`pace_with_clock` the status stays RUNNING until the shared clock passes the run's end, for a
lab served in real time. Per-slot settings and the last run live in each module's SlotRecord so
they travel with the lab's snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qualify.clock import Clock
from qualify.march import MarchTest, algorithm, parse_march, run_march, with_retention_delays
from sim_instruments.dimm.cells import PATTERNS, ArrayMemory, RunConditions, run_pattern
from sim_instruments.dimm.device import SimDimm, SlotRecord

MANUFACTURER = "Qualify Instruments"
MODEL = "QDT-5R8"
IMPOSTOR_MODEL = "QDT-5R4"
FIRMWARE = "1.0.0"
SLOT_COUNT = 8
FAIL_LOG_ENTRIES = 4096  # fail memory depth: later failures are counted, not logged
LOG_PAGE_MAX = 64
ERROR_QUEUE_DEPTH = 10
TCR_THRESHOLD_C = 85.0  # JEDEC: above 85 °C the refresh interval halves
MARGIN_LIMIT_PCT = 10.0
HAMMER_PATTERN = "HAMMER"
STATES = ("IDLE", "RUNNING", "PASS", "FAIL", "ABORTED", "ERROR")

ERRORS = {
    -100: "Command error",
    -102: "Syntax error",
    -109: "Missing parameter",
    -113: "Undefined header",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -240: "Hardware error",
    -241: "Hardware missing",
    -350: "Queue overflow",
}


_MEASUREMENTS = frozenset(
    {"TEMP?", "TEMPERATURE?", "VOLT:VDD?", "VOLTAGE:VDD?", "PROG?", "PROGRESS?", "TIME?"}
)


class _Refused(Exception):
    """Signal a command the tester rejects: an SCPI error code and a detail for SYST:ERR?."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class _Command:
    """Map one header (short and long mnemonics) and its query-ness to a handler."""

    nodes: tuple[tuple[str, str], ...]
    query: bool
    handler: Callable[[str], str | None]


def _nodes(spec: str) -> tuple[tuple[str, str], ...]:
    """Split `TEST:ALGorithm` into (short, long) mnemonics: (TEST, TEST), (ALG, ALGORITHM)."""
    out = []
    for node in spec.split(":"):
        short = "".join(ch for ch in node if ch.isupper() or ch.isdigit() or ch == "*")
        out.append((short, node.upper()))
    return tuple(out)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


class DimmTesterSim:
    """Simulate a multi-slot DDR5 DIMM tester answering qualify's tester dialect."""

    def __init__(
        self,
        slots: Mapping[int, SimDimm],
        clock: Clock,
        *,
        serial: str = "QDT5R8-0001",
        slot_count: int = SLOT_COUNT,
        pace_with_clock: bool = False,
    ) -> None:
        for slot in slots:
            if not 1 <= slot <= slot_count:
                raise ValueError(f"tester slot {slot} is outside 1..{slot_count}")
        self.slots = dict(slots)
        self.clock = clock
        self.serial = serial
        self.slot_count = slot_count
        self.pace_with_clock = pace_with_clock
        self.selected = 1
        self.errors: list[tuple[int, str]] = []
        self._lock = threading.RLock()
        self._commands = [
            _Command(_nodes(spec), query, handler)
            for spec, query, handler in (
                ("SLOT", False, self._set_slot),
                ("SLOT", True, lambda a: str(self.selected)),
                ("SLOT:COUNt", True, lambda a: str(self.slot_count)),
                ("SLOT:PRESent", True, lambda a: "1" if self.selected in self.slots else "0"),
                ("TEST:ALGorithm", False, self._set_algorithm),
                ("TEST:ALGorithm", True, self._get_algorithm),
                ("TEST:NOTation", False, self._set_notation),
                ("TEST:NOTation", True, self._get_notation),
                ("TEST:PATTern", False, self._set_pattern),
                ("TEST:PATTern", True, lambda a: self._record().pattern),
                ("TEST:MODE", True, lambda a: self._record().mode),
                ("TEST:DELay", False, self._number_setter("delay_ms", 0.0, 3_600_000.0)),
                ("TEST:DELay", True, lambda a: f"{self._record().delay_ms:g}"),
                ("TEST:HOLD", False, self._number_setter("hold_ms", 0.0, 3_600_000.0)),
                ("TEST:HOLD", True, lambda a: f"{self._record().hold_ms:g}"),
                ("HAMMer:SIDE", False, self._number_setter("hammer_sides", 1, 64, integer=True)),
                ("HAMMer:SIDE", True, lambda a: str(self._record().hammer_sides)),
                ("HAMMer:COUNt", False, self._number_setter("hammer_count", 1, 10_000_000, integer=True)),
                ("HAMMer:COUNt", True, lambda a: str(self._record().hammer_count)),
                ("REFResh:INTerval", False, self._number_setter("refresh_ms", 1.0, 10_000.0)),
                ("REFResh:INTerval", True, lambda a: f"{self._record().refresh_ms:g}"),
                ("REFResh:TCR", False, self._set_tcr),
                ("REFResh:TCR", True, lambda a: "1" if self._record().tcr else "0"),
                ("VOLTage:MARGin", False, self._set_margin),
                ("VOLTage:MARGin", True, self._get_margin),
                ("VOLTage:VDD", True, lambda a: f"{self._sensed().vdd_v():.4f}"),
                ("TEMPerature", True, lambda a: f"{self._sensed().temperature_c():.2f}"),
                ("RUN", False, self._run),
                ("INITiate", False, self._run),
                ("ABORt", False, self._abort),
                ("STATus", True, lambda a: self._state()),
                ("PROGress", True, lambda a: f"{self._progress():.1f}"),
                ("TIME", True, lambda a: f"{self._record().duration_s:.6g}"),
                ("ERRor:COUNt", True, lambda a: str(self._finished().error_count)),
                ("ERRor:BITS", True, lambda a: str(self._finished().error_bits)),
                ("ERRor:LOG", True, self._error_log),
                ("SYSTem:ERRor", True, lambda a: self._pop_error()),
            )
        ]

    def handle(self, line: str) -> str | None:
        """Execute one command line; return the reply line, or None for a command without one."""
        text = line.strip()
        if not text:
            return None
        with self._lock:
            try:
                return self._dispatch(text)
            except _Refused as refused:
                self._queue(refused.code, refused.detail)
                return None

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` measures (temperature, VDD, progress), for the lab's stuck-reading fault."""
        header = line.strip().split(" ")[0].upper().lstrip(":")
        return header in _MEASUREMENTS

    def impostor_reply(self, line: str) -> str | None:
        """Return what a four-slot sibling model would answer to `*IDN?` (the lab's wrong-identity fault)."""
        if line.strip().upper() == "*IDN?":
            return f"{MANUFACTURER},{IMPOSTOR_MODEL},{self.serial},{FIRMWARE}"
        return None

    def snapshot(self) -> dict[str, Any]:
        """Return the tester's own state (selected slot, error queue); slot records travel with modules."""
        with self._lock:
            return {"selected": self.selected, "errors": [list(e) for e in self.errors]}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        with self._lock:
            self.selected = int(state["selected"])
            self.errors = [(int(code), str(text)) for code, text in state["errors"]]

    def _dispatch(self, text: str) -> str | None:
        header, _, args = text.partition(" ")
        upper = header.upper()
        if upper == "*IDN?":
            return f"{MANUFACTURER},{MODEL},{self.serial},{FIRMWARE}"
        if upper == "*RST":
            self._reset()
            return None
        if upper == "*CLS":
            self.errors.clear()
            return None
        if upper == "*OPC?":
            return "1"
        query = upper.endswith("?")
        nodes = upper.rstrip("?").lstrip(":").split(":")
        for command in self._commands:
            if command.query != query or len(command.nodes) != len(nodes):
                continue
            if all(node in pair for node, pair in zip(nodes, command.nodes, strict=True)):
                return command.handler(args)
        raise _Refused(-113, header)

    def _queue(self, code: int, detail: str) -> None:
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = (-350, ERRORS[-350])
            return
        message = ERRORS.get(code, "Error")
        self.errors.append((code, f"{message}; {detail}" if detail else message))

    def _pop_error(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.pop(0)
        return f'{code:+d},"{message}"'

    def _reset(self) -> None:
        self.selected = 1
        self.errors.clear()
        for module in self.slots.values():
            with module.lock:
                module.record = SlotRecord()

    def _module(self) -> SimDimm:
        module = self.slots.get(self.selected)
        if module is None:
            raise _Refused(-241, f"no module in slot {self.selected}")
        return module

    def _sensed(self) -> SimDimm:
        module = self._module()
        module.sense()
        return module

    def _record(self) -> SlotRecord:
        return self._module().record

    def _finished(self) -> SlotRecord:
        record = self._record()
        if self._state() == "RUNNING":
            raise _Refused(-221, "the run has not finished")
        return record

    def _set_slot(self, args: str) -> None:
        slot = self._int(args)
        if not 1 <= slot <= self.slot_count:
            raise _Refused(-222, f"slot {slot} is outside 1..{self.slot_count}")
        self.selected = slot

    def _set_algorithm(self, args: str) -> None:
        self._idle_only()
        name = _unquote(args)
        try:
            test = algorithm(name)
        except KeyError:
            raise _Refused(-224, f"unknown algorithm {name!r}") from None
        record = self._record()
        record.mode, record.algorithm, record.notation = "MARCH", test.name, ""

    def _get_algorithm(self, args: str) -> str:
        record = self._record()
        return '"CUSTOM"' if record.notation else f'"{record.algorithm}"'

    def _set_notation(self, args: str) -> None:
        self._idle_only()
        text = _unquote(args)
        try:
            test = parse_march(text)
        except ValueError as exc:
            raise _Refused(-224, str(exc)) from None
        record = self._record()
        record.mode, record.notation = "MARCH", test.notation(ascii_only=True)

    def _get_notation(self, args: str) -> str:
        return f'"{self._march_test().notation(ascii_only=True)}"'

    def _set_pattern(self, args: str) -> None:
        self._idle_only()
        name = _unquote(args).upper()
        if name not in (*PATTERNS, HAMMER_PATTERN):
            raise _Refused(-224, f"unknown pattern {name!r}")
        record = self._record()
        record.mode, record.pattern = "PATTERN", name

    def _set_tcr(self, args: str) -> None:
        token = args.strip().upper()
        if token not in ("ON", "OFF", "1", "0"):
            raise _Refused(-224, f"REFR:TCR takes ON or OFF, not {args.strip()!r}")
        self._idle_only()
        self._record().tcr = token in ("ON", "1")

    def _number_setter(
        self, attribute: str, low: float, high: float, *, integer: bool = False
    ) -> Callable[[str], None]:
        def setter(args: str) -> None:
            value = self._int(args) if integer else self._float(args)
            if not low <= value <= high:
                raise _Refused(-222, f"{value:g} is outside {low:g}..{high:g}")
            self._idle_only()
            setattr(self._record(), attribute, value)

        return setter

    def _set_margin(self, args: str) -> None:
        pct = self._float(args)
        if not -MARGIN_LIMIT_PCT <= pct <= MARGIN_LIMIT_PCT:
            raise _Refused(-222, f"VDD margin {pct:g} % is outside ±{MARGIN_LIMIT_PCT:g} %")
        self._idle_only()
        module = self._module()
        module.sense()
        if not module.powered():
            raise _Refused(-240, f"slot {self.selected}: module not powered")
        module.program_vdd(module.nominal_vdd_v() * (1 + pct / 100.0))

    def _get_margin(self, args: str) -> str:
        module = self._module()
        pct = (module.pmic.setpoint_v("SWA") / module.nominal_vdd_v() - 1.0) * 100.0
        return f"{pct:.2f}"

    def _march_test(self) -> MarchTest:
        record = self._record()
        test = parse_march(record.notation) if record.notation else algorithm(record.algorithm)
        return with_retention_delays(test, record.delay_ms) if record.delay_ms > 0 else test

    def _run(self, args: str) -> None:
        self._idle_only()
        module = self._module()
        module.sense()
        with module.lock:
            module.apply_pending()
            if not module.powered():
                module.record.state = "ERROR"
                raise _Refused(-240, f"slot {self.selected}: module not powered")
            record = module.record
            temp_c = module.temperature_c()
            refresh_ms = record.refresh_ms
            if record.tcr and temp_c > TCR_THRESHOLD_C:
                refresh_ms /= 2.0
            conditions = RunConditions(
                temp_c=temp_c,
                vdd_v=module.vdd_v(),
                refresh_ms=refresh_ms,
                t0_s=self.clock.now(),
                word_op_s=module.word_op_s,
            )
            if record.mode == "PATTERN":
                entries, duration_s = self._run_pattern(module, record, conditions)
            else:
                entries, duration_s = self._run_march(module, conditions)
            record.started_s = conditions.t0_s
            record.duration_s = duration_s
            record.error_count = len(entries)
            record.error_bits = sum(bin(mask).count("1") for _, mask, _, _ in entries)
            record.errors = entries[:FAIL_LOG_ENTRIES]
            record.conditions = {"temp_c": temp_c, "vdd_v": conditions.vdd_v, "refresh_ms": refresh_ms}
            record.state = "FAIL" if entries else "PASS"

    def _run_march(
        self, module: SimDimm, conditions: RunConditions
    ) -> tuple[list[tuple[int, int, int, int]], float]:
        test = self._march_test()
        memory = ArrayMemory(module.cells, conditions)
        result = run_march(
            test, memory, module.cells.window(), background=0, width_bits=64, on_element=memory.on_element
        )
        masks: dict[int, int] = {}
        for failure in result.failures:
            masks[failure.address] = masks.get(failure.address, 0) | failure.mask
        entries = [(f.address, masks[f.address], f.element, f.op) for f in result.first_by_address.values()]
        duration_s = test.ops_per_cell * module.word_count * module.word_op_s + test.delay_ms / 1000.0
        return entries, duration_s

    def _run_pattern(
        self, module: SimDimm, record: SlotRecord, conditions: RunConditions
    ) -> tuple[list[tuple[int, int, int, int]], float]:
        if record.pattern == HAMMER_PATTERN:
            failures, duration_s = run_pattern(
                module.cells,
                conditions,
                "ROWSTRIPE",
                conditions.refresh_ms,
                hammer_sides=record.hammer_sides,
                hammer_count=record.hammer_count,
            )
        else:
            failures, duration_s = run_pattern(module.cells, conditions, record.pattern, record.hold_ms)
        return [(f.address, f.mask, 1, 0) for f in failures], duration_s

    def _abort(self, args: str) -> None:
        record = self._record()
        if self._state() == "RUNNING":
            record.state = "ABORTED"
            record.errors = []
            record.error_count = record.error_bits = 0
            record.duration_s = max(0.0, self.clock.now() - record.started_s)

    def _state(self) -> str:
        record = self._record()
        if self.pace_with_clock and record.state in ("PASS", "FAIL") and self._running(record):
            return "RUNNING"
        return record.state

    def _running(self, record: SlotRecord) -> bool:
        return self.clock.now() < record.started_s + record.duration_s

    def _progress(self) -> float:
        record = self._record()
        if record.state in ("IDLE", "ERROR"):
            return 0.0
        if self._state() != "RUNNING" or record.duration_s <= 0:
            return 100.0
        return 100.0 * (self.clock.now() - record.started_s) / record.duration_s

    def _idle_only(self) -> None:
        if self.selected in self.slots and self._state() == "RUNNING":
            raise _Refused(-221, f"slot {self.selected} is running")

    def _error_log(self, args: str) -> str:
        record = self._finished()
        parts = [p.strip() for p in args.split(",")] if args.strip() else ["0", str(LOG_PAGE_MAX)]
        if len(parts) != 2:
            raise _Refused(-109, "ERR:LOG? takes <first>,<count>")
        first, count = self._int(parts[0]), self._int(parts[1])
        if first < 0 or not 1 <= count <= LOG_PAGE_MAX:
            raise _Refused(-222, f"ERR:LOG? first >= 0 and count 1..{LOG_PAGE_MAX}")
        page = record.errors[first : first + count]
        return ";".join(f"0x{a:X},0x{m:016X},{e},{o}" for a, m, e, o in page)

    @staticmethod
    def _int(args: str) -> int:
        try:
            return int(args.strip(), 0)
        except ValueError:
            raise _Refused(-102, f"expected an integer, got {args.strip()!r}") from None

    @staticmethod
    def _float(args: str) -> float:
        try:
            return float(args.strip())
        except ValueError:
            raise _Refused(-102, f"expected a number, got {args.strip()!r}") from None
