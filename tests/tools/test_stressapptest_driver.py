"""stressapptest: its output parsed from captures, and real runs through the driver."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from drivers.dimm.edac import EdacReader, PhysicalAddressMap
from drivers.errors import InstrumentError
from drivers.memtest.stressapptest import StressAppTest, parse_stressapptest, stressapptest_args
from drivers.protocols import HostMemoryStress
from drivers.transport.process import ToolResult

MIB = 1024 * 1024
EDAC_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "edac" / "mc"
needs_stressapptest = pytest.mark.skipif(
    shutil.which("stressapptest") is None,
    reason="stressapptest not installed (apt-get install stressapptest)",
)

HEAD = """\
Log: Commandline - stressapptest -M 64 -s 2 -m 2 -l sat.log
Stats: SAT revision 1.0.6_autoconf, 64 bit binary
Log: 1 nodes, 2 cpus.
Stats: Starting SAT, 64M, 2 seconds
Log: Region mask: 0x1
"""
PASS_TAIL = """\
Stats: Found 0 hardware incidents
Stats: Completed: 217536.00M in 5.00s 43501.62MB/s, with 0 hardware incidents, 0 errors
Stats: Memory Copy: 217536.00M at 43505.72MB/s

Status: PASS - please verify no corrected errors
"""
MISCOMPARE = (
    "Hardware Error: miscompare on CPU 0(0x1) at 0x7f3b2840c078(0x1234b78:DIMM Unknown): "
    "read:0x000000ba00000008, reread:0x000000ba00000008 expected:0x0000000800000008\n"
)
FAIL_TAIL = """\
Log: Thread 1 found 1 hardware incidents
Stats: Found 1 hardware incidents
Stats: Completed: 180430.00M in 5.00s 36058.01MB/s, with 1 hardware incidents, 0 errors

