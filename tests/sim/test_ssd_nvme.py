"""The NVMe driver against the simulated SSD: every new page round-trips, I/O stores real data.

New log pages are decoded here with struct at the offsets of NVMe Base 2.0 (Error Information
Figure 205, Firmware Slot 206, Device Self-test 259/260, Telemetry Host-Initiated 251,
Sanitize Status 288) and the OCP Datacenter NVMe SSD Spec 2.0 (C0h), independently of the
simulator's encoders.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.errors import DeviceCommandError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import NSID_ALL, Completion, NvmeCommand
from drivers.nvme.controller import NvmeDriver
from drivers.protocols import NvmeController
from drivers.transport.nvme_passthrough import NvmePassthrough
from drivers.workload.spec import WorkloadSpec
from qualify.clock import VirtualClock
from sim_instruments.ssd import BenchDut, SimBlockWorkload, SimSsd, SimSsdTransport, make_ssd
from sim_instruments.ssd.device import build_firmware_image

CAPACITY = 3_840_755_982_336
OCP_GUID = bytes.fromhex("C5AF1028EABFF2A49C4F6F7CC914D5AF")  # AFD514C9...10AFC5, little-endian


@dataclass
class Rig:
    clock: VirtualClock
    dut: BenchDut
    device: SimSsd
    transport: SimSsdTransport
    driver: NvmeDriver

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        return self.transport.io(cmd, data)

    def write(self, slba: int, data: bytes, block_bytes: int = 512, fua: bool = False) -> Completion:
        nlb = len(data) // block_bytes
        cmd = NvmeCommand(
            opcode=0x01,
            nsid=1,
            cdw10=slba & 0xFFFFFFFF,
            cdw11=slba >> 32,
            cdw12=(nlb - 1) | (int(fua) << 30),
            data_len=len(data),
        )
        return self.io(cmd, data)[0]

    def read(self, slba: int, nlb: int, block_bytes: int = 512) -> tuple[Completion, bytes]:
        cmd = NvmeCommand(
            opcode=0x02,
            nsid=1,
            cdw10=slba & 0xFFFFFFFF,
            cdw11=slba >> 32,
            cdw12=nlb - 1,
            data_len=nlb * block_bytes,
        )
        return self.io(cmd)

    def log(self, lid: int, length: int, lsp: int = 0) -> bytes:
        return self.driver.admin_command(cmds.get_log_page(lid, NSID_ALL, length, lsp=lsp))

    def power_cycle(self, clean: bool = True) -> None:
        self.dut.set_power(False)
        self.device.power_event(False, clean=clean)
        self.clock.sleep(10)
        self.dut.set_power(True)
        self.device.power_event(True)


@pytest.fixture
def rig() -> Rig:
    clock = VirtualClock()
    dut = BenchDut("QSIM0001", clock, temp_c=40.0)
    device, transport = make_ssd(dut, clock, 7)
    return Rig(clock, dut, device, transport, NvmeDriver(transport))


def pattern(n: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


# Identify --------------------------------------------------------------------------------------


def test_the_transport_is_an_nvme_passthrough_link(rig: Rig) -> None:
    assert isinstance(rig.transport, NvmePassthrough)
    assert isinstance(rig.driver, NvmeController)
    assert rig.transport.address == "sim-nvme://slot0"


def test_identify_advertises_what_the_drive_supports(rig: Rig) -> None:
    ident = rig.driver.identify_controller()
    assert ident.serial_number == "QSIM0001"
    assert ident.model_number == "QSIM E3 U.2 3.84TB"
    assert ident.firmware_revision == "QS010101"
    assert ident.tnvmcap_bytes == CAPACITY
    assert (ident.wctemp_k, ident.cctemp_k) == (348, 358)  # 75 °C and 85 °C from the model file
    assert ident.oacs & 0b1_0110 == 0b1_0110  # Format NVM, Firmware Download/Commit, Device Self-test
    assert ident.frmw == 0x01 | (2 << 1) | 0x10  # slot 1 read-only, 2 slots, activation w/o reset
    assert ident.lpa & 0b1100 == 0b1100  # extended Get Log Page data, telemetry host-initiated
    assert ident.oncs & 0b1111 == 0b1111  # Compare, Write Uncorrectable, Dataset Mgmt, Write Zeroes
    assert ident.sanicap & 0b11 == 0b11  # crypto erase and block erase
    assert ident.elpe == 63
    _, raw = rig.transport.admin(cmds.identify_controller())
    assert struct.unpack_from("<HB", raw, 316) == (30, 1)  # EDSTT 30 min, one test at a time


def test_identify_namespace_reports_both_lba_formats_and_deallocate_behaviour(rig: Rig) -> None:
    ns = rig.driver.identify_namespace(1)
    assert [f.block_size_bytes for f in ns.lba_formats] == [512, 4096]
    assert ns.block_size_bytes == 512
    assert ns.nsze_blocks == CAPACITY // 512
    assert ns.nuse_blocks == 0
    _, raw = rig.transport.admin(cmds.identify_namespace(1))
    assert raw[33] & 0b111 == 0b001  # DLFEAT: deallocated blocks read as zeroes


# SMART and OCP C0h -----------------------------------------------------------------------------


def busy_drive(rig: Rig) -> None:
    workload = SimBlockWorkload(rig.device)
    result = workload.run(
        WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY)
    )
    rig.clock.sleep(result.runtime_s)
    result = workload.run(WorkloadSpec(name="mix", rw="randrw", io_bytes=CAPACITY // 10, size_bytes=CAPACITY))
    rig.clock.sleep(result.runtime_s)
    rig.write(5, pattern(1024))
    rig.read(5, 2)
    rig.power_cycle(clean=False)


def test_smart_page_is_fed_by_the_drive_model(rig: Rig) -> None:
    busy_drive(rig)
    smart = rig.driver.smart_log()
    health = rig.device.health()
    assert smart.temperature_k == health.temperature_k == 313
    assert smart.data_units_written == health.data_units_written > CAPACITY // 512_000
    assert smart.data_units_read == health.data_units_read > 0
    assert smart.host_write_commands == health.host_write_commands
    assert smart.host_read_commands == health.host_read_commands
    assert smart.power_cycles == 2
    assert smart.unsafe_shutdowns == 1
    assert smart.controller_busy_time_min == health.controller_busy_time_min > 0
    assert smart.percentage_used_pct == health.percentage_used_pct
    assert smart.available_spare_pct == 100
    assert smart.available_spare_threshold_pct == 10
    assert smart.temperature_sensors_k[:2] == (310, 318)


def decode_ocp(page: bytes) -> dict[str, Any]:
    """Decode the OCP SMART extended log (C0h) at the OCP 2.0 offsets."""
    return {
        "physical_media_units_written": int.from_bytes(page[0:16], "little"),
        "physical_media_units_read": int.from_bytes(page[16:32], "little"),
        "bad_user_nand_blocks_raw": int.from_bytes(page[32:38], "little"),
        "bad_user_nand_blocks_normalized": struct.unpack_from("<H", page, 38)[0],
        "bad_system_nand_blocks_raw": int.from_bytes(page[40:46], "little"),
        "bad_system_nand_blocks_normalized": struct.unpack_from("<H", page, 46)[0],
        "xor_recovery_count": struct.unpack_from("<Q", page, 48)[0],
        "uncorrectable_read_errors": struct.unpack_from("<Q", page, 56)[0],
        "soft_ecc_errors": struct.unpack_from("<Q", page, 64)[0],
        "end_to_end_detected_errors": struct.unpack_from("<I", page, 72)[0],
        "end_to_end_corrected_errors": struct.unpack_from("<I", page, 76)[0],
        "system_data_used_pct": page[80],
        "refresh_count": int.from_bytes(page[81:88], "little"),
        "user_data_erase_count_max": struct.unpack_from("<I", page, 88)[0],
        "user_data_erase_count_min": struct.unpack_from("<I", page, 92)[0],
        "thermal_throttling_events": page[96],
        "thermal_throttling_status": page[97],
        "dssd_version": (
            page[103],
            struct.unpack_from("<H", page, 101)[0],
            struct.unpack_from("<H", page, 99)[0],
            page[98],
        ),
        "pcie_correctable_errors": struct.unpack_from("<Q", page, 104)[0],
        "incomplete_shutdowns": struct.unpack_from("<I", page, 112)[0],
        "free_blocks_pct": page[120],
        "capacitor_health_pct": struct.unpack_from("<H", page, 128)[0],
        "nvme_errata_version": page[130],
        "unaligned_io": struct.unpack_from("<Q", page, 136)[0],
        "security_version": struct.unpack_from("<Q", page, 144)[0],
        "nuse_blocks": struct.unpack_from("<Q", page, 152)[0],
        "plp_start_count": int.from_bytes(page[160:176], "little"),
        "endurance_estimate_bytes": int.from_bytes(page[176:192], "little"),
        "pcie_link_retraining_count": struct.unpack_from("<Q", page, 192)[0],
        "power_state_change_count": struct.unpack_from("<Q", page, 200)[0],
        "log_page_version": struct.unpack_from("<H", page, 494)[0],
    }


def test_ocp_c0_page_round_trips_every_field(rig: Rig) -> None:
    busy_drive(rig)
    page = rig.log(0xC0, 512)
    assert len(page) == 512
    assert page[496:512] == OCP_GUID
    assert page[208:494] == bytes(494 - 208)  # reserved in OCP 2.0
    decoded = decode_ocp(page)
    expected = vars(rig.device.ocp_health())
    assert decoded == expected
    assert decoded["log_page_version"] == 0x0003
    assert decoded["dssd_version"] == (2, 0, 0, 0)
    assert decoded["physical_media_units_written"] == round(rig.device.state.nand_write_bytes)
    assert decoded["physical_media_units_written"] > CAPACITY  # host writes times the WAF
    assert decoded["plp_start_count"] == 1  # the unsafe power-off: the capacitors flushed the cache
    assert decoded["capacitor_health_pct"] == 100
    assert decoded["user_data_erase_count_max"] >= decoded["user_data_erase_count_min"]


def test_ocp_page_reads_in_pieces(rig: Rig) -> None:
    whole = rig.log(0xC0, 512)
    tail = rig.driver.admin_command(cmds.get_log_page(0xC0, NSID_ALL, 16, offset_bytes=496))
    assert tail == whole[496:]


# Error Information -----------------------------------------------------------------------------

_ERROR_ENTRY = struct.Struct("<QHHHHQIBB2xQH22x")


def decode_errors(page: bytes) -> list[dict[str, int]]:
    entries = []
    for offset in range(0, len(page), 64):
        count, sqid, cid, status, pel, lba, nsid, _vs, _trtype, _cs, _tts = _ERROR_ENTRY.unpack_from(
            page, offset
        )
        if count:
            entries.append(
                {
                    "pel": pel,
                    "error_count": count,
                    "sqid": sqid,
                    "cid": cid,
                    "status": status >> 1,
                    "lba": lba,
                    "nsid": nsid,
                }
            )
    return entries


def test_error_log_lists_media_and_range_errors_newest_first(rig: Rig) -> None:
    rig.write(100, pattern(512))
    rig.device.inject_bit_errors(100, 5000)
    completion, _ = rig.read(100, 1)
    assert (completion.sct, completion.sc) == (2, 0x81)
    nsze = CAPACITY // 512
    bad = NvmeCommand(opcode=0x02, nsid=1, cdw10=nsze & 0xFFFFFFFF, cdw11=nsze >> 32, data_len=512, cid=0x77)
    completion, _ = rig.io(bad)
    assert (completion.sct, completion.sc) == (0, 0x80)
    entries = decode_errors(rig.log(0x01, 4096))
    assert [e["error_count"] for e in entries] == [2, 1]
    assert entries[0] == {
        "pel": 0xFFFF,
        "error_count": 2,
        "sqid": 1,
        "cid": 0x77,
        "status": 0x4080,
        "lba": CAPACITY // 512,
        "nsid": 1,
    }
    assert entries[1]["status"] == 0x0281 and entries[1]["lba"] == 100
    assert rig.device.error_log()[0].cid == 0x77
    smart = rig.driver.smart_log()
    assert smart.num_err_log_entries == 2
    assert smart.media_errors == 1


def test_probing_errors_stay_out_of_the_error_log(rig: Rig) -> None:
    with pytest.raises(DeviceCommandError):
        rig.driver.admin_command(cmds.get_log_page(0x0D, NSID_ALL, 512))
    assert rig.driver.smart_log().num_err_log_entries == 0


# Firmware --------------------------------------------------------------------------------------


def download(rig: Rig, image: bytes, chunk: int = 4096) -> None:
    for offset in range(0, len(image), chunk):
        piece = image[offset : offset + chunk]
        cmd = NvmeCommand(opcode=0x11, cdw10=len(piece) // 4 - 1, cdw11=offset // 4, data_len=len(piece))
        rig.driver.admin_command(cmd, piece)


def commit(rig: Rig, slot: int, action: int) -> Completion:
    return rig.transport.admin(NvmeCommand(opcode=0x10, cdw10=slot | (action << 3)))[0]


def firmware_log(rig: Rig) -> tuple[int, int, list[str]]:
    page = rig.log(0x03, 512)
    revisions = [page[8 + 8 * i : 16 + 8 * i].decode("ascii").strip(" \x00") for i in range(7)]
    return page[0] & 0b111, (page[0] >> 4) & 0b111, revisions


def test_firmware_download_and_commit_activate_at_the_next_reset(rig: Rig) -> None:
    assert firmware_log(rig) == (1, 0, ["QS010101", "", "", "", "", "", ""])
    download(rig, build_firmware_image("QS020202", payload_bytes=8192 - 16))
    assert commit(rig, 2, 1).ok
    assert firmware_log(rig) == (1, 2, ["QS010101", "QS020202", "", "", "", "", ""])
    assert rig.driver.identify_controller().firmware_revision == "QS010101"
    rig.power_cycle()
    assert firmware_log(rig)[:2] == (2, 0)
    assert rig.driver.identify_controller().firmware_revision == "QS020202"
    assert rig.device.firmware_slots().active_slot == 2


def test_firmware_commit_can_activate_immediately(rig: Rig) -> None:
    download(rig, build_firmware_image("QS030303"))
    assert commit(rig, 2, 3).ok
    assert rig.driver.identify_controller().firmware_revision == "QS030303"


def test_firmware_commit_refuses_bad_images_and_the_read_only_slot(rig: Rig) -> None:
    download(rig, b"NOTFIRMWARE!" * 100)
    completion = commit(rig, 2, 1)
    assert (completion.sct, completion.sc) == (1, 0x07)  # Invalid Firmware Image
    download(rig, build_firmware_image("QS040404"))
    completion = commit(rig, 1, 1)
    assert (completion.sct, completion.sc) == (1, 0x06)  # Invalid Firmware Slot: slot 1 is read-only
    completion = commit(rig, 5, 1)
    assert (completion.sct, completion.sc) == (1, 0x06)


# Device self-test ------------------------------------------------------------------------------


def self_test_log(rig: Rig) -> tuple[int, int, list[dict[str, int]]]:
    page = rig.log(0x06, 564)
    results = []
    for index in range(20):
        entry = page[4 + 28 * index : 32 + 28 * index]
        if entry[0] & 0xF == 0xF:
            continue
        poh, nsid, flba, sct, sc = struct.unpack_from("<QIQBB", entry, 4)
        results.append(
            {
                "code": entry[0] >> 4,
                "result": entry[0] & 0xF,
                "segment": entry[1],
                "vdi": entry[2],
                "poh": poh,
            }
            | {"nsid": nsid, "flba": flba, "sct": sct, "sc": sc}
        )
    return page[0], page[1], results


def start_self_test(rig: Rig, code: int) -> Completion:
    return rig.transport.admin(NvmeCommand(opcode=0x14, nsid=NSID_ALL, cdw10=code))[0]


def test_short_self_test_completes_in_device_time(rig: Rig) -> None:
    rig.clock.sleep(3 * 3600)
    assert start_self_test(rig, 1).ok
    rig.clock.sleep(45)
    operation, pct, results = self_test_log(rig)
    assert (operation, pct, results) == (1, 50, [])
    busy = start_self_test(rig, 2)
    assert (busy.sct, busy.sc) == (1, 0x1D)  # Device Self-test In Progress
    rig.clock.sleep(45)
    operation, _, results = self_test_log(rig)
    assert operation == 0
    assert results == [
        {"code": 1, "result": 0, "segment": 0, "vdi": 0, "poh": 3, "nsid": 0, "flba": 0, "sct": 0, "sc": 0}
    ]


def test_extended_self_test_finds_a_bad_range(rig: Rig) -> None:
    rig.device.error_burst(123_456, 64)
    assert start_self_test(rig, 2).ok
    rig.clock.sleep(29 * 60)
    assert self_test_log(rig)[0] == 2
    rig.clock.sleep(60)
    _, _, results = self_test_log(rig)
    assert results[0] | {"poh": 0} == {
        "code": 2,
        "result": 7,  # completed with a failed segment
        "segment": 2,
        "vdi": 0b1111,
        "poh": 0,
        "nsid": 1,
        "flba": 123_456,
        "sct": 2,
        "sc": 0x81,
    }


def test_self_test_abort_and_power_loss_are_recorded(rig: Rig) -> None:
    assert start_self_test(rig, 2).ok
    assert start_self_test(rig, 0xF).ok
    assert start_self_test(rig, 1).ok
    rig.power_cycle()
    _, _, results = self_test_log(rig)
    assert [(r["code"], r["result"]) for r in results] == [(1, 2), (2, 1)]  # reset, then command


# Telemetry and sanitize ------------------------------------------------------------------------


def test_telemetry_host_initiated_header_and_generation(rig: Rig) -> None:
    first = rig.log(0x07, 1024, lsp=1)
    assert first[0] == 0x07
    assert int.from_bytes(first[5:8], "little") == 0x525400
    dalb1, dalb2, dalb3 = struct.unpack_from("<HHH", first, 8)
    assert (dalb1, dalb2, dalb3) == (1, 1, 1)
    assert struct.unpack_from("<I", first, 16)[0] == 1
    assert first[381] == 1  # host-initiated data generation number
    assert first[512:520] == b"QSIMTLM1"
    again = rig.log(0x07, 1024)
    assert again == first  # no new capture without LSP bit 0
    assert rig.log(0x07, 512, lsp=1)[381] == 2


def sanitize_log(rig: Rig) -> tuple[int, int, int, int, int, int]:
    sprog, sstat, scdw10, _overwrite, block_s, crypto_s = struct.unpack_from("<HHIIII", rig.log(0x81, 512), 0)
    return sprog, sstat & 0b111, (sstat >> 8) & 1, scdw10, block_s, crypto_s


def test_block_erase_sanitize_runs_in_device_time_and_erases(rig: Rig) -> None:
    rig.write(7, pattern(512))
    erases = rig.device.ocp_health().user_data_erase_count_max
    assert sanitize_log(rig) == (0xFFFF, 0, 0, 0, 120, 2)
    assert rig.transport.admin(NvmeCommand(opcode=0x84, cdw10=0x2))[0].ok
    rig.clock.sleep(30)
    sprog, status, _, _, _, _ = sanitize_log(rig)
    assert status == 2 and sprog == 65536 // 4
    completion, _ = rig.read(7, 1)
    assert (completion.sct, completion.sc) == (0, 0x1D)  # Sanitize In Progress
    rig.clock.sleep(90)
    assert sanitize_log(rig)[:4] == (0xFFFF, 1, 1, 0x2)  # completed, global data erased, its CDW10
    completion, data = rig.read(7, 1)
    assert completion.ok and data == bytes(512)
    assert rig.device.ocp_health().user_data_erase_count_max == erases + 1
    assert rig.write(7, pattern(512)).ok
    assert sanitize_log(rig)[2] == 0  # written again: no longer globally erased


def test_overwrite_sanitize_is_not_supported(rig: Rig) -> None:
    completion, _ = rig.transport.admin(NvmeCommand(opcode=0x84, cdw10=0x3))
    assert (completion.sct, completion.sc) == (0, 0x02)


# Format NVM ------------------------------------------------------------------------------------


def test_format_nvm_switches_lba_format_and_discards_data(rig: Rig) -> None:
    rig.write(0, pattern(4096))
    assert rig.transport.admin(NvmeCommand(opcode=0x80, nsid=1, cdw10=1))[0].ok
    ns = rig.driver.identify_namespace(1)
    assert ns.block_size_bytes == 4096 and ns.nsze_blocks == CAPACITY // 4096
    completion, data = rig.read(0, 1, block_bytes=4096)
    assert completion.ok and data == bytes(4096)
    assert rig.write(3, pattern(8192), block_bytes=4096).ok
    assert rig.read(3, 2, block_bytes=4096)[1] == pattern(8192)


def test_format_nvm_refuses_a_missing_format_or_metadata(rig: Rig) -> None:
    for cdw10 in (2, 0x10 | 1):
        completion, _ = rig.transport.admin(NvmeCommand(opcode=0x80, nsid=1, cdw10=cdw10))
        assert (completion.sct, completion.sc) == (1, 0x0A)  # Invalid Format


# I/O -------------------------------------------------------------------------------------------


def test_write_then_read_returns_the_data(rig: Rig) -> None:
    data = pattern(8 * 512, salt=3)
    assert rig.write(1_000_000, data).ok
    completion, back = rig.read(1_000_000, 8)
    assert completion.ok and back == data
    completion, part = rig.read(1_000_003, 2)
    assert part == data[3 * 512 : 5 * 512]
    completion, unwritten = rig.read(50, 1)
    assert completion.ok and unwritten == bytes(512)
    high = CAPACITY // 512 - 1
    assert rig.write(high, pattern(512, salt=9)).ok  # the top LBA needs CDW11 too
    assert rig.read(high, 1)[1] == pattern(512, salt=9)


def test_trim_then_read_returns_zeroes(rig: Rig) -> None:
    rig.write(10, pattern(4 * 512))
    ranges = struct.pack("<IIQ", 0, 2, 11) + struct.pack("<IIQ", 0, 1, 13)
    completion, _ = rig.io(NvmeCommand(opcode=0x09, nsid=1, cdw10=1, cdw11=1 << 2, data_len=32), ranges)
    assert completion.ok
    _, data = rig.read(10, 4)
    assert data == pattern(512) + bytes(3 * 512)


def test_write_zeroes_and_compare(rig: Rig) -> None:
    rig.write(20, pattern(2 * 512))
    compare = NvmeCommand(opcode=0x05, nsid=1, cdw10=20, cdw12=1, data_len=1024)
    assert rig.io(compare, pattern(2 * 512))[0].ok
    completion, _ = rig.io(compare, bytes(1024))
    assert (completion.sct, completion.sc) == (2, 0x85)  # Compare Failure
    assert rig.io(NvmeCommand(opcode=0x08, nsid=1, cdw10=20, cdw12=1 | (1 << 25)))[0].ok
    assert rig.read(20, 2)[1] == bytes(1024)


def test_write_uncorrectable_fails_reads_until_rewritten(rig: Rig) -> None:
    rig.write(30, pattern(512))
    assert rig.io(NvmeCommand(opcode=0x04, nsid=1, cdw10=30, cdw12=0))[0].ok
    completion, _ = rig.read(30, 1)
    assert (completion.sct, completion.sc) == (2, 0x81)
    rig.write(30, pattern(512, salt=1))
    assert rig.read(30, 1)[1] == pattern(512, salt=1)


def test_planted_bit_errors_corrected_uncorrectable_or_silent(rig: Rig) -> None:
    data = pattern(512, salt=5)
    for lba in (40, 41, 42):
        rig.write(lba, data)
    t_bits = rig.device.model.ecc.correctable_bits
    soft_before = rig.device.state.soft_ecc_errors
    rig.device.inject_bit_errors(40, t_bits)  # within t: corrected
    rig.device.inject_bit_errors(41, t_bits + 1)  # beyond t: a media error
    rig.device.inject_bit_errors(42, t_bits + 1, silent=True)  # beyond t, miscorrected
    completion, back = rig.read(40, 1)
    assert completion.ok and back == data
    assert rig.device.state.soft_ecc_errors == soft_before + 1
    completion, _ = rig.read(41, 1)
    assert (completion.sct, completion.sc, completion.dnr) == (2, 0x81, False)
    completion, back = rig.read(42, 1)
    assert completion.ok and back != data  # a verify pass finds the corruption
    flipped = sum(bin(a ^ b).count("1") for a, b in zip(back, data, strict=True))
    assert flipped == t_bits + 1 or flipped == 512 * 8
    smart = rig.driver.smart_log()
    assert smart.media_errors == 1
    assert rig.device.ocp_health().uncorrectable_read_errors == 1


def test_io_rejects_bad_ranges_sizes_and_namespaces(rig: Rig) -> None:
    too_big = NvmeCommand(opcode=0x02, nsid=1, cdw12=511, data_len=512 * 512)  # 256 KiB > MDTS 128 KiB
    assert (rig.io(too_big)[0].sc, rig.io(too_big)[0].sct) == (0x02, 0)
    wrong_ns = NvmeCommand(opcode=0x02, nsid=2, data_len=512)
    assert rig.io(wrong_ns)[0].sc == 0x0B
    assert rig.io(NvmeCommand(opcode=0x00, nsid=1))[0].ok  # flush
    assert rig.io(NvmeCommand(opcode=0x7E, nsid=1))[0].sc == 0x01


def test_volatile_write_cache_feature(rig: Rig) -> None:
    assert rig.driver.admin_result(cmds.get_features(0x06)) == 1
    rig.driver.admin_result(cmds.set_features(0x06, cdw11=0))
    assert rig.driver.admin_result(cmds.get_features(0x06)) == 0
    assert rig.device.write_cache_enabled() is False


def test_nuse_counts_written_blocks(rig: Rig) -> None:
    rig.write(0, pattern(4 * 512))
    assert rig.driver.identify_namespace(1).nuse_blocks == 4
