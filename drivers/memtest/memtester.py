"""memtester driver: `memtester [-p PHYSADDR [-d DEV]] SIZE LOOPS`, its test lines and exit bitmask.

memtester prints one line per test (`  Compare XOR         : ok`; a failed test prints no
`ok`), writes `FAILURE:` lines to stderr, and exits with a bitmask: 0x01 could not start,
0x02 address-line failure (Stuck Address), 0x04 another test failed. Could-not-start is a
harness error (the memory was never tested), not a verdict on the DIMMs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drivers.dimm.edac import EdacReader, PhysicalAddressMap
from drivers.errors import InstrumentError
from drivers.memtest.result import MemStressResult, Miscompare, attribute, edac_delta
from drivers.transport.process import ProcessRunner, ToolResult, ToolRunner

MIB = 1024 * 1024
GIB = 1024 * MIB

EXIT_COULD_NOT_START = 0x01
EXIT_ADDRESS_LINES = 0x02
EXIT_OTHER_TEST = 0x04
EXIT_BITS: dict[int, str] = {
    EXIT_COULD_NOT_START: "could not start",
    EXIT_ADDRESS_LINES: "address-line failure",
    EXIT_OTHER_TEST: "other test failure",
}
STUCK_ADDRESS = "Stuck Address"

_TOKEN = re.compile(
    r"(?P<loop>Loop (?P<n>\d+)(?:/\d+)?:)|(?P<done>\nDone\.)"
    r"|(?: {2}(?P<name>[A-Za-z0-9][A-Za-z0-9 \-]*?) *: )"
)
_FAILURE = re.compile(
    r"FAILURE: (?:(?P<a>0x[0-9a-fA-F]+) != (?P<b>0x[0-9a-fA-F]+)|possible bad address line) "
    r"at (?:offset (?P<offset>0x[0-9a-fA-F]+)|physical address (?P<phys>0x[0-9a-fA-F]+))"
)


@dataclass
class MemtesterOutcome:
    """What memtester's output and exit code say."""

    exit_code: int | None  # None when the run was stopped by a signal (a timed run)
    tests: dict[str, bool] = field(default_factory=dict)  # name → passed in every loop so far
    failures: list[Miscompare] = field(default_factory=list)
    loops_started: int = 0
    interrupted_test: str | None = None

    @property
    def exit_reasons(self) -> list[str]:
        """Return the meaning of each bit set in the exit code."""
        code = self.exit_code or 0
        return [text for bit, text in EXIT_BITS.items() if code & bit]

    @property
    def could_not_start(self) -> bool:
        """Return whether memtester exited with 0x01 (no memory was tested)."""
        return bool((self.exit_code or 0) & EXIT_COULD_NOT_START)

    @property
    def failed_tests(self) -> list[str]:
        """Return the failed tests by name, including those only the exit code names."""
        failed = [name for name, ok in self.tests.items() if not ok]
        code = self.exit_code or 0
        if code & EXIT_ADDRESS_LINES and STUCK_ADDRESS not in failed:
            failed.insert(0, STUCK_ADDRESS)
        if code & EXIT_OTHER_TEST and not [n for n in failed if n != STUCK_ADDRESS]:
            failed.append("unnamed test (exit code 0x04)")
        return failed

    @property
    def passed(self) -> bool:
        """Return whether every test that ran passed and memtester reported no failure."""
        return (
            not self.could_not_start
            and not self.failed_tests
            and not self.failures
            and (self.exit_code in (0, None))
            and bool(self.tests)
        )


def _strip_progress(segment: str) -> str:
    # Progress is drawn with backspaces over "setting N"/"testing N" and a spinner.
    return segment.replace("\b", "").strip()


def parse_memtester(stdout: str, stderr: str, exit_code: int | None) -> MemtesterOutcome:
    """Return memtester's per-test verdicts, FAILURE lines and exit bits."""
    outcome = MemtesterOutcome(exit_code=exit_code)
    tokens = list(_TOKEN.finditer(stdout))
    for index, token in enumerate(tokens):
        if token.group("loop"):
            outcome.loops_started = max(outcome.loops_started, int(token.group("n")))
            continue
        name = token.group("name")
        if not name:
            continue
        end = tokens[index + 1].start() if index + 1 < len(tokens) else len(stdout)
        finished = index + 1 < len(tokens)
        text = _strip_progress(stdout[token.end() : end])
        if text.endswith("ok"):
            outcome.tests.setdefault(name, True)
        elif finished:
            outcome.tests[name] = False
        else:
            outcome.interrupted_test = name  # stopped mid-test: neither passed nor failed
    for m in _FAILURE.finditer(stderr + "\n" + stdout):
        outcome.failures.append(
            Miscompare(
                physical_address=int(m.group("phys"), 16) if m.group("phys") else None,
                offset_bytes=int(m.group("offset"), 16) if m.group("offset") else None,
                # compare_regions prints buffer A's word then buffer B's; they should be equal.
                actual=int(m.group("a"), 16) if m.group("a") else None,
                expected=int(m.group("b"), 16) if m.group("b") else None,
            )
        )
    return outcome


