"""fio job files from WorkloadSpecs, and the standard workloads against REFERENCE.md."""

from __future__ import annotations

import pytest

from drivers.workload import jobs
from drivers.workload.jobs import build_job_file, parse_job_file, spec_options
from drivers.workload.spec import WorkloadSpec

KIB = 1024
# REFERENCE.md, "SSD: JESD218 / JESD219": the enterprise transfer mix in percent of I/Os.
JESD219_MIX_PCT = {
    512: 4, 1024: 1, 1536: 1, 2048: 1, 2560: 1, 3072: 1, 3584: 1,
    4096: 67, 8192: 10, 16384: 7, 32768: 3, 65536: 3,
}  # fmt: skip


def _render(*specs: WorkloadSpec, engine: str = "libaio") -> str:
    return build_job_file(specs, filename="/dev/nvme0n1", ioengine=engine).render()


def _bssplit(value: str) -> dict[int, int]:
    pairs = (item.split("/") for item in value.split(":"))
    return {int(size): int(pct) for size, pct in pairs}


def test_jesd219_job_file_carries_the_reference_mix() -> None:
    text = _render(jobs.jesd219_enterprise(runtime_s=60, seed=11))
    job = parse_job_file(text).job("jesd219-enterprise")
    assert _bssplit(job["bssplit"]) == JESD219_MIX_PCT
    assert sum(_bssplit(job["bssplit"]).values()) == 100
    assert job["random_distribution"] == "zoned:50/5:30/15:20/80"
    assert job["rw"] == "randwrite"
    # The smallest transfer is 512 B, so fio's default alignment would be 512: ask for 4K.
    assert job["blockalign"] == "4096"
    assert (job["randseed"], job["randrepeat"]) == ("11", "1")
    assert (job["runtime"], job["time_based"]) == ("60000ms", "1")
    assert job["filename"] == "/dev/nvme0n1" and job["ioengine"] == "libaio"


def test_jesd219_mixes_reads_only_when_asked() -> None:
    job = parse_job_file(_render(jobs.jesd219_enterprise(rw="randrw", rwmixread_pct=40, io_bytes=1 << 30)))
    options = job.job("jesd219-enterprise")
    assert (options["rw"], options["rwmixread"], options["io_size"]) == ("randrw", "40", str(1 << 30))
    assert "time_based" not in options
    with pytest.raises(ValueError, match="random"):
        jobs.jesd219_enterprise(rw="write", runtime_s=1)
    with pytest.raises(ValueError, match="runtime_s or io_bytes"):
        jobs.jesd219_enterprise()


def test_split_percentages_must_be_whole() -> None:
    # fio reads them with atoi(): 66.5 would run as 66, and 0 would take the remainder.
    with pytest.raises(ValueError, match="whole percentages"):
        jobs.bssplit_value(((4096, 0.665), (8192, 0.335)))
    with pytest.raises(ValueError, match="whole percentages"):
        jobs.zoned_value(((99.5, 50.0), (0.5, 50.0)))
    assert jobs.bssplit_value(((4096, 0.5), (8192, 0.5), (16384, 0.0))) == "4096/50:8192/50"


def test_single_size_uses_bs_and_default_alignment() -> None:
    options = dict(
        spec_options(WorkloadSpec(name="r", rw="randread", bs_split=((131072, 1.0),), runtime_s=2))
    )
    assert options["bs"] == "131072"
    assert "bssplit" not in options and "blockalign" not in options
    assert "random_distribution" not in options and "rwmixread" not in options


def test_region_queue_and_direct_options() -> None:
    spec = WorkloadSpec(
        name="w", rw="write", offset_bytes=1 << 20, size_bytes=8 << 20, io_bytes=16 << 20,
        iodepth=32, numjobs=4, direct=False, runtime_s=0.25,
    )  # fmt: skip
    options = dict(spec_options(spec))
    assert options["offset"] == str(1 << 20) and options["size"] == str(8 << 20)
    assert options["io_size"] == str(16 << 20)
    assert (options["iodepth"], options["numjobs"], options["direct"]) == ("32", "4", "0")
    assert options["runtime"] == "250ms" and "time_based" not in options


