"""Workloads on the simulated SSD: device time not wall time, counters, latency, JESD218, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from drivers.nvme import commands as cmds
from drivers.nvme.commands import NvmeCommand
from drivers.nvme.controller import NvmeDriver
from drivers.protocols import BlockWorkload
from drivers.workload.spec import WorkloadResult, WorkloadSpec
from qualify.clock import VirtualClock
from qualify.stats.acceleration import bake_hours_for
from sim_instruments.ssd import BenchDut, SimBlockWorkload, SimSsd, SimSsdTransport, load_ssd_model, make_ssd
from sim_instruments.ssd.ftl import WriteMix, measure_waf

MODEL = load_ssd_model("enterprise_tlc_3p84tb")
CAPACITY = MODEL.capacity_bytes
# JESD219 enterprise workload: transfer-size mix and zoned LBA access (REFERENCE.md).
JESD219_BS = (
    (512, 0.04),
    (1024, 0.01),
    (1536, 0.01),
    (2048, 0.01),
    (2560, 0.01),
    (3072, 0.01),
    (3584, 0.01),
    (4096, 0.67),
    (8192, 0.10),
    (16384, 0.07),
    (32768, 0.03),
    (65536, 0.03),
)
JESD219_ZONES = ((50.0, 5.0), (30.0, 15.0), (20.0, 80.0))


@dataclass
class Rig:
    clock: VirtualClock
    dut: BenchDut
    device: SimSsd
    transport: SimSsdTransport
    workload: SimBlockWorkload

    def run(self, spec: WorkloadSpec) -> WorkloadResult:
        """Run a job and advance the clock by its runtime, as the engine does."""
        result = self.workload.run(spec)
        self.clock.sleep(result.runtime_s)
        return result


def make_rig(
    model: str = "enterprise_tlc_3p84tb", serial: str = "QSIM0001", seed: int = 7, temp_c: float = 40.0
) -> Rig:
    clock = VirtualClock()
    dut = BenchDut(serial, clock, temp_c=temp_c)
    device, transport = make_ssd(dut, clock, seed, model)
    return Rig(clock, dut, device, transport, SimBlockWorkload(device))


def test_the_workload_implements_block_workload() -> None:
    assert isinstance(make_rig().workload, BlockWorkload)


def test_two_drive_writes_take_their_bandwidth_time_without_touching_the_clock() -> None:
    rig = make_rig()
    spec = WorkloadSpec(
        name="2dw",
        rw="write",
        bs_split=((131072, 1.0),),
        io_bytes=2 * CAPACITY,
        size_bytes=CAPACITY,
        iodepth=32,
    )
    result = rig.workload.run(spec)
    assert rig.clock.now() == 0.0
    waf = measure_waf(MODEL.nand.over_provisioning, WriteMix(sequential=True, bs_split=((131072, 1.0),))).waf
    assert waf == pytest.approx(1.0)
    expected_s = 2 * CAPACITY / (MODEL.performance.nand_program_bytes_s / waf)
    assert result.runtime_s == pytest.approx(expected_s, rel=1e-6)
    assert result.runtime_s / 3600 == pytest.approx(0.593, abs=0.001)  # 7.68 TB at 3.6 GB/s
    assert result.write.bw_bytes_s == pytest.approx(MODEL.performance.nand_program_bytes_s, rel=1e-6)
    assert result.write.io_bytes == pytest.approx(2 * CAPACITY, abs=131072)
    assert result.errors == 0


def test_counters_and_busy_time_follow_the_workload() -> None:
    rig = make_rig()
    rig.run(WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32))
    result = rig.run(
        WorkloadSpec(
            name="4k", rw="randrw", rwmixread_pct=70, runtime_s=1800, iodepth=64, size_bytes=CAPACITY
        )
    )
    assert result.runtime_s == pytest.approx(1800, rel=1e-3)
    smart = NvmeDriver(rig.transport).smart_log()
    reads = result.read.io_bytes
    writes = CAPACITY + result.write.io_bytes
    assert smart.data_units_read == math.ceil(reads / 512_000)
    assert smart.data_units_written == pytest.approx(math.ceil(writes / 512_000), abs=1)
    assert smart.host_read_commands == round(reads / 4096)
    assert smart.controller_busy_time_min == math.floor((1800 + CAPACITY / 3.6e9) / 60)
    assert result.read.iops / result.write.iops == pytest.approx(70 / 30, rel=1e-3)


def test_random_writes_are_slower_than_sequential_by_the_waf() -> None:
    rig = make_rig()
    rig.run(WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32))
    result = rig.run(WorkloadSpec(name="4k", rw="randwrite", runtime_s=600, iodepth=128, size_bytes=CAPACITY))
    waf = measure_waf(MODEL.nand.over_provisioning, WriteMix()).waf
    assert result.write.bw_bytes_s == pytest.approx(MODEL.performance.nand_program_bytes_s / waf, rel=1e-6)


def test_latency_grows_with_queue_depth_and_with_read_retries() -> None:
    rig = make_rig()
    rig.run(WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32))
    qd1 = rig.workload.run(WorkloadSpec(name="qd1", rw="randread", runtime_s=60, iodepth=1))
    qd256 = rig.workload.run(WorkloadSpec(name="qd256", rw="randread", runtime_s=60, iodepth=256))
    for r in (qd1, qd256):
        lat = r.read
        assert lat.lat_p50_us is not None and lat.lat_p99_us is not None and lat.lat_p999_us is not None
        assert lat.lat_max_us is not None
        assert lat.lat_p50_us <= lat.lat_p99_us <= lat.lat_p999_us <= lat.lat_max_us
    assert qd1.read.lat_p50_us == pytest.approx(MODEL.performance.read_latency_us + 4096 / 7e9 * 1e6, rel=0.1)
    assert qd256.read.iops == pytest.approx(MODEL.performance.read_iops_max, rel=1e-6)
    assert qd256.read.lat_p50_us > 2 * qd1.read.lat_p50_us  # queueing at saturation
    # Age the data hard (end of life and a long power-off bake): reads climb the retry ladder.
    rig.workload.run(WorkloadSpec(name="wear", rw="write", io_bytes=3000 * CAPACITY, size_bytes=CAPACITY))
    rig.dut.set_power(False)
    rig.device.power_event(False, clean=True)
    rig.clock.sleep(24 * 3600 * 60)
    rig.dut.set_power(True)
    rig.device.power_event(True)
    aged = rig.workload.run(WorkloadSpec(name="aged", rw="randread", runtime_s=60, iodepth=1))
    assert rig.device.media_state().soft_decode_probability > 0.5
    assert aged.read.lat_p50_us > qd1.read.lat_p50_us + MODEL.ecc.read_retry[0].latency_us
    assert aged.read.iops < qd1.read.iops


def test_run_workload_speaks_plain_dicts() -> None:
    rig = make_rig()
    out = rig.workload.run_workload(
        {"name": "seq", "rw": "write", "bs": 131072, "size_bytes": CAPACITY, "iodepth": 32}
    )
    assert out["runtime_s"] == pytest.approx(CAPACITY / 3.6e9, rel=1e-6)
    assert out["errors"] == 0.0
    assert out["write_bw_bytes_s"] == pytest.approx(3.6e9, rel=1e-6)
    assert "read_iops" in out and "write_lat_p99_us" in out
    out = rig.workload.run_workload(
        {
            "name": "jesd219",
            "rw": "randwrite",
            "bs_split": [list(p) for p in JESD219_BS],
            "zones": [list(z) for z in JESD219_ZONES],
            "io_bytes": CAPACITY // 100,
        }
    )
    assert out["write_io_bytes"] == pytest.approx(CAPACITY // 100, rel=1e-4)


def test_trim_workload_deallocates_the_region() -> None:
    rig = make_rig()
    rig.run(WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32))
    transport = rig.transport
    _, before = transport.io(NvmeCommand(opcode=0x02, nsid=1, cdw10=8, data_len=512))
    assert before != bytes(512)  # the fill's pattern
    result = rig.run(
        WorkloadSpec(name="trim", rw="trim", bs_split=((1 << 20, 1.0),), size_bytes=CAPACITY // 2)
    )
    assert result.trim.io_bytes == pytest.approx(CAPACITY // 2, abs=1 << 20)
    _, after = transport.io(NvmeCommand(opcode=0x02, nsid=1, cdw10=8, data_len=512))
    assert after == bytes(512)
    assert NvmeDriver(transport).identify_namespace(1).nuse_blocks == pytest.approx(
        CAPACITY // 1024, rel=1e-3
    )


# JESD218: endurance, retention bake, verify ------------------------------------------------------


def jesd218_enterprise(rig: Rig) -> WorkloadResult:
    """Write the rated TBW with the JESD219 workload at 55 °C, bake for 3 months at 40 °C, verify."""
    tbw = round(MODEL.endurance.dwpd * CAPACITY * 365 * MODEL.endurance.warranty_years)
    rig.dut.set_temperature(55.0)
    rig.run(
        WorkloadSpec(
            name="precondition", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32
        )
    )
    rig.run(
        WorkloadSpec(
            name="endurance",
            rw="randwrite",
            bs_split=JESD219_BS,
            zones=JESD219_ZONES,
            io_bytes=tbw,
            iodepth=32,
        )
    )
    rig.dut.set_power(False)
    rig.device.power_event(False, clean=True)
    rig.device.sync()
    rig.dut.set_temperature(66.0)
    rig.clock.sleep(bake_hours_for(3 * 730, 1.1, 40.0, 66.0) * 3600)
    rig.device.sync()
    rig.dut.set_temperature(25.0)
    rig.dut.set_power(True)
    rig.device.power_event(True)
    return rig.run(
        WorkloadSpec(
            name="verify",
            rw="read",
            bs_split=((131072, 1.0),),
            size_bytes=CAPACITY,
            verify_only=True,
            iodepth=32,
        )
    )


def test_jesd218_healthy_drive_keeps_its_data_weak_media_does_not() -> None:
    healthy, weak = make_rig(), make_rig("weak_media_tlc_3p84tb")
    healthy_verify = jesd218_enterprise(healthy)
    weak_verify = jesd218_enterprise(weak)
    healthy_used = NvmeDriver(healthy.transport).smart_log().percentage_used_pct
    assert 75 <= healthy_used <= 95  # the rated TBW uses most but not all of the rated cycles
    bits_read = 8 * healthy_verify.read.io_bytes
    assert healthy_verify.errors == 0
    assert healthy.device.media_state().codeword_failure_probability * bits_read / 32768 < 1e-6
    # UBER = errors / bits read; JESD218 enterprise allows 1e-16.
    assert weak_verify.errors / bits_read > 1e-16
    assert weak_verify.errors / bits_read > 1e-13  # not marginal: a clear JESD218 failure
    assert weak.device.health().media_errors == weak_verify.errors
    assert weak.device.health().critical_warning & 0b100  # reliability degraded


# Determinism and snapshots -----------------------------------------------------------------------


def script(rig: Rig) -> list[object]:
    """Drive a rig through a mix of everything; return what the host saw."""
    seen: list[object] = []
    driver = NvmeDriver(rig.transport)
    seen.append(
        rig.run(
            WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32)
        )
    )
    rig.transport.io(
        NvmeCommand(opcode=0x01, nsid=1, cdw10=77, cdw12=1, data_len=1024), bytes(range(256)) * 4
    )
    rig.device.inject_bit_errors(77, 5000)
    seen.append(rig.transport.io(NvmeCommand(opcode=0x02, nsid=1, cdw10=77, cdw12=1, data_len=1024)))
    seen.append(
        rig.run(
            WorkloadSpec(
                name="mix", rw="randrw", bs_split=JESD219_BS, zones=JESD219_ZONES, io_bytes=50 * CAPACITY
            )
        )
    )
    rig.dut.set_power(False)
    rig.device.power_event(False)
    rig.clock.sleep(2000 * 3600)
    rig.dut.set_power(True)
    rig.device.power_event(True)
    seen.append(
        rig.run(
            WorkloadSpec(
                name="verify", rw="read", size_bytes=CAPACITY, bs_split=((131072, 1.0),), verify_only=True
            )
        )
    )
    for lid, length in ((0x01, 4096), (0x02, 512), (0x03, 512), (0x06, 564), (0xC0, 512)):
        seen.append(driver.admin_command(cmds.get_log_page(lid, 0xFFFFFFFF, length)))
    return seen


def test_the_same_seed_gives_the_same_drive() -> None:
    assert script(make_rig()) == script(make_rig())


def test_another_seed_gives_another_drive() -> None:
    a, b = make_rig(seed=7), make_rig(seed=8)
    assert a.device.rber_factor != b.device.rber_factor
    assert script(a) != script(b)


def test_snapshot_restore_into_a_fresh_device_continues_identically() -> None:
    original = make_rig("weak_media_tlc_3p84tb")
    script(original)
    state = json.loads(json.dumps(original.device.snapshot()))
    clone = make_rig("weak_media_tlc_3p84tb")
    clone.clock.advance_to(original.clock.now())
    clone.device.restore(state)
    assert clone.device.snapshot() == state
    assert script(original) == script(clone)
    assert original.device.snapshot() == clone.device.snapshot()


def test_restore_refuses_another_drive() -> None:
    state = make_rig(serial="QSIM0001").device.snapshot()
    with pytest.raises(ValueError, match="QSIM0002"):
        make_rig(serial="QSIM0002").device.restore(state)


def test_a_jesd218_size_workload_on_100_drives_is_a_computation() -> None:
    clock = VirtualClock()
    workloads = [
        SimBlockWorkload(make_ssd(BenchDut(f"QSIM{i:04d}", clock, 55.0), clock, 3)[0]) for i in range(100)
    ]
    spec = WorkloadSpec(
        name="endurance", rw="randwrite", bs_split=JESD219_BS, zones=JESD219_ZONES, io_bytes=4 * 10**15
    )
    runtimes = {w.run(spec).runtime_s for w in workloads}
    assert len(runtimes) == 1  # identical drives of one model: the same device time
    assert runtimes.pop() > 30 * 24 * 3600  # 4 PB of small random writes take over a month
