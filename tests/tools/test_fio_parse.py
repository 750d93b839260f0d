"""fio's JSON report and stderr verify lines, parsed from captured output (no fio needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import InstrumentError
from drivers.transport.process import ToolResult
from drivers.workload import fio as fio_module
from drivers.workload.fio import (
    UNKNOWN_OFFSET,
    FioWorkload,
    load_fio_json,
    parse_fio_output,
    parse_job,
    parse_verify_failures,
)
from drivers.workload.spec import WorkloadSpec

# fio 3.33, randrw 4k (trimmed to the keys the driver reads).
REPORT: dict[str, Any] = {
    "fio version": "fio-3.33",
    "jobs": [
        {
            "jobname": "x",
            "error": 0,
            "job_runtime": 1250,
            "read": {
                "io_bytes": 118784, "bw_bytes": 59392000, "bw": 58000, "iops": 14500.0, "runtime": 2,
                "clat_ns": {
                    "min": 36605, "max": 232078, "mean": 51689.8, "N": 29,
                    "percentile": {"50.000000": 46848, "99.000000": 232448, "99.900000": 232448},
                },
            },
            "write": {
                "io_bytes": 143360, "bw_bytes": 71680000, "bw": 70000, "iops": 17500.0, "runtime": 2,
                "clat_ns": {
                    "min": 2203, "max": 12078, "mean": 3155.2, "N": 35,
                    "percentile": {"50.000000": 2640, "99.000000": 12096, "99.900000": 12096},
                },
            },
            "trim": {
                "io_bytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0,
                "clat_ns": {"min": 0, "max": 0, "mean": 0.0, "N": 0},
            },
        }
    ],
}  # fmt: skip

# What fio 3.x prints to stderr, one line per failure class (file names may contain spaces).
STDERR = """\
crc32c: verify failed at file /mnt/dut 1/data.bin offset 12288, length 4096 (requested block: offset=12288, length=4096, flags=88)
       Expected CRC: 09dbdff5
       Received CRC: e67a8152
