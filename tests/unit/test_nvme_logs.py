"""Log page decoders against byte fixtures written here with struct at the spec's offsets.

Error Information (LID 01h), Firmware Slot Information (03h), Device Self-test (06h),
Telemetry Host-Initiated header (07h) and Sanitize Status (81h) follow the NVM Express Base
Specification 2.0; SMART / Health Information Extended (C0h) the OCP Datacenter NVMe SSD
Specification 2.0. No fixture uses a decoder's own layout constants.
"""

from __future__ import annotations

import struct

import pytest

from drivers.nvme.logs import (
    OCP_SMART_EXTENDED_GUID,
    ErrorLogEntry,
    FirmwareSlotLog,
    OcpSmartExtendedLog,
    SanitizeState,
    SanitizeStatusLog,
    SelfTestLog,
    SelfTestResult,
    TelemetryHeader,
    decode_error_log,
)
from drivers.nvme.structures import StructureError


def error_entry(count: int, status_word: int, lba: int = 0) -> bytes:
    entry = bytearray(64)
    struct.pack_into("<Q", entry, 0, count)  # Error Count
    struct.pack_into("<H", entry, 8, 3)  # Submission Queue ID
    struct.pack_into("<H", entry, 10, 0xBEEF)  # Command ID
    struct.pack_into("<H", entry, 12, status_word)  # Status Information: P bit 0, status 15:1
    struct.pack_into("<H", entry, 14, (5 << 8) | 44)  # Parameter Error Location: bit 10:8, byte 7:0
    struct.pack_into("<Q", entry, 16, lba)  # LBA
    struct.pack_into("<I", entry, 24, 1)  # Namespace
    entry[28] = 0x02  # Vendor Specific Information Available (log page 02h)
    entry[29] = 0x01  # Transport Type (PCIe)
    entry[30] = 0x00  # Command Set Indicator
    entry[31] = 0x02  # Opcode (Read)
    struct.pack_into("<Q", entry, 32, 0x1122334455667788)  # Command Specific Information
    struct.pack_into("<H", entry, 40, 0xABCD)  # Transport Type Specific Information
    entry[63] = 1  # Log Page Version
    return bytes(entry)


def test_error_entry_decodes_every_field() -> None:
    # Unrecovered Read Error: SCT 2, SC 81h, DNR; phase tag 1.
    status = 0x81 | (2 << 8) | (1 << 14)
    entry = ErrorLogEntry.from_bytes(error_entry(7, (status << 1) | 1, lba=0x1_0000_0042))
    assert entry.valid
    assert (entry.error_count, entry.sqid, entry.cid) == (7, 3, 0xBEEF)
    assert entry.phase is True
    assert entry.status == status
    assert (entry.sct, entry.sc) == (2, 0x81)
    assert entry.status_text == "Unrecovered Read Error (SCT 2, SC 81h)"
    assert (entry.parameter_error_byte, entry.parameter_error_bit) == (44, 5)
    assert entry.lba == 0x1_0000_0042
    assert entry.nsid == 1
    assert (entry.vendor_specific_page, entry.transport_type, entry.csi, entry.opcode) == (2, 1, 0, 2)
    assert entry.command_specific == 0x1122334455667788
    assert entry.transport_specific == 0xABCD
    assert entry.log_page_version == 1


def test_error_log_splits_entries_and_keeps_empty_slots_for_the_caller() -> None:
    page = error_entry(9, 0x0004) + bytes(64) + error_entry(8, 0x0002)
    entries = decode_error_log(page)
    assert [e.error_count for e in entries] == [9, 0, 8]
    assert [e.valid for e in entries] == [True, False, True]


@pytest.mark.parametrize("length", [0, 63, 65, 100])
def test_error_log_rejects_partial_entries(length: int) -> None:
    with pytest.raises(StructureError, match="64-byte entries"):
        decode_error_log(bytes(length))