def test_verify_write_then_verify_only_and_power_loss_state() -> None:
    write = WorkloadSpec(name="w", rw="randwrite", size_bytes=1 << 20, verify="crc32c", do_verify=False)
    options = dict(spec_options(write))
    assert (options["verify"], options["do_verify"]) == ("crc32c", "0")
    assert (options["verify_fatal"], options["continue_on_error"]) == ("0", "verify")
    check = WorkloadSpec(
        name="v", rw="randwrite", size_bytes=1 << 20, verify="crc32c", verify_only=True,
        verify_state_load=True,
    )  # fmt: skip
    options = dict(spec_options(check))
    assert options["verify_only"] == "1" and options["verify_state_load"] == "1"
    assert "do_verify" not in options
    saved = WorkloadSpec(
        name="s", rw="write", size_bytes=1 << 20, verify="crc32c", verify_backlog=64, verify_state_save=True
    )
    options = dict(spec_options(saved))
    assert (options["verify_backlog"], options["verify_state_save"]) == ("64", "1")
    assert "verify" not in dict(spec_options(WorkloadSpec(name="n", rw="write", size_bytes=4096)))


def test_job_file_runs_specs_in_order_with_stonewalls() -> None:
    first = jobs.sequential_precondition(1 << 30, iodepth=16)
    second = jobs.ai_dataset_read(runtime_s=30)
    parsed = parse_job_file(_render(first, second, engine="io_uring"))
    assert [name for name, _ in parsed.jobs] == ["seq-precondition", "ai-dataset-read"]
    assert "stonewall" not in parsed.job("seq-precondition")
    assert parsed.job("ai-dataset-read")["stonewall"] == ""
    assert dict(parsed.global_options)["group_reporting"] == "1"
    with pytest.raises(ValueError, match="two jobs"):
        build_job_file([first, first], filename="f", ioengine="psync")
    with pytest.raises(ValueError, match="at least one"):
        build_job_file([], filename="f", ioengine="psync")


def test_pts_preconditioning_is_twice_capacity_of_128k_sequential_writes() -> None:
    spec = jobs.pts_preconditioning(960 * 10**9)
    assert (spec.rw, spec.bs_split, spec.size_bytes) == ("write", ((128 * KIB, 1.0),), 960 * 10**9)
    assert spec.io_bytes == 2 * 960 * 10**9


def test_pts_iops_round_covers_every_mix_and_block_size() -> None:
    specs = jobs.pts_iops_round(3)
    cells = {(s.rwmixread_pct, s.bs_split[0][0]) for s in specs}
    assert {pct for pct, _ in cells} == {100, 95, 65, 50, 35, 5, 0}
    assert {bs for _, bs in cells} == {
        512,
        4 * KIB,
        8 * KIB,
        16 * KIB,
        32 * KIB,
        64 * KIB,
        128 * KIB,
        1024 * KIB,
    }
    assert len(specs) == len(cells) == 56
    assert all(s.runtime_s == 60.0 and s.rw.startswith("rand") for s in specs)
    assert {s.rw for s in specs if s.rwmixread_pct == 100} == {"randread"}
    assert {s.rw for s in specs if s.rwmixread_pct == 0} == {"randwrite"}
    assert jobs.pts_iops_job_name(3, 0, 4096) in {s.name for s in specs}  # the tracked cell
    build_job_file(specs, filename="/dev/nvme0n1", ioengine="io_uring")  # names are unique
    with pytest.raises(ValueError, match="1 to 25"):
        jobs.pts_iops_round(26)


def test_ai_profiles() -> None:
    burst = jobs.ai_checkpoint_burst(8 << 30, block_bytes=4 << 20, iodepth=64, verify=True)
    assert (burst.rw, burst.bs_split[0][0], burst.iodepth, burst.io_bytes) == ("write", 4 << 20, 64, 8 << 30)
    assert burst.verify == "crc32c" and not burst.do_verify
    with pytest.raises(ValueError, match="1 to 4 MiB"):
        jobs.ai_checkpoint_burst(1 << 30, block_bytes=128 * KIB)
    reads = jobs.ai_dataset_read(runtime_s=120)
    assert (reads.rw, reads.bs_split[0][0], reads.iodepth) == ("randread", 128 * KIB, 64)


def test_job_file_parser_reads_comments_and_flags() -> None:
    parsed = parse_job_file("; comment\n[global]\nioengine=psync\n\n# more\n[a]\nrw=read\nstonewall\n")
    assert parsed.job("a") == {"ioengine": "psync", "rw": "read", "stonewall": ""}
    with pytest.raises(ValueError, match="before any"):
        parse_job_file("rw=read\n")