verify: bad header offset 81920, wanted 122880 at file /dev/nvme0n1 offset 122880, length 4096 (requested block: offset=122880, length=4096)
verify: bad magic header 0, wanted acca at file /dev/nvme0n1 offset 40960, length 4096 (requested block: offset=40960, length=4096)
verify: bad header numberio 63917, wanted 64003 at file /dev/nvme0n1 offset 701530112, length 4096 (requested block: offset=701530112, length=4096)
verify: bad header rand_seed 46386204153304124, wanted 9808084622837487 at file /dev/nvme0n1 offset 8192, length 4096
trim: verify failed at file /dev/nvme0n1 offset 65536, length 4096, block offset 0
fio: got pattern 'aa', wanted '55'. Bad bits 8
fio: bad pattern block offset 17
pattern: verify failed at file /dev/nvme0n1 offset 16384, length 4096 (requested block: offset=16384, length=4096, flags=88)
verify: bad header crc 1234abcd, calculated 9876fedc at file /dev/nvme0n1 offset 20480, length 4096
fio: pid=9319, err=84/file:io_u.c:2203, func=io_u_queued_complete, error=Invalid or incomplete multibyte or wide character
"""


def test_fio_verify_lines_become_offset_and_class() -> None:
    assert parse_verify_failures(STDERR) == [
        (12288, "corrupted"),
        (122880, "misdirected"),
        (40960, "unwritten"),
        (701530112, "stale"),
        (8192, "stale"),
        (65536, "stale"),
        (16384, "corrupted"),
        (20480, "corrupted"),
    ]
    assert parse_verify_failures(STDERR + STDERR) == parse_verify_failures(STDERR)  # once each
    assert parse_verify_failures("fio: some other problem at file x offset 1, length 2\n") == []


def test_fio_job_figures_in_explicit_units() -> None:
    result = parse_job(REPORT["jobs"][0], "mixed")
    assert result.name == "mixed" and result.runtime_s == 1.25 and result.errors == 0
    assert (result.read.iops, result.read.bw_bytes_s, result.read.io_bytes) == (14500.0, 59392000.0, 118784)
    assert (result.read.lat_p50_us, result.read.lat_p99_us) == (46.848, 232.448)
    assert result.read.lat_p999_us == 232.448 and result.read.lat_max_us == 232.078
    assert result.write.lat_p99_us == 12.096
    assert result.trim.lat_p50_us is None and result.trim.lat_max_us is None  # nothing measured


def test_fio_older_reports_in_microseconds_and_kib() -> None:
    old = {
        "jobname": "old", "error": 0,
        "read": {"io_kbytes": 4, "bw": 100, "iops": 25.0, "runtime": 40,
                 "clat": {"max": 900.0, "N": 1, "percentile": {"99.000000": 800}}},
    }  # fmt: skip
    result = parse_job(old)
    assert result.read.bw_bytes_s == 102400.0 and result.read.io_bytes == 4096
    assert result.read.lat_p99_us == 800.0 and result.read.lat_max_us == 900.0
    assert result.runtime_s == 0.04


def test_fio_json_after_warnings_and_garbage() -> None:
    text = "fio: note: both iodepth >= 1 and synchronous I/O engine are selected\n" + json.dumps(REPORT)
    assert load_fio_json(text)["fio version"] == "fio-3.33"
    with pytest.raises(ValueError, match="no JSON"):
        load_fio_json("fio: cannot open file\n")


def _report(*jobs: Mapping[str, object]) -> str:
    return json.dumps({"jobs": list(jobs)})


def test_fio_verify_failures_go_to_the_verifying_job() -> None:
    write = WorkloadSpec(name="fill", rw="write", size_bytes=1 << 20)
    check = WorkloadSpec(name="check", rw="write", size_bytes=1 << 20, verify="crc32c", verify_only=True)
    text = _report({"jobname": "fill", "error": 0}, {"jobname": "check", "error": 84, "total_err": 2})
    stderr = "\n".join(STDERR.splitlines()[:5])
    filled, checked = parse_fio_output(text, stderr, [write, check])
    assert filled.verify_failures == [] and filled.errors == 0
    assert checked.verify_failures == [(12288, "corrupted"), (122880, "misdirected"), (40960, "unwritten")]
    assert checked.errors == 2 and checked.error_text is not None and "EILSEQ" in checked.error_text


def test_fio_eilseq_without_offsets_still_counts_as_failures() -> None:
    check = WorkloadSpec(name="check", rw="write", size_bytes=1 << 20, verify="crc32c", verify_only=True)
    [result] = parse_fio_output(_report({"jobname": "check", "error": 84, "total_err": 2}), "", [check])
    assert result.verify_failures == [(UNKNOWN_OFFSET, "corrupted")] * 2


def test_fio_io_error_is_an_error_not_a_verify_failure() -> None:
    spec = WorkloadSpec(name="r", rw="read", size_bytes=1 << 20)
    [result] = parse_fio_output(_report({"jobname": "r", "error": 5}), "", [spec])
    assert result.errors == 1 and result.error_text is not None and "EIO" in result.error_text
    assert result.verify_failures == []
    with pytest.raises(ValueError, match="no job 'other'"):
        parse_fio_output(_report({"jobname": "r"}), "", [WorkloadSpec(name="other", rw="read", size_bytes=1)])


class FakeFio:
    """A ToolRunner standing in for fio: answers --enghelp and writes a canned report."""

    tool = "fio"
    address = "fake-fio"

    def __init__(self, report: str | None, engines: Sequence[str] = ("psync", "libaio", "io_uring")) -> None:
        self.report = report
        self.engines = engines
        self.calls: list[list[str]] = []

    def run(
        self,
        args: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_after_s: float | None = None,
    ) -> ToolResult:
        self.calls.append(list(args))
        if args == ["--enghelp"]:
            out = "Available IO engines:\n" + "".join(f"\t{e}\n" for e in self.engines)
            return ToolResult("fio", ("fio", *args), 0, out, "", 0.01)
        output = next(a.split("=", 1)[1] for a in args if a.startswith("--output="))
        if self.report is not None:
            Path(output).write_text(self.report)
        return ToolResult("fio", ("fio", *args), 1, "", "fio: file:filesetup.c: cannot open /dev/x", 0.01)


def test_fio_engine_for_devices_prefers_io_uring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fio_module, "is_block_device", lambda target: True)
    monkeypatch.setattr(fio_module, "_io_uring_enabled", lambda: True)
    assert FioWorkload("/dev/nvme0n1", runner=FakeFio(None), workdir=tmp_path).ioengine() == "io_uring"
    monkeypatch.setattr(fio_module, "_io_uring_enabled", lambda: False)
    assert FioWorkload("/dev/nvme0n1", runner=FakeFio(None), workdir=tmp_path).ioengine() == "libaio"
    only_sync = FakeFio(None, engines=("psync", "sync"))
    assert FioWorkload("/dev/nvme0n1", runner=only_sync, workdir=tmp_path).ioengine() == "psync"
    assert (
        FioWorkload("/dev/nvme0n1", runner=FakeFio(None), ioengine="libaio", workdir=tmp_path).ioengine()
        == "libaio"
    )


def test_fio_run_writes_job_file_and_reads_the_report(tmp_path: Path) -> None:
    runner = FakeFio(_report({"jobname": "seq", "error": 0, "write": {"io_bytes": 4096, "bw_bytes": 1e6}}))
    fio = FioWorkload(tmp_path / "dut.img", runner=runner, workdir=tmp_path / "work")
    result = fio.run(WorkloadSpec(name="seq", rw="write", size_bytes=4096, runtime_s=2))
    assert result.write.io_bytes == 4096 and result.write.bw_bytes_s == 1e6
    [call] = runner.calls
    assert call[0] == "--output-format=json" and call[2] == f"--aux-path={tmp_path / 'work'}"
    assert (tmp_path / "work" / "0001-seq.fio").read_text().startswith("[global]\n")
    assert fio.timeout_s([WorkloadSpec(name="t", rw="read", runtime_s=100)]) == pytest.approx(240.0)


def test_fio_without_a_report_is_an_instrument_error(tmp_path: Path) -> None:
    fio = FioWorkload(tmp_path / "dut.img", runner=FakeFio(None), workdir=tmp_path / "w")
    with pytest.raises(InstrumentError, match="cannot open /dev/x"):
        fio.run(WorkloadSpec(name="seq", rw="write", size_bytes=4096))
    private = FioWorkload(tmp_path / "dut.img", runner=FakeFio(None))
    assert private.workdir.is_dir()
    private.close()
    assert not private.workdir.exists()