def test_firmware_slot_log_reads_afi_and_revisions() -> None:
    page = bytearray(512)
    page[0] = (3 << 4) | 2  # AFI: next reset activates slot 3, slot 2 active
    page[8:16] = b"FW100   "  # FRS1
    page[16:24] = b"FW200\x00\x00\x00"  # FRS2, NUL padded
    page[24:32] = b"FW300   "  # FRS3
    log = FirmwareSlotLog.from_bytes(bytes(page))
    assert log.active_slot == 2
    assert log.next_active_slot == 3
    assert log.revisions == ("FW100", "FW200", "FW300", None, None, None, None)
    assert log.active_revision == "FW200"


def test_firmware_slot_log_without_pending_activation() -> None:
    page = bytearray(512)
    page[0] = 1
    page[8:16] = b"1.0     "
    log = FirmwareSlotLog.from_bytes(bytes(page))
    assert (log.active_slot, log.next_active_slot, log.active_revision) == (1, None, "1.0")


def self_test_result(status: int, vdi: int, poh: int, nsid: int, flba: int, sct: int, sc: int) -> bytes:
    entry = bytearray(28)
    entry[0] = status  # Device Self-test Status: code 7:4, result 3:0
    entry[1] = 3  # Segment Number
    entry[2] = vdi  # Valid Diagnostic Information
    struct.pack_into("<Q", entry, 4, poh)  # Power On Hours
    struct.pack_into("<I", entry, 12, nsid)  # Namespace Identifier
    struct.pack_into("<Q", entry, 16, flba)  # Failing LBA
    entry[24] = sct  # Status Code Type
    entry[25] = sc  # Status Code
    struct.pack_into("<H", entry, 26, 0x55AA)  # Vendor Specific
    return bytes(entry)


def test_self_test_log_decodes_progress_and_results_newest_first() -> None:
    page = bytearray(564)
    page[0] = 0x2  # an extended test runs
    page[1] = 42  # 42 % done
    failed = self_test_result((0x2 << 4) | 0x7, 0b1111, 1234, 1, 0xDEAD, 2, 0x81)
    passed = self_test_result((0x1 << 4) | 0x0, 0b0000, 1000, 9, 9, 9, 9)
    page[4:32] = failed
    page[32:60] = passed
    for index in range(2, 20):  # the rest unused: result Fh
        page[4 + 28 * index] = 0x0F
    log = SelfTestLog.from_bytes(bytes(page))
    assert log.in_progress and log.current_operation == 2 and log.current_completion_pct == 42
    assert len(log.results) == 2
    newest = log.newest
    assert newest is not None
    assert newest.result == SelfTestResult.FAILED_SEGMENT and newest.code == 2 and newest.failed
    assert (newest.segment, newest.power_on_hours, newest.nsid, newest.failing_lba) == (3, 1234, 1, 0xDEAD)
    assert (newest.sct, newest.sc, newest.vendor_specific) == (2, 0x81, 0x55AA)
    older = log.results[1]
    assert older.passed and older.code == 1
    # VDI 0: the diagnostic fields are not valid, whatever bytes they hold.
    assert (older.nsid, older.failing_lba, older.sct, older.sc) == (None, None, None, None)


def test_self_test_log_with_no_tests_run() -> None:
    page = bytearray(564)
    for index in range(20):
        page[4 + 28 * index] = 0x0F
    log = SelfTestLog.from_bytes(bytes(page))
    assert not log.in_progress and log.results == () and log.newest is None


