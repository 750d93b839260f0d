"""Health of the simulated SSD: wear, spares and warnings, throttling, power, faults, the lab."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import yaml

from drivers.errors import InstrumentTimeout
from drivers.nvme.commands import Completion, NvmeCommand
from drivers.nvme.controller import NvmeDriver
from drivers.nvme.structures import CriticalWarning
from drivers.workload.spec import WorkloadSpec
from qualify.clock import VirtualClock
from qualify.stats.acceleration import arrhenius_af
from sim_instruments.lab import Lab
from sim_instruments.ssd import BenchDut, SimBlockWorkload, SimSsd, SimSsdTransport, load_ssd_model, make_ssd
from sim_instruments.ssd.device import SimSsd as SimSsdClass
from sim_instruments.ssd.model import SsdModel, models_dir, parse_ssd_model
from sim_instruments.ssd.nand import grown_bad_fraction

MODEL = load_ssd_model("enterprise_tlc_3p84tb")
CAPACITY = MODEL.capacity_bytes


@dataclass
class Rig:
    clock: VirtualClock
    dut: BenchDut
    device: SimSsd
    transport: SimSsdTransport
    driver: NvmeDriver

    def workload(self, spec: WorkloadSpec, advance: bool = True) -> float:
        result = SimBlockWorkload(self.device).run(spec)
        if advance:
            self.clock.sleep(result.runtime_s)
        return result.runtime_s

    def write(self, slba: int, data: bytes, fua: bool = False) -> Completion:
        cmd = NvmeCommand(
            opcode=0x01,
            nsid=1,
            cdw10=slba,
            cdw12=(len(data) // 512 - 1) | (int(fua) << 30),
            data_len=len(data),
        )
        return self.transport.io(cmd, data)[0]

    def read(self, slba: int, nlb: int = 1) -> tuple[Completion, bytes]:
        return self.transport.io(
            NvmeCommand(opcode=0x02, nsid=1, cdw10=slba, cdw12=nlb - 1, data_len=512 * nlb)
        )

    def power(self, on: bool, clean: bool = False) -> None:
        self.dut.set_power(on)
        self.device.power_event(on, clean=clean)


def make_rig(temp_c: float = 40.0, model: str = "enterprise_tlc_3p84tb", device: SimSsd | None = None) -> Rig:
    clock = VirtualClock()
    dut = BenchDut("QSIM0001", clock, temp_c=temp_c)
    if device is None:
        device, transport = make_ssd(dut, clock, 7, model)
    else:
        transport = SimSsdTransport(device)
    return Rig(clock, dut, device, transport, NvmeDriver(transport))


def seq_write(nbytes: int) -> WorkloadSpec:
    return WorkloadSpec(
        name="seq", rw="write", bs_split=((131072, 1.0),), io_bytes=nbytes, size_bytes=CAPACITY, iodepth=32
    )


# Wear and spares -------------------------------------------------------------------------------


def test_percentage_used_tracks_average_pe_over_rated() -> None:
    rig = make_rig()
    rated = MODEL.endurance.rated_pe_cycles
    for drive_writes in (100, 1000, 2000):
        rig.workload(seq_write(drive_writes * CAPACITY // 10), advance=False)
        pe = rig.device.state.nand_write_bytes / MODEL.physical_bytes
        smart = rig.driver.smart_log()
        assert smart.percentage_used_pct == math.floor(100 * pe / rated)
    assert smart.percentage_used_pct == math.floor(100 * 310 / 1.28 / rated)  # 310 sequential drive writes


def test_percentage_used_passes_100_and_saturates_at_255_on_the_page() -> None:
    rig = make_rig()
    rig.workload(seq_write(round(3.0 * 3000 * 1.28 * CAPACITY)), advance=False)
    assert rig.device.health().percentage_used_pct == 300
    assert rig.driver.smart_log().percentage_used_pct == 255


def test_spare_depletion_sets_the_warnings_and_finally_read_only() -> None:
    rig = make_rig()
    spare = MODEL.nand.spare_blocks
    eta = rig.device.bad_block_eta_pe
    assert rig.driver.smart_log().critical_warning == 0
    # Wear until the Weibull wear-out has eaten just over 90 % of the spare blocks.
    target_bad = 0.92 * spare / MODEL.total_blocks
    pe = eta * (-math.log1p(-target_bad)) ** (1 / MODEL.nand.bad_block_shape)
    rig.workload(seq_write(round(pe * MODEL.physical_bytes)), advance=False)
    bad = math.floor(
        MODEL.total_blocks * grown_bad_fraction(rig.device.pe_cycles(), eta, MODEL.nand.bad_block_shape)
    )
    smart = rig.driver.smart_log()
    assert smart.available_spare_pct == math.floor(100 * (spare - bad) / spare) < 10
    assert smart.critical_warning == CriticalWarning.AVAILABLE_SPARE
    assert rig.write(0, bytes(512)).ok
    rig.device.retire_blocks(spare)  # a die fails: no spare left
    smart = rig.driver.smart_log()
    assert smart.available_spare_pct == 0
    assert smart.critical_warning == (
        CriticalWarning.AVAILABLE_SPARE | CriticalWarning.RELIABILITY_DEGRADED | CriticalWarning.READ_ONLY
    )
    completion = rig.write(0, bytes(512))
    assert (completion.sct, completion.sc) == (0, 0x20)  # Namespace is Write Protected
    assert rig.read(0)[0].ok  # read-only media still reads
    result = SimBlockWorkload(rig.device).run(seq_write(CAPACITY))
    assert result.errors == 1 and "write protected" in (result.error_text or "")


def test_many_media_errors_degrade_reliability() -> None:
    rig = make_rig()
    rig.device.error_burst(0, 1000)
    for lba in range(MODEL.nand.reliability_degraded_media_errors):
        assert rig.read(lba)[0].sc == 0x81
    assert rig.driver.smart_log().critical_warning == CriticalWarning.RELIABILITY_DEGRADED


# Thermal ---------------------------------------------------------------------------------------


def test_above_wctemp_the_drive_throttles_and_counts() -> None:
    cool, hot = make_rig(temp_c=40.0), make_rig(temp_c=72.0)  # 72 + 5 °C of self-heating > 75 °C
    spec = WorkloadSpec(
        name="seq", rw="write", bs_split=((131072, 1.0),), io_bytes=CAPACITY, size_bytes=CAPACITY
    )
    cool_s = cool.workload(spec)
    hot_s = hot.workload(spec)
    assert hot_s == pytest.approx(cool_s / MODEL.thermal.light_throttle_factor, rel=1e-9)
    assert cool.driver.smart_log().warning_temp_time_min == 0
    smart = hot.driver.smart_log()
    assert smart.warning_temp_time_min == math.floor(hot_s / 60)
    assert smart.critical_temp_time_min == 0
    assert hot.device.ocp_health().thermal_throttling_events == 1
    assert cool.device.ocp_health().thermal_throttling_events == 0
    hot.workload(spec, advance=False)
    assert hot.device.ocp_health().thermal_throttling_status == 1  # busy now, first level
    hot.clock.sleep(hot_s)
    assert hot.device.ocp_health().thermal_throttling_status == 0  # idle at 72 °C again
    assert hot.device.ocp_health().thermal_throttling_events == 2


def test_above_cctemp_heavy_throttling_and_critical_time() -> None:
    rig = make_rig(temp_c=82.0)
    spec = WorkloadSpec(
        name="seq", rw="write", bs_split=((131072, 1.0),), io_bytes=CAPACITY, size_bytes=CAPACITY
    )
    runtime_s = rig.workload(spec)
    assert runtime_s == pytest.approx(
        CAPACITY / (MODEL.performance.nand_program_bytes_s * MODEL.thermal.heavy_throttle_factor), rel=1e-3
    )
    smart = rig.driver.smart_log()
    assert smart.critical_temp_time_min == math.floor(runtime_s / 60)
    # Idle at 82 °C the drive sits between WCTEMP and CCTEMP: warning time, SMART temperature alarm.
    assert smart.temperature_warning is True
    rig.clock.sleep(600)
    assert rig.driver.smart_log().warning_temp_time_min == 10


# Power -----------------------------------------------------------------------------------------


def test_power_on_hours_accrue_only_while_powered() -> None:
    rig = make_rig()
    rig.clock.sleep(60 * 3600)
    rig.power(False, clean=True)
    rig.clock.sleep(100 * 3600)
    rig.power(True)
    rig.clock.sleep(39.5 * 3600)
    smart = rig.driver.smart_log()
    assert smart.power_on_hours == 99
    assert smart.power_cycles == 2
    assert smart.unsafe_shutdowns == 0


def test_unsafe_shutdowns_count_power_lost_without_a_shutdown() -> None:
    rig = make_rig()
    for clean in (False, True, False):
        rig.power(False, clean=clean)
        rig.clock.sleep(60)
        rig.power(True)
    smart = rig.driver.smart_log()
    assert (smart.power_cycles, smart.unsafe_shutdowns) == (4, 2)
    assert rig.device.ocp_health().plp_start_count == 2
    assert rig.device.ocp_health().incomplete_shutdowns == 0


def test_an_unpowered_drive_does_not_answer_and_notices_power_by_itself() -> None:
    rig = make_rig()
    rig.dut.set_power(False)  # no power_event: the drive finds out at the next command
    with pytest.raises(InstrumentTimeout, match="not powered"):
        rig.driver.smart_log()
    rig.clock.sleep(3600)
    rig.dut.set_power(True)
    smart = rig.driver.smart_log()
    assert (smart.power_cycles, smart.unsafe_shutdowns, smart.power_on_hours) == (2, 1, 0)
    with pytest.raises(InstrumentTimeout):
        rig.dut.set_power(False)
        SimBlockWorkload(rig.device).run(seq_write(CAPACITY))


def test_without_plp_unflushed_writes_die_with_the_power() -> None:
    assert MODEL.power.power_loss_protection is True
    clock = VirtualClock()
    dut = BenchDut("QSIM0009", clock)
    model = no_plp_model()
    device = SimSsdClass(model, "QSIM0009", clock, 7, dut)
    rig = Rig(clock, dut, device, SimSsdTransport(device), NvmeDriver(SimSsdTransport(device)))
    old, new = b"\x11" * 512, b"\x22" * 512
    rig.write(1, old)
    rig.transport.io(NvmeCommand(opcode=0x00, nsid=1))  # flush
    rig.write(1, new)
    rig.write(2, new)
    rig.write(3, new, fua=True)
    assert rig.read(1)[1] == new
    rig.power(False, clean=False)
    rig.power(True)
    assert rig.read(1)[1] == old
    assert rig.read(2)[1] == bytes(512)
    assert rig.read(3)[1] == new
    assert device.ocp_health().incomplete_shutdowns == 1
    assert device.ocp_health().capacitor_health_pct == 0xFFFF


def test_a_shutdown_notification_makes_the_next_power_loss_clean_and_flushes_the_cache() -> None:
    clock = VirtualClock()
    dut = BenchDut("QSIM0009", clock)
    device = SimSsdClass(no_plp_model(), "QSIM0009", clock, 7, dut)
    transport = SimSsdTransport(device)
    rig = Rig(clock, dut, device, transport, NvmeDriver(transport))
    rig.write(1, b"\x22" * 512)  # in the volatile cache
    rig.driver.prepare_power_off()
    rig.dut.set_power(False)
    device.sync()  # a look without power_event, as the lab takes one: the loss is still clean
    clock.sleep(3600)
    rig.dut.set_power(True)
    rig.driver.after_power_on()
    assert rig.read(1)[1] == b"\x22" * 512
    smart = rig.driver.smart_log()
    assert (smart.power_cycles, smart.unsafe_shutdowns) == (2, 0)
    assert device.ocp_health().incomplete_shutdowns == 0


def test_commands_after_a_shutdown_notification_withdraw_it() -> None:
    rig = make_rig()
    rig.transport.shutdown_notification()
    rig.driver.smart_log()  # the host brought the controller back
    rig.power(False)
    rig.power(True)
    assert rig.driver.smart_log().unsafe_shutdowns == 1


def test_a_drive_off_the_bus_never_completes_its_shutdown() -> None:
    rig = make_rig()
    rig.device.drop_off()
    with pytest.raises(InstrumentTimeout, match="shutdown complete") as raised:
        rig.driver.prepare_power_off()
    assert raised.value.address == rig.transport.address
    rig.power(False)
    with pytest.raises(InstrumentTimeout, match="not powered"):
        rig.transport.shutdown_notification()
    rig.power(True)
    assert rig.driver.smart_log().unsafe_shutdowns == 1


def test_a_refresh_ages_the_data_since_by_the_temperature_history() -> None:
    rig = make_rig(temp_c=40.0)
    interval_h = MODEL.nand.refresh_interval_powered_h
    rig.clock.sleep((interval_h - 1) * 3600)
    rig.device.sync()
    rig.dut.set_temperature(66.0)
    rig.clock.sleep(1.25 * 3600)  # the refresh runs a quarter hour before the spell ends
    rig.dut.set_temperature(40.0)
    rig.clock.sleep(0.25 * 3600)
    assert rig.device.ocp_health().refresh_count == 1
    # A quarter hour at 66 °C and one at 40 °C since; today's 40 °C alone would say half an hour.
    expected_h = 0.25 * arrhenius_af(1.1, 40.0, 66.0) + 0.25
    assert rig.device.media_state().retention_h == pytest.approx(expected_h, rel=1e-6)


def no_plp_model() -> SsdModel:
    data = yaml.safe_load((models_dir() / "enterprise_tlc_3p84tb.yaml").read_text())
    data["power"]["power_loss_protection"] = False
    data["name"] = "client_no_plp"
    return parse_ssd_model(data, "client_no_plp")


def test_background_refresh_counts_power_on_time_only() -> None:
    rig = make_rig()
    rig.workload(seq_write(CAPACITY))
    interval_h = MODEL.nand.refresh_interval_powered_h
    rig.power(False, clean=True)
    rig.clock.sleep(10 * interval_h * 3600)  # firmware cannot see time without power
    rig.power(True)
    assert rig.device.ocp_health().refresh_count == 0
    aged = rig.device.media_state().retention_h
    rig.clock.sleep(interval_h * 3600)
    assert rig.device.ocp_health().refresh_count == 1
    assert rig.device.media_state().retention_h < aged


# Faults ----------------------------------------------------------------------------------------


def test_a_dropped_drive_times_out_until_power_cycled() -> None:
    rig = make_rig()
    rig.device.drop_off()
    with pytest.raises(InstrumentTimeout, match="dropped off the bus"):
        rig.driver.identify_controller()
    rig.power(False)
    rig.power(True)
    assert rig.driver.identify_controller().serial_number == "QSIM0001"
    rig.device.drop_off(persistent=True)
    rig.power(False)
    rig.power(True)
    with pytest.raises(InstrumentTimeout):
        rig.driver.smart_log()
    rig.device.clear_faults()
    assert rig.driver.smart_log().power_cycles == 3


def test_controller_fatal_status_fails_every_command() -> None:
    rig = make_rig()
    rig.device.controller_fatal()
    completion, _ = rig.transport.admin(NvmeCommand(opcode=0x06, cdw10=1, data_len=4096))
    assert (completion.sct, completion.sc, completion.dnr) == (0, 0x06, True)  # Internal Error
    assert rig.read(0)[0].sc == 0x06
    result = SimBlockWorkload(rig.device).run(seq_write(CAPACITY))
    assert result.errors == 1 and "fatal" in (result.error_text or "")
    rig.power(False)
    rig.power(True)
    assert rig.read(0)[0].ok


def test_an_error_burst_fails_reads_of_its_range() -> None:
    rig = make_rig()
    rig.workload(seq_write(CAPACITY))
    rig.device.error_burst(1000, 16)
    assert rig.read(990, 8)[0].ok
    completion, _ = rig.read(996, 8)
    assert (completion.sct, completion.sc) == (2, 0x81)
    result = SimBlockWorkload(rig.device).run(
        WorkloadSpec(name="scan", rw="read", bs_split=((131072, 1.0),), size_bytes=CAPACITY, verify_only=True)
    )
    assert result.errors == 16 * 512 // 4096  # every codeword of the burst, read once
    assert "first at offset" in (result.error_text or "")
    rig.device.clear_faults()
    assert rig.read(996, 8)[0].ok


# The lab ---------------------------------------------------------------------------------------


def lab_with_ssd(faults: list[dict[str, object]] | None = None) -> tuple[VirtualClock, Lab]:
    clock = VirtualClock()
    config: dict[str, object] = {
        "supplies": [{"name": "psu1", "model": "E36313A"}],
        "duts": [
            {
                "slot": 1,
                "kind": "ssd",
                "serial": "QLAB0001",
                "supply": "psu1",
                "channel": 2,
                "model": "weak_media_tlc_3p84tb",
            }
        ],
    }
    if faults:
        config["faults"] = faults
    return clock, Lab(clock, 11, config)


def supply(lab: Lab, on: bool) -> None:
    for line in ("VOLT 12,(@2)", "CURR 2,(@2)", f"OUTP {'ON' if on else 'OFF'},(@2)"):
        lab.command("psu1", line)


def test_make_ssd_on_a_lab_dut_follows_its_supply_and_travels_in_the_lab_snapshot() -> None:
    clock, lab = lab_with_ssd()
    device, transport = make_ssd(lab.dut(1), clock, lab.seed)
    lab.attach_device(1, device)
    assert device.model.name == "weak_media_tlc_3p84tb"  # from the station's model key
    assert transport.address == "sim-nvme://slot1"
    driver = NvmeDriver(transport)
    with pytest.raises(InstrumentTimeout):
        driver.smart_log()
    supply(lab, True)
    smart = driver.smart_log()
    assert smart.power_cycles == 1
    assert smart.temperature_k == round(lab.dut(1).temperature_c() + 273.15)
    transport.io(NvmeCommand(opcode=0x01, nsid=1, cdw10=5, data_len=512), b"\x5a" * 512)
    clock.sleep(7200)
    state = json.loads(json.dumps(lab.snapshot()))
    # A fresh lab, restored: the drive answers exactly as the original does from here on.
    clock2, lab2 = lab_with_ssd()
    clock2.advance_to(clock.now())
    device2, transport2 = make_ssd(lab2.dut(1), clock2, lab2.seed)
    lab2.attach_device(1, device2)
    lab2.restore(state)
    for t in (clock, clock2):
        t.sleep(3600)
    pages = [NvmeDriver(tr).smart_log() for tr in (transport, transport2)]
    assert pages[0] == pages[1]
    assert pages[0].power_on_hours == 3
    reads = [
        tr.io(NvmeCommand(opcode=0x02, nsid=1, cdw10=5, data_len=512))[1] for tr in (transport, transport2)
    ]
    assert reads[0] == reads[1] == b"\x5a" * 512


def test_a_station_file_fault_reaches_the_drive_through_the_lab() -> None:
    clock, lab = lab_with_ssd(faults=[{"target": "slot1", "kind": "drop_off", "at_s": 3600.0}])
    device, transport = make_ssd(lab.dut(1), clock, lab.seed)
    lab.attach_device(1, device)
    supply(lab, True)
    driver = NvmeDriver(transport)
    assert driver.smart_log().power_cycles == 1
    clock.sleep(3600)
    with pytest.raises(InstrumentTimeout, match="dropped off the bus"):
        driver.smart_log()
    assert any(entry.get("kind") == "drop_off" for entry in lab.fault_log)


def test_injected_faults_wait_for_the_next_sync() -> None:
    rig = make_rig()
    rig.device.inject("spare_depletion", at_s=0.0)
    assert rig.device.state.retired_blocks == 0  # only queued while the lab holds its lock
    assert rig.device.state.pending_faults == [["spare_depletion", 0.0]]
    assert rig.driver.smart_log().critical_warning & CriticalWarning.READ_ONLY
    rig.device.inject("error_burst", at_s=10.0)
    state = json.loads(json.dumps(rig.device.snapshot()))  # a checkpoint syncs the drive first
    assert state["state"]["pending_faults"] == []
    assert len(state["state"]["bursts"]) == 1
    with pytest.raises(ValueError, match="unknown SSD fault kind 'melt'"):
        rig.device.inject("melt")


def test_a_checkpoint_is_a_point_of_the_temperature_history() -> None:
    clock = VirtualClock()

    class NowOnlyDut(BenchDut):
        """A DUT that knows its temperature now but not its past (no temperature_at)."""

        temperature_at = None  # type: ignore[assignment]

    dut = NowOnlyDut("QSIM0001", clock, temp_c=25.0)
    device, _ = make_ssd(dut, clock, 7)
    dut.set_power(False)
    dut.set_temperature(66.0)
    device.snapshot()  # the engine checkpoints after the chamber reached the bake temperature
    start = device.state.retention_clock_h
    clock.sleep(96 * 3600)
    device.snapshot()  # and after the hold
    dut.set_temperature(25.0)
    baked = device.state.retention_clock_h - start
    assert baked == pytest.approx(96 * arrhenius_af(1.1, 40.0, 66.0), rel=1e-9)