Status: FAIL - test discovered HW problems
"""


def test_stressapptest_pass_output() -> None:
    outcome = parse_stressapptest(HEAD + PASS_TAIL)
    assert outcome.passed and outcome.status == "PASS"
    assert outcome.bw_mib_s == 43501.62 and outcome.runtime_s == 5.0
    assert outcome.miscompare_count == 0 and outcome.miscompares == []


def test_stressapptest_fail_output_with_the_miscompare() -> None:
    outcome = parse_stressapptest(
        HEAD + "Report Error: miscompare : DIMM Unknown : 1 : 0s\n" + MISCOMPARE + FAIL_TAIL
    )
    assert not outcome.passed and outcome.status == "FAIL"
    assert outcome.incidents == 1 and outcome.miscompare_count == 1
    [bad] = outcome.miscompares
    assert bad.physical_address == 0x1234B78 and bad.virtual_address == 0x7F3B2840C078
    assert (bad.expected, bad.actual, bad.reread) == (0x800000008, 0xBA00000008, 0xBA00000008)
    assert bad.bits_flipped == 4 and bad.dimm == "DIMM Unknown"


def test_stressapptest_pass_status_with_miscompares_in_its_log_is_a_fail() -> None:
    stdout = HEAD + PASS_TAIL
    log = HEAD + MISCOMPARE.replace("0x1234b78", "0x5000") + MISCOMPARE + PASS_TAIL
    outcome = parse_stressapptest(stdout + log)
    assert outcome.status == "PASS"  # what it printed
    assert outcome.miscompare_count == 2
    assert not outcome.passed  # what it found


def test_stressapptest_tag_and_page_errors_count() -> None:
    text = (
        "Hardware Error: Tag from 0x7f00(0x9000:DIMM0) (read error) miscompare on CPU 1(0x2) at "
        "0x7f40(0xa000:DIMM1): read:0x1, reread:0x1, expected:0x3. 'pat', read error\n"
        "Page Error: miscompare on CPU 2(0x4) at 0x7f48(0xa008:DIMM1): read:0x0, reread:0x0 expected:0xff\n"
        "Status: PASS - please verify no corrected errors\n"
    )
    outcome = parse_stressapptest(text)
    assert [m.physical_address for m in outcome.miscompares] == [0xA000, 0xA008]
    assert [m.dimm for m in outcome.miscompares] == ["DIMM1", "DIMM1"]
    assert not outcome.passed


def test_stressapptest_procedural_errors_and_missing_status() -> None:
    text = HEAD + "Stats: Completed: 10.00M in 2.00s 5.00MB/s, with 0 hardware incidents, 3 errors\n"
    outcome = parse_stressapptest(text + "Status: FAIL - test encountered procedural errors\n")
    assert outcome.errors == 3 and not outcome.passed
    assert parse_stressapptest(HEAD).status is None


def test_stressapptest_command_line() -> None:
    args = stressapptest_args(
        64 * MIB + 5,
        2.4,
        threads=2,
        cpu_stress_copy=True,
        cc_test=True,
        logfile="/tmp/s.log",
        extra=["-v", "9"],
    )
    assert args == ["-M", "64", "-s", "2", "-m", "2", "-W", "--cc_test", "-l", "/tmp/s.log", "-v", "9"]
    with pytest.raises(ValueError, match="whole MiB"):
        stressapptest_args(1000, 1)


class CannedStressapptest:
    """A ToolRunner that prints canned output, writes the log, and can raise EDAC counts meanwhile."""

    tool = "stressapptest"
    address = "canned-stressapptest"

    def __init__(self, stdout: str, log: str, during: Callable[[], None] = lambda: None) -> None:
        self.stdout, self.log, self.during = stdout, log, during
        self.args: list[str] = []

    def run(
        self,
        args: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_after_s: float | None = None,
    ) -> ToolResult:
        self.args = list(args)
        Path(args[args.index("-l") + 1]).write_text(self.log)
        self.during()
        return ToolResult(self.tool, tuple(args), 0, self.stdout, "", 5.0)


def test_stressapptest_errors_are_attributed_to_slots(tmp_path: Path) -> None:
    tree = tmp_path / "mc"
    shutil.copytree(EDAC_FIXTURE, tree)
    edac = EdacReader(tree, slot_map={"CPU0_DIMM_A1": 1, "CPU0_DIMM_C1": 3})
    dimm_c1 = tree / "mc0" / "dimm2" / "dimm_ce_count"

    def corrected_error_meanwhile() -> None:
        dimm_c1.write_text("2\n")

    runner = CannedStressapptest(HEAD + PASS_TAIL, HEAD + MISCOMPARE + PASS_TAIL, corrected_error_meanwhile)
    sat = StressAppTest(
        runner=runner,
        edac=edac,
        address_map=PhysicalAddressMap(
            [(0, 0x100_0000, "CPU0_DIMM_C1"), (0x100_0000, 1 << 40, "CPU0_DIMM_A1")]
        ),
    )
    assert isinstance(sat, HostMemoryStress)
    result = sat.run(64 * MIB, 2)
    assert not result.passed and result.status.startswith("Status: PASS")  # PASS printed, FAIL judged
    assert result.bw_bytes_s == pytest.approx(43501.62 * MIB)
    assert result.edac_delta["CPU0_DIMM_C1"] == (2, 0)
    assert {slot: (e.miscompares, e.ce, e.ue) for slot, e in result.slots.items()} == {
        1: (1, 0, 0),
        3: (0, 2, 0),
    }
    readings = sat.run_stress(64 * MIB, 2)
    assert readings["passed"] == 0.0 and readings["miscompares"] == 1.0
    assert readings["slot1_miscompares"] == 1.0 and readings["bw_bytes_s"] == pytest.approx(43501.62 * MIB)


def test_stressapptest_without_a_status_line_is_a_harness_error() -> None:
    sat = StressAppTest(runner=CannedStressapptest("Usage: ./sat(32|64) [options]\n", ""))
    with pytest.raises(InstrumentError, match="without a Status line"):
        sat.run(16 * MIB, 1)


@needs_stressapptest
def test_stressapptest_real_run_passes_and_reports_bandwidth() -> None:
    result = StressAppTest(threads=2).run(64 * MIB, 2)
    assert result.passed, result.status
    assert result.status.startswith("Status: PASS")
    assert result.miscompares == 0 and result.exit_code == 0
    assert result.bw_bytes_s is not None and result.bw_bytes_s > 0
    assert result.size_bytes == 64 * MIB


@needs_stressapptest
def test_stressapptest_real_forced_errors_fail_the_run() -> None:
    # --force_errors makes stressapptest inject miscompares to prove its error path.
    result = StressAppTest(threads=1, extra_args=["--force_errors"]).run(16 * MIB, 1)
    assert not result.passed
    assert result.miscompares >= 1 and result.errors
    assert result.errors[0].expected != result.errors[0].actual