def test_telemetry_header_decodes_areas_and_generations() -> None:
    page = bytearray(512)
    page[0] = 0x07  # Log Identifier
    page[5:8] = (0x525400).to_bytes(3, "little")  # IEEE OUI
    struct.pack_into("<HHH", page, 8, 7, 15, 31)  # Data Area 1-3 Last Block
    struct.pack_into("<I", page, 16, 0x12345)  # Data Area 4 Last Block
    page[381] = 4  # Host-Initiated Data Generation Number
    page[382] = 1  # Controller-Initiated Data Available
    page[383] = 9  # Controller-Initiated Data Generation Number
    page[384:512] = bytes(range(128))  # Reason Identifier
    header = TelemetryHeader.from_bytes(bytes(page))
    assert header.log_identifier == 0x07
    assert header.ieee_oui == 0x525400
    assert header.data_area_last_blocks == (7, 15, 31, 0x12345)
    assert (header.host_generation, header.controller_data_available, header.controller_generation) == (
        4,
        True,
        9,
    )
    assert header.reason_identifier == bytes(range(128))
    assert header.size_bytes(1) == 8 * 512
    assert header.size_bytes() == 32 * 512
    with pytest.raises(ValueError, match="1-4"):
        header.size_bytes(5)


def test_sanitize_status_decodes_progress_state_and_estimates() -> None:
    page = bytearray(512)
    struct.pack_into("<H", page, 0, 0x8000)  # SPROG: half done
    struct.pack_into("<H", page, 2, 2 | (3 << 3) | (1 << 8))  # SSTAT: in progress, 3 passes, GDE
    struct.pack_into("<I", page, 4, 0x0000_0032)  # SCDW10 of the sanitize command
    struct.pack_into("<6I", page, 8, 600, 0xFFFFFFFF, 30, 601, 0xFFFFFFFF, 31)
    log = SanitizeStatusLog.from_bytes(bytes(page))
    assert log.progress_fraction == 0.5
    assert log.state == SanitizeState.IN_PROGRESS and log.in_progress
    assert log.overwrite_passes_completed == 3
    assert log.global_data_erased is True
    assert log.cdw10 == 0x32
    assert (log.overwrite_time_s, log.block_erase_time_s, log.crypto_erase_time_s) == (600, None, 30)
    assert (
        log.overwrite_no_dealloc_time_s,
        log.block_erase_no_dealloc_time_s,
        log.crypto_erase_no_dealloc_time_s,
    ) == (601, None, 31)