def size_arg(size_bytes: int) -> str:
    """Return memtester's size argument: whole MiB as `NM`, otherwise bytes as `NB`."""
    if size_bytes <= 0:
        raise ValueError(f"memtester needs a positive size (got {size_bytes})")
    return f"{size_bytes // MIB}M" if size_bytes % MIB == 0 else f"{size_bytes}B"


def memtester_args(
    size_bytes: int, loops: int = 1, *, phys_addr: int | None = None, device: str | None = None
) -> list[str]:
    """Return memtester's arguments; `loops` 0 runs until stopped; `phys_addr` tests that range."""
    if loops < 0:
        raise ValueError("loops must be 0 (until stopped) or more")
    args: list[str] = []
    if phys_addr is not None:
        args += ["-p", f"{phys_addr:#x}"]
        if device is not None:
            args += ["-d", device]
    elif device is not None:
        raise ValueError("memtester's -d device only applies with a physical address (-p)")
    return [*args, size_arg(size_bytes), str(loops)]


class Memtester:
    """A HostMemoryStress that runs memtester, with EDAC and address-map attribution to slots.

    With `phys_addr` (root, /dev/mem) memtester tests that physical range and reports physical
    addresses, which the address map turns into DIMMs; otherwise only EDAC names a DIMM.
    """

    def __init__(
        self,
        *,
        runner: ToolRunner | None = None,
        phys_addr: int | None = None,
        device: str | None = None,
        edac: EdacReader | None = None,
        address_map: PhysicalAddressMap | None = None,
        seconds_per_gib_loop: float = 600.0,
        timeout_margin_s: float = 60.0,
    ) -> None:
        """Configure runs; `seconds_per_gib_loop` sizes the hang timeout (REFERENCE: ~10 min/GiB)."""
        self._runner: ToolRunner = runner if runner is not None else ProcessRunner("memtester")
        self.address = self._runner.address
        self._phys_addr = phys_addr
        self._device = device
        self._edac = edac
        self._address_map = address_map
        self._per_gib_s = seconds_per_gib_loop
        self._margin_s = timeout_margin_s

    def run(self, size_bytes: int, loops: int = 1) -> MemStressResult:
        """Run `loops` whole loops over `size_bytes` and return the judged result."""
        if loops < 1:
            raise ValueError("run() needs at least one loop; use run_for() to run until a time")
        timeout_s = 3 * self._per_gib_s * loops * size_bytes / GIB + self._margin_s
        return self._run(size_bytes, loops, timeout_s=timeout_s, stop_after_s=None)

    def run_for(self, size_bytes: int, seconds: float) -> MemStressResult:
        """Loop over `size_bytes` until `seconds` have passed; judge the tests that completed."""
        return self._run(size_bytes, 0, timeout_s=seconds + self._margin_s, stop_after_s=seconds)

    def run_stress(self, size_bytes: int, seconds: float) -> dict[str, float]:
        """Run memtester for `seconds`; return miscompares, failed tests, EDAC and per-slot counts."""
        return self.run_for(size_bytes, seconds).readings()

    def _run(
        self, size_bytes: int, loops: int, *, timeout_s: float, stop_after_s: float | None
    ) -> MemStressResult:
        args = memtester_args(size_bytes, loops, phys_addr=self._phys_addr, device=self._device)
        before = self._edac.read() if self._edac is not None else None
        done = self._runner.run(args, timeout_s=timeout_s, stop_after_s=stop_after_s)
        after = self._edac.read() if self._edac is not None else None
        outcome = self._judge(done, timed=stop_after_s is not None)
        delta = edac_delta(after, before)
        result = MemStressResult(
            tool="memtester",
            passed=outcome.passed and not any(ue for _, ue in delta.values()),
            status=_status(outcome),
            size_bytes=size_bytes,
            runtime_s=done.duration_s,
            miscompares=len(outcome.failures),
            errors=outcome.failures,
            failed_tests=outcome.failed_tests,
            exit_code=done.returncode,
            edac_delta=delta,
        )
        attribute(result, edac=self._edac, after=after, address_map=self._address_map)
        return result

    def _judge(self, done: ToolResult, *, timed: bool) -> MemtesterOutcome:
        if done.signalled and not timed:
            raise InstrumentError(self.address, f"memtester was killed by signal {-done.returncode}")
        outcome = parse_memtester(done.stdout, done.stderr, None if done.signalled else done.returncode)
        if outcome.could_not_start:
            raise InstrumentError(
                self.address, "memtester could not start (exit 0x01): " + _tail(done.stderr or done.stdout)
            )
        if not outcome.tests:
            raise InstrumentError(self.address, "memtester completed no test: " + _tail(done.stderr))
        return outcome


def _status(outcome: MemtesterOutcome) -> str:
    if outcome.passed:
        return "PASS"
    reasons = outcome.exit_reasons or ["FAILURE lines"]
    return f"FAIL ({', '.join(reasons)}): {', '.join(outcome.failed_tests) or 'no test named'}"


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:]) or "(no output)"
