"""stressapptest driver: copy pages among threads with checks, read its bandwidth and miscompares.

stressapptest can print `Status: PASS` while its log holds miscompares, so the verdict here is
read from the counts (hardware incidents, miscompare lines) as well as the status line: any
miscompare is a FAIL whatever the status says. Its MB/s are MiB/s (1 MB = 1048576 bytes).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivers.dimm.edac import EdacReader, PhysicalAddressMap
from drivers.errors import InstrumentError
from drivers.memtest.result import MemStressResult, Miscompare, attribute, edac_delta
from drivers.transport.process import ProcessRunner, ToolRunner

MIB = 1024 * 1024

_STATUS = re.compile(r"Status: (?P<status>PASS|FAIL)\b(?P<rest>[^\n]*)")
_COMPLETED = re.compile(
    r"Stats: Completed: (?P<mb>[\d.]+)M in (?P<secs>[\d.]+)s (?P<rate>[\d.]+)MB/s, "
    r"with (?P<incidents>\d+) hardware incidents, (?P<errors>\d+) errors"
)
_FOUND = re.compile(r"Stats: Found (?P<n>\d+) hardware incidents")
# "Hardware Error: miscompare on CPU 3(0x8) at 0x7f..(0x4e4b78:DIMM Unknown): read:0x..,
#  reread:0x.. expected:0x.." (a tag error puts "Tag from ADDR(PADDR:DIMM) (read error) " first)
_HEX = r"0x[0-9a-fA-F]+"
_MISCOMPARE = re.compile(
    r"(?P<kind>Hardware|Page|Block|Process) Error: (?:Tag from [^\n]*?\) )?miscompare on [^\n]*?"
    rf"at (?P<vaddr>{_HEX}|\(nil\))\((?P<paddr>{_HEX}):(?P<dimm>[^)]*)\)"
    rf"(?:: read:(?P<read>{_HEX}), reread:(?P<reread>{_HEX}),? expected:(?P<exp>{_HEX}))?"
)


@dataclass
class SatOutcome:
    """What stressapptest's output says: status line, counts, bandwidth and miscompares."""

    status: str | None  # "PASS", "FAIL", or None when it never printed one
    status_text: str
    incidents: int
    errors: int
    bw_mib_s: float | None
    runtime_s: float | None
    miscompares: list[Miscompare] = field(default_factory=list)

    @property
    def miscompare_count(self) -> int:
        """Return the miscompares found: the larger of the reported count and the lines logged."""
        return max(self.incidents, len(self.miscompares))

    @property
    def passed(self) -> bool:
        """Return whether the run passed: PASS printed, and no miscompare or error anywhere."""
        return self.status == "PASS" and self.miscompare_count == 0 and self.errors == 0


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _hex(text: str | None) -> int | None:
    return int(text, 16) if text and text.startswith("0x") else None


def parse_stressapptest(text: str) -> SatOutcome:
    """Return what stressapptest's output (stdout and/or its -l log) reports."""
    # The last status and summary lines are the run's (stdout and the log repeat them).
    status_match = _last(_STATUS, text)
    completed = _last(_COMPLETED, text)
    incidents = max((int(m.group("n")) for m in _FOUND.finditer(text)), default=0)
    errors = 0
    bw = runtime = None
    if completed is not None:
        incidents = max(incidents, int(completed.group("incidents")))
        errors = int(completed.group("errors"))
        bw = float(completed.group("rate"))
        runtime = float(completed.group("secs"))
    miscompares: list[Miscompare] = []
    seen: set[tuple[int | None, int | None]] = set()
    for m in _MISCOMPARE.finditer(text):
        item = Miscompare(
            physical_address=_hex(m.group("paddr")) or None,
            virtual_address=_hex(m.group("vaddr")),
            expected=_hex(m.group("exp")),
            actual=_hex(m.group("read")),
            reread=_hex(m.group("reread")),
            dimm=m.group("dimm").strip() or None,
        )
        # stdout and the log file repeat the same lines; count each word once.
        key = (item.virtual_address, item.physical_address)
        if key not in seen:
            seen.add(key)
            miscompares.append(item)
    return SatOutcome(
        status=status_match.group("status") if status_match else None,
        status_text=status_match.group(0).strip() if status_match else "no Status line",
        incidents=incidents,
        errors=errors,
        bw_mib_s=bw,
        runtime_s=runtime,
        miscompares=miscompares,
    )