def _u128(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<QQ", buf, offset, value & (2**64 - 1), value >> 64)


def ocp_fixture() -> bytes:
    page = bytearray(512)
    _u128(page, 0, 2**70 + 1)  # Physical Media Units Written
    _u128(page, 16, 2**66 + 2)  # Physical Media Units Read
    page[32:38] = (0x0000_0102_0304).to_bytes(6, "little")  # Bad User NAND Blocks raw
    struct.pack_into("<H", page, 38, 98)  # ... normalized
    page[40:46] = (0x0A0B).to_bytes(6, "little")  # Bad System NAND Blocks raw
    struct.pack_into("<H", page, 46, 97)  # ... normalized
    struct.pack_into("<Q", page, 48, 11)  # XOR Recovery Count
    struct.pack_into("<Q", page, 56, 12)  # Uncorrectable Read Error Count
    struct.pack_into("<Q", page, 64, 13)  # Soft ECC Error Count
    struct.pack_into("<II", page, 72, 14, 15)  # End to End Correction Counts: detected, corrected
    page[80] = 3  # System Data % Used
    page[81:88] = (0x01_0203_0405_0607).to_bytes(7, "little")  # Refresh Counts
    struct.pack_into("<II", page, 88, 3000, 2000)  # User Data Erase Counts: max, min
    page[96] = 4  # Thermal Throttling event count
    page[97] = 1  # ... current status
    page[98] = 1  # DSSD errata version
    struct.pack_into("<H", page, 99, 0)  # DSSD point version
    struct.pack_into("<H", page, 101, 0)  # DSSD minor version
    page[103] = 2  # DSSD major version
    struct.pack_into("<Q", page, 104, 16)  # PCIe Correctable Error Count
    struct.pack_into("<I", page, 112, 17)  # Incomplete Shutdowns
    page[120] = 88  # % Free Blocks
    struct.pack_into("<H", page, 128, 100)  # Capacitor Health
    page[130] = ord("c")  # NVMe Base Errata Version
    page[131] = ord("b")  # NVMe Command Set Errata Version
    struct.pack_into("<Q", page, 136, 18)  # Unaligned I/O
    struct.pack_into("<Q", page, 144, 19)  # Security Version Number
    struct.pack_into("<Q", page, 152, 20)  # Total NUSE
    _u128(page, 160, 21)  # PLP Start Count
    _u128(page, 176, 2**65)  # Endurance Estimate
    struct.pack_into("<Q", page, 192, 22)  # PCIe Link Retraining Count
    struct.pack_into("<Q", page, 200, 23)  # Power State Change Count
    struct.pack_into("<H", page, 494, 3)  # Log Page Version
    # Log Page GUID AFD514C97C6F4F9CA4F2BFEA2810AFC5, least significant byte first.
    page[496:512] = bytes.fromhex("C5AF1028EABFF2A49C4F6F7CC914D5AF")
    return bytes(page)


def test_ocp_smart_extended_log_decodes_every_2_0_field() -> None:
    log = OcpSmartExtendedLog.from_bytes(ocp_fixture())
    assert log.physical_media_units_written == 2**70 + 1
    assert log.physical_media_units_read == 2**66 + 2
    assert (log.bad_user_nand_blocks_raw, log.bad_user_nand_blocks_normalized) == (0x0102_0304, 98)
    assert (log.bad_system_nand_blocks_raw, log.bad_system_nand_blocks_normalized) == (0x0A0B, 97)
    assert (log.xor_recovery_count, log.uncorrectable_read_error_count, log.soft_ecc_error_count) == (
        11,
        12,
        13,
    )
    assert (log.end_to_end_detected_errors, log.end_to_end_corrected_errors) == (14, 15)
    assert log.system_data_used_pct == 3
    assert log.refresh_count == 0x01_0203_0405_0607
    assert (log.max_user_data_erase_count, log.min_user_data_erase_count) == (3000, 2000)
    assert (log.thermal_throttling_event_count, log.thermal_throttling_status) == (4, 1)
    assert log.dssd_spec_version == (2, 0, 0, 1)
    assert log.dssd_spec_version_str == "2.0.0.1"
    assert log.pcie_correctable_error_count == 16
    assert log.incomplete_shutdowns == 17
    assert log.free_blocks_pct == 88
    assert log.capacitor_health == 100
    assert (log.nvme_base_errata_version, log.nvme_command_set_errata_version) == (ord("c"), ord("b"))
    assert (log.unaligned_io, log.security_version_number, log.total_nuse) == (18, 19, 20)
    assert log.plp_start_count == 21
    assert log.endurance_estimate == 2**65
    assert (log.pcie_link_retraining_count, log.power_state_change_count) == (22, 23)
    assert log.log_page_version == 3
    assert log.log_page_guid == OCP_SMART_EXTENDED_GUID == 0xAFD514C97C6F4F9CA4F2BFEA2810AFC5
    assert log.guid_valid
    assert log.raw == ocp_fixture()


def test_ocp_page_without_the_guid_is_flagged() -> None:
    page = bytearray(ocp_fixture())
    page[496:512] = bytes(16)
    assert not OcpSmartExtendedLog.from_bytes(bytes(page)).guid_valid


@pytest.mark.parametrize(
    ("decoder", "size"),
    [
        (FirmwareSlotLog.from_bytes, 512),
        (SelfTestLog.from_bytes, 564),
        (TelemetryHeader.from_bytes, 512),
        (SanitizeStatusLog.from_bytes, 512),
        (OcpSmartExtendedLog.from_bytes, 512),
        (ErrorLogEntry.from_bytes, 64),
    ],
)
def test_decoders_reject_wrong_sizes(decoder: object, size: int) -> None:
    assert callable(decoder)
    with pytest.raises(StructureError, match=f"expected {size} bytes"):
        decoder(bytes(size - 4))
