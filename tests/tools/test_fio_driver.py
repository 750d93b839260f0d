"""The fio driver with real fio against a small temporary file: figures, verify, JESD219."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.protocols import BlockWorkload
from drivers.workload import jobs
from drivers.workload.fio import FioWorkload
from drivers.workload.spec import WorkloadSpec

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed (apt-get install fio)")

BLOCK = 4096
SIZE = 4 << 20


@pytest.fixture
def fio(tmp_path: Path) -> Iterator[FioWorkload]:
    workload = FioWorkload(tmp_path / "dut.img", workdir=tmp_path / "fio")
    yield workload
    workload.close()


def _write_spec(**changes: object) -> WorkloadSpec:
    base: dict[str, object] = {
        "name": "fill",
        "rw": "randwrite",
        "size_bytes": SIZE,
        "direct": False,
        "verify": "crc32c",
        "do_verify": False,
        "seed": 7,
    }
    return WorkloadSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_fio_reports_bandwidth_and_latency(fio: FioWorkload) -> None:
    assert isinstance(fio, BlockWorkload)
    assert fio.ioengine() == "psync"  # a file, not a device
    write, read = fio.run_all(
        [
            WorkloadSpec(
                name="seq-write", rw="write", bs_split=((65536, 1.0),), size_bytes=SIZE, direct=False
            ),
            WorkloadSpec(name="rand-read", rw="randread", size_bytes=SIZE, runtime_s=0.3, direct=False),
        ]
    )
    assert write.errors == 0 and write.write.io_bytes == SIZE
    assert write.write.bw_bytes_s > 0 and write.write.iops > 0
    assert write.read.io_bytes == 0 and write.read.lat_p99_us is None
    assert read.read.io_bytes > 0 and read.read.bw_bytes_s > 0
    lat = read.read
    assert lat.lat_p50_us is not None and lat.lat_p99_us is not None and lat.lat_p999_us is not None
    assert lat.lat_max_us is not None
    assert 0 < lat.lat_p50_us <= lat.lat_p99_us <= lat.lat_p999_us <= lat.lat_max_us
    assert read.runtime_s > 0


def test_fio_verify_only_finds_corruption_planted_after_write(fio: FioWorkload, tmp_path: Path) -> None:
    written = fio.run(_write_spec())
    assert written.errors == 0 and written.write.io_bytes == SIZE
    image = tmp_path / "dut.img"
    with image.open("r+b") as f:
        f.seek(3 * BLOCK + 1000)
        f.write(b"\xde\xad")  # payload bytes: checksum mismatch
        f.seek(9 * BLOCK)
        f.write(bytes(BLOCK))  # a block that reads as never written
        f.seek(20 * BLOCK)
        other = f.read(BLOCK)
        f.seek(30 * BLOCK)
        f.write(other)  # a whole, sound block in the wrong place
    checked = fio.run(_write_spec(name="check", verify_only=True))
    assert set(checked.verify_failures) == {
        (3 * BLOCK, "corrupted"),
        (9 * BLOCK, "unwritten"),
        (30 * BLOCK, "misdirected"),
    }
    assert checked.errors == 3 and checked.error_text is not None and "EILSEQ" in checked.error_text


def test_fio_verify_only_passes_untouched_data(fio: FioWorkload) -> None:
    fio.run(_write_spec())
    checked = fio.run(_write_spec(name="check", verify_only=True))
    assert checked.verify_failures == [] and checked.errors == 0
    assert checked.read.io_bytes == SIZE


def test_fio_runs_the_jesd219_workload(fio: FioWorkload) -> None:
    spec = jobs.jesd219_enterprise(size_bytes=SIZE, io_bytes=1 << 20, iodepth=1, seed=3)
    result = fio.run(WorkloadSpec(**{**spec.__dict__, "direct": False}))
    assert result.errors == 0
    # fio accepted the mix, zones and alignment and moved the bytes asked for.
    assert result.write.io_bytes >= 1 << 20
    assert result.write.iops > 0


def test_fio_run_workload_returns_flat_readings(fio: FioWorkload) -> None:
    readings = fio.run_workload(
        {"name": "plan-step", "rw": "write", "bs": 65536, "size_bytes": SIZE, "direct": False}
    )
    assert readings["write_io_bytes"] == SIZE
    assert readings["write_bw_bytes_s"] > 0
    assert readings["errors"] == 0 and readings["verify_failures"] == 0
