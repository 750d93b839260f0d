"""memtester: test lines and exit bitmask parsed from captures, and real runs through the driver."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from drivers.dimm.edac import EdacReader, PhysicalAddressMap
from drivers.errors import InstrumentError
from drivers.memtest.memtester import (
    EXIT_ADDRESS_LINES,
    EXIT_COULD_NOT_START,
    EXIT_OTHER_TEST,
    Memtester,
    memtester_args,
    parse_memtester,
)
from drivers.protocols import HostMemoryStress
from drivers.transport.process import ToolResult

MIB = 1024 * 1024
EDAC_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "edac" / "mc"
needs_memtester = pytest.mark.skipif(
    shutil.which("memtester") is None, reason="memtester not installed (apt-get install memtester)"
)
ALL_TESTS = [
    "Stuck Address", "Random Value", "Compare XOR", "Compare SUB", "Compare MUL", "Compare DIV",
    "Compare OR", "Compare AND", "Sequential Increment", "Solid Bits", "Block Sequential",
    "Checkerboard", "Bit Spread", "Bit Flip", "Walking Ones", "Walking Zeroes", "8-bit Writes",
    "16-bit Writes",
]  # fmt: skip
SPIN = "\b-\b\\\b|\b/"
PROGRESS = "           \b\b\b\b\b\b\b\b\b\b\bsetting   0\b\b\b\b\b\b\b\b\b\b\btesting   0"
HEAD = "memtester version 4.6.0 (64-bit)\npagesize is 4096\nwant 8MB (8388608 bytes)\ngot  8MB (8388608 bytes), trying mlock ...locked.\n"


def _loop(number: int, loops: int, failed: Sequence[str] = ()) -> str:
    lines = [f"Loop {number}/{loops}:\n"]
    for name in ALL_TESTS:
        body = PROGRESS if name in ("Stuck Address", "Solid Bits") else SPIN
        # A failed test prints its progress but never "ok\n": the next header follows on its line.
        lines.append(f"  {name:<20}: {body}" + ("" if name in failed else "\b \bok\n"))
    return "".join(lines) + "\n"


def _stdout(*loops: str) -> str:
    return HEAD + "".join(loops) + "Done.\n"


def test_memtester_clean_loop_passes_every_test() -> None:
    outcome = parse_memtester(_stdout(_loop(1, 1)), "", 0)
    assert list(outcome.tests) == ALL_TESTS and all(outcome.tests.values())
    assert outcome.passed and outcome.failed_tests == [] and outcome.loops_started == 1


def test_memtester_bit_0x04_names_the_failed_test() -> None:
    stderr = "FAILURE: 0x5555555555555555 != 0x5555555555555554 at offset 0x00001f08.\n"
    outcome = parse_memtester(_stdout(_loop(1, 2), _loop(2, 2, ["Compare XOR"])), stderr, EXIT_OTHER_TEST)
    assert outcome.failed_tests == ["Compare XOR"]  # failed in loop 2 after passing loop 1
    assert outcome.exit_reasons == ["other test failure"] and not outcome.passed
    [bad] = outcome.failures
    assert bad.offset_bytes == 0x1F08 and bad.bits_flipped == 1 and bad.physical_address is None


def test_memtester_bit_0x02_is_the_stuck_address_test() -> None:
    stderr = "FAILURE: possible bad address line at physical address 0x12345000.\n"
    outcome = parse_memtester(_stdout(_loop(1, 1, ["Stuck Address"])), stderr, EXIT_ADDRESS_LINES)
    assert outcome.failed_tests == ["Stuck Address"]
    assert outcome.exit_reasons == ["address-line failure"]
    assert outcome.failures[0].physical_address == 0x12345000


def test_memtester_exit_bits_name_tests_the_output_lost() -> None:
    outcome = parse_memtester(_stdout(_loop(1, 1)), "", EXIT_ADDRESS_LINES | EXIT_OTHER_TEST)
    assert outcome.failed_tests == ["Stuck Address", "unnamed test (exit code 0x04)"]
    assert outcome.exit_reasons == ["address-line failure", "other test failure"]
    assert not outcome.passed


def test_memtester_bit_0x01_could_not_start() -> None:
    outcome = parse_memtester("memtester version 4.6.0 (64-bit)\n", "memtester: need memory argument\n", 1)
    assert outcome.could_not_start and outcome.exit_reasons == ["could not start"]
    assert not outcome.passed and outcome.tests == {}
    assert EXIT_COULD_NOT_START == 0x01


def test_memtester_test_cut_off_by_a_stop_is_not_judged() -> None:
    stdout = HEAD + _loop(1, 0) + "Loop 2:\n  Stuck Address       : " + PROGRESS
    outcome = parse_memtester(stdout, "", None)
    assert outcome.interrupted_test == "Stuck Address" and outcome.loops_started == 2
    assert outcome.passed and outcome.failed_tests == []


def test_memtester_command_line() -> None:
    assert memtester_args(8 * MIB) == ["8M", "1"]
    assert memtester_args(8 * MIB + 4096, 0) == [f"{8 * MIB + 4096}B", "0"]
    assert memtester_args(MIB, 2, phys_addr=0x1_0000_0000, device="/dev/mem") == [
        "-p", "0x100000000", "-d", "/dev/mem", "1M", "2",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="only applies"):
        memtester_args(MIB, device="/dev/mem")


class CannedMemtester:
    """A ToolRunner that answers with canned memtester output and exit code."""

    tool = "memtester"
    address = "canned-memtester"

    def __init__(self, stdout: str, stderr: str, code: int) -> None:
        self.stdout, self.stderr, self.code = stdout, stderr, code
        self.stop_after_s: float | None = None

    def run(
        self,
        args: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_after_s: float | None = None,
    ) -> ToolResult:
        self.stop_after_s = stop_after_s
        return ToolResult(self.tool, tuple(args), self.code, self.stdout, self.stderr, 1.0)


def test_memtester_driver_names_failed_tests_and_the_slot(tmp_path: Path) -> None:
    tree = tmp_path / "mc"
    shutil.copytree(EDAC_FIXTURE, tree)
    stderr = "FAILURE: 0xff != 0xfe at physical address 0x2000.\n"
    runner = CannedMemtester(_stdout(_loop(1, 1, ["Bit Flip"])), stderr, EXIT_OTHER_TEST)
    tester = Memtester(
        runner=runner,
        phys_addr=0,
        edac=EdacReader(tree, slot_map={"channel 3 slot 0": 4}),
        address_map=PhysicalAddressMap([(0, 1 << 30, "CPU0_DIMM_D1")]),
    )
    assert isinstance(tester, HostMemoryStress)
    result = tester.run(MIB)
    assert not result.passed and result.failed_tests == ["Bit Flip"]
    assert result.status == "FAIL (other test failure): Bit Flip"
    assert result.miscompares == 1 and result.slots[4].miscompares == 1 and result.unattributed == 0


def test_memtester_driver_raises_when_memtester_could_not_start() -> None:
    tester = Memtester(runner=CannedMemtester("", "memtester: failed to allocate\n", EXIT_COULD_NOT_START))
    with pytest.raises(InstrumentError, match=r"could not start \(exit 0x01\)"):
        tester.run(MIB)


def test_memtester_driver_timed_run_stops_the_tool() -> None:
    runner = CannedMemtester(HEAD + _loop(1, 0) + "Loop 2:\n  Stuck Address       : ", "", -15)
    readings = Memtester(runner=runner).run_stress(MIB, 3.0)
    assert runner.stop_after_s == 3.0
    assert readings["passed"] == 1.0 and readings["failed_tests"] == 0.0
    killed = CannedMemtester(HEAD, "", -9)
    with pytest.raises(InstrumentError, match="killed by signal 9"):
        Memtester(runner=killed).run(MIB)


@needs_memtester
def test_memtester_real_8m_one_loop_passes() -> None:
    result = Memtester().run(8 * MIB, 1)
    assert result.passed, result.status
    assert result.exit_code == 0 and result.failed_tests == [] and result.miscompares == 0
    assert result.status == "PASS"


@needs_memtester
def test_memtester_real_timed_run_judges_completed_tests() -> None:
    result = Memtester().run_for(4 * MIB, 1.0)
    assert result.exit_code is not None and result.exit_code < 0  # stopped, as asked
    assert result.passed and result.failed_tests == []