def stressapptest_args(
    size_bytes: int,
    seconds: float,
    *,
    threads: int | None = None,
    cpu_stress_copy: bool = False,
    cc_test: bool = False,
    stop_on_errors: bool = False,
    logfile: str | Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Return stressapptest's arguments: -M MiB -s seconds [-m threads] [-W] [--cc_test] [-l log]."""
    if size_bytes < MIB:
        raise ValueError(f"stressapptest tests whole MiB; {size_bytes} bytes is less than one")
    args = ["-M", str(size_bytes // MIB), "-s", str(max(1, round(seconds)))]
    if threads is not None:
        args += ["-m", str(threads)]
    if cpu_stress_copy:
        args.append("-W")
    if cc_test:
        args.append("--cc_test")
    if stop_on_errors:
        args.append("--stop_on_errors")
    if logfile is not None:
        args += ["-l", str(logfile)]
    return [*args, *extra]


class StressAppTest:
    """A HostMemoryStress that runs stressapptest, with EDAC and address-map attribution to slots."""

    def __init__(
        self,
        *,
        runner: ToolRunner | None = None,
        threads: int | None = None,
        cpu_stress_copy: bool = False,
        cc_test: bool = False,
        extra_args: Sequence[str] = (),
        edac: EdacReader | None = None,
        address_map: PhysicalAddressMap | None = None,
        timeout_margin_s: float = 120.0,
    ) -> None:
        """Configure the run; `extra_args` pass straight to stressapptest (e.g. --memory_channel)."""
        self._runner: ToolRunner = runner if runner is not None else ProcessRunner("stressapptest")
        self.address = self._runner.address
        self._threads = threads
        self._cpu_stress_copy = cpu_stress_copy
        self._cc_test = cc_test
        self._extra = tuple(extra_args)
        self._edac = edac
        self._address_map = address_map
        self._margin_s = timeout_margin_s

    def run(self, size_bytes: int, seconds: float) -> MemStressResult:
        """Run stressapptest over `size_bytes` for `seconds` and return the judged result."""
        with tempfile.TemporaryDirectory(prefix="qualify-sat-") as tmp:
            log = Path(tmp) / "stressapptest.log"
            args = stressapptest_args(
                size_bytes,
                seconds,
                threads=self._threads,
                cpu_stress_copy=self._cpu_stress_copy,
                cc_test=self._cc_test,
                logfile=log,
                extra=self._extra,
            )
            before = self._edac.read() if self._edac is not None else None
            done = self._runner.run(args, timeout_s=seconds + self._margin_s)
            after = self._edac.read() if self._edac is not None else None
            log_text = log.read_text(errors="replace") if log.exists() else ""
        outcome = parse_stressapptest("\n".join((done.stdout, done.stderr, log_text)))
        if outcome.status is None:
            raise InstrumentError(
                self.address,
                f"stressapptest exited {done.returncode} without a Status line: "
                + " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]),
            )
        delta = edac_delta(after, before)
        result = MemStressResult(
            tool="stressapptest",
            passed=outcome.passed and not any(ue for _, ue in delta.values()),
            status=outcome.status_text,
            size_bytes=(size_bytes // MIB) * MIB,
            runtime_s=outcome.runtime_s if outcome.runtime_s is not None else done.duration_s,
            bw_bytes_s=outcome.bw_mib_s * MIB if outcome.bw_mib_s is not None else None,
            miscompares=outcome.miscompare_count,
            errors=outcome.miscompares,
            exit_code=done.returncode,
            edac_delta=delta,
        )
        attribute(result, edac=self._edac, after=after, address_map=self._address_map)
        return result

    def run_stress(self, size_bytes: int, seconds: float) -> dict[str, float]:
        """Run a stress pass; return bandwidth, miscompares, EDAC counts and per-slot errors."""
        return self.run(size_bytes, seconds).readings()
