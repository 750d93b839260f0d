"""Decoders of NVMe log pages beyond SMART: error, firmware slot, self-test, telemetry, sanitize, OCP.

Offsets follow the NVM Express Base Specification 2.0 (Error Information, Firmware Slot
Information, Device Self-test, Telemetry Host-Initiated and Sanitize Status log pages) and the
OCP Datacenter NVMe SSD Specification 2.0 (SMART / Health Information Extended, LID C0h). All
multi-byte fields are little-endian. Standard library only: this module also runs inside a
minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from drivers.nvme.commands import (
    ERROR_LOG_ENTRY_SIZE_BYTES,
    FIRMWARE_SLOT_LOG_SIZE_BYTES,
    OCP_SMART_EXTENDED_LOG_SIZE_BYTES,
    SANITIZE_STATUS_LOG_SIZE_BYTES,
    SELF_TEST_LOG_SIZE_BYTES,
    TELEMETRY_HEADER_SIZE_BYTES,
    describe_status,
)
from drivers.nvme.structures import StructureError

FIRMWARE_SLOTS = 7
SELF_TEST_RESULTS = 20
SELF_TEST_RESULT_SIZE_BYTES = 28
TELEMETRY_BLOCK_BYTES = 512
ESTIMATE_NOT_REPORTED = 0xFFFF_FFFF
"""Sanitize Status estimated times hold FFFFFFFFh when the controller gives no estimate."""

OCP_SMART_EXTENDED_GUID = 0xAFD514C97C6F4F9CA4F2BFEA2810AFC5
"""The Log Page GUID (bytes 511:496, little-endian) that marks a genuine OCP C0h page."""


def _check_length(name: str, data: bytes, expected: int) -> None:
    if len(data) != expected:
        raise StructureError(f"{name}: expected {expected} bytes, got {len(data)}")


def _uint(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset : offset + size], "little")


# Error Information log entry (LID 01h), Base Spec 2.0 "Error Information (Log Page Identifier 01h)".
_ERROR_ENTRY = struct.Struct("<QHHHHQIBBBBQH21xB")


@dataclass(frozen=True)
class ErrorLogEntry:
    """One 64-byte Error Information log entry (LID 01h)."""

    error_count: int
    sqid: int
    cid: int
    phase: bool
    status: int
    parameter_error_byte: int
    parameter_error_bit: int
    lba: int
    nsid: int
    vendor_specific_page: int
    transport_type: int
    csi: int
    opcode: int
    command_specific: int
    transport_specific: int
    log_page_version: int

    @property
    def valid(self) -> bool:
        """Return whether the entry holds an error (Error Count 0 marks an empty slot)."""
        return self.error_count != 0

    @property
    def sct(self) -> int:
        """Return the Status Code Type of the failed command."""
        return (self.status >> 8) & 0x7

    @property
    def sc(self) -> int:
        """Return the Status Code of the failed command."""
        return self.status & 0xFF

    @property
    def status_text(self) -> str:
        """Return the failed command's status in words."""
        return describe_status(self.sct, self.sc)

    @classmethod
    def from_bytes(cls, data: bytes) -> ErrorLogEntry:
        """Decode one 64-byte entry.

        Status Information (bytes 13:12) holds the phase tag in bit 0 and the 15-bit status
        field above it; Parameter Error Location (15:14) the byte in bits 7:0 and the bit 10:8.
        """
        _check_length("ErrorLogEntry", data, ERROR_LOG_ENTRY_SIZE_BYTES)
        (
            count,
            sqid,
            cid,
            status_info,
            location,
            lba,
            nsid,
            vs,
            trtype,
            csi,
            opcode,
            cs,
            trtype_info,
            version,
        ) = _ERROR_ENTRY.unpack(data)
        return cls(
            error_count=count,
            sqid=sqid,
            cid=cid,
            phase=bool(status_info & 1),
            status=status_info >> 1,
            parameter_error_byte=location & 0xFF,
            parameter_error_bit=(location >> 8) & 0x7,
            lba=lba,
            nsid=nsid,
            vendor_specific_page=vs,
            transport_type=trtype,
            csi=csi,
            opcode=opcode,
            command_specific=cs,
            transport_specific=trtype_info,
            log_page_version=version,
        )


def decode_error_log(data: bytes) -> list[ErrorLogEntry]:
    """Decode a whole Error Information page: every 64-byte entry, newest first."""
    if not data or len(data) % ERROR_LOG_ENTRY_SIZE_BYTES:
        raise StructureError(
            f"ErrorLog: {len(data)} bytes is not a whole number of {ERROR_LOG_ENTRY_SIZE_BYTES}-byte entries"
        )
    return [
        ErrorLogEntry.from_bytes(data[offset : offset + ERROR_LOG_ENTRY_SIZE_BYTES])
        for offset in range(0, len(data), ERROR_LOG_ENTRY_SIZE_BYTES)
    ]


@dataclass(frozen=True)
class FirmwareSlotLog:
    """The Firmware Slot Information log page (LID 03h, 512 bytes)."""

    active_slot: int
    next_active_slot: int | None
    revisions: tuple[str | None, ...]

    @property
    def active_revision(self) -> str | None:
        """Return the revision in the slot the controller runs from."""
        if not 1 <= self.active_slot <= FIRMWARE_SLOTS:
            return None
        return self.revisions[self.active_slot - 1]

    @classmethod
    def from_bytes(cls, data: bytes) -> FirmwareSlotLog:
        """Decode the page: AFI at byte 0 (active slot 2:0, next-reset slot 6:4), FRS1-7 at 8-63."""
        _check_length("FirmwareSlotLog", data, FIRMWARE_SLOT_LOG_SIZE_BYTES)
        afi = data[0]
        revisions: list[str | None] = []
        for slot in range(FIRMWARE_SLOTS):
            raw = data[8 + 8 * slot : 16 + 8 * slot]
            # An all-zero revision means the slot holds no image.
            text = raw.decode("ascii", errors="replace").strip(" \x00")
            revisions.append(text if any(raw) else None)
        next_slot = (afi >> 4) & 0x7
        return cls(
            active_slot=afi & 0x7,
            next_active_slot=next_slot or None,
            revisions=tuple(revisions),
        )


class SelfTestResult(enum.IntEnum):
    """Device Self-test Status result (bits 3:0 of a self-test result entry)."""

    COMPLETED = 0x0
    ABORTED_BY_COMMAND = 0x1
    ABORTED_BY_RESET = 0x2
    ABORTED_BY_NAMESPACE_REMOVAL = 0x3
    ABORTED_BY_FORMAT = 0x4
    FATAL_ERROR = 0x5
    FAILED_UNKNOWN_SEGMENT = 0x6
    FAILED_SEGMENT = 0x7
    ABORTED_UNKNOWN_REASON = 0x8
    ABORTED_BY_SANITIZE = 0x9
    UNUSED = 0xF


_SELF_TEST_RESULT = struct.Struct("<BBBxQIQBBH")


@dataclass(frozen=True)
class SelfTestEntry:
    """One 28-byte Self-test Result Data Structure of the Device Self-test log."""

    result: int
    code: int
    segment: int
    power_on_hours: int
    nsid: int | None
    failing_lba: int | None
    sct: int | None
    sc: int | None
    vendor_specific: int

    @property
    def passed(self) -> bool:
        """Return whether the test completed without error."""
        return self.result == SelfTestResult.COMPLETED

    @property
    def failed(self) -> bool:
        """Return whether the test found a fault (fatal error or a failed segment)."""
        return self.result in (
            SelfTestResult.FATAL_ERROR,
            SelfTestResult.FAILED_UNKNOWN_SEGMENT,
            SelfTestResult.FAILED_SEGMENT,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SelfTestEntry:
        """Decode one entry; fields its Valid Diagnostic Information bits mark invalid become None."""
        _check_length("SelfTestEntry", data, SELF_TEST_RESULT_SIZE_BYTES)
        status, segment, vdi, poh, nsid, flba, sct, sc, vendor = _SELF_TEST_RESULT.unpack(data)
        return cls(
            result=status & 0xF,
            code=status >> 4,
            segment=segment,
            power_on_hours=poh,
            nsid=nsid if vdi & 0x1 else None,
            failing_lba=flba if vdi & 0x2 else None,
            sct=sct & 0x7 if vdi & 0x4 else None,
            sc=sc if vdi & 0x8 else None,
            vendor_specific=vendor,
        )


@dataclass(frozen=True)
class SelfTestLog:
    """The Device Self-test log page (LID 06h, 564 bytes)."""

    current_operation: int
    current_completion_pct: int
    results: tuple[SelfTestEntry, ...]

    @property
    def in_progress(self) -> bool:
        """Return whether a self-test is running (current operation is not 0)."""
        return self.current_operation != 0

    @property
    def newest(self) -> SelfTestEntry | None:
        """Return the newest recorded result, or None if no test ever ran."""
        return self.results[0] if self.results else None

    @classmethod
    def from_bytes(cls, data: bytes) -> SelfTestLog:
        """Decode the page: operation (byte 0, 3:0), completion % (byte 1, 6:0), 20 results from 4.

        Unused result slots (result Fh) are dropped, so `results` is newest first.
        """
        _check_length("SelfTestLog", data, SELF_TEST_LOG_SIZE_BYTES)
        entries = []
        for index in range(SELF_TEST_RESULTS):
            offset = 4 + index * SELF_TEST_RESULT_SIZE_BYTES
            entry = SelfTestEntry.from_bytes(data[offset : offset + SELF_TEST_RESULT_SIZE_BYTES])
            if entry.result != SelfTestResult.UNUSED:
                entries.append(entry)
        return cls(
            current_operation=data[0] & 0xF,
            current_completion_pct=data[1] & 0x7F,
            results=tuple(entries),
        )


@dataclass(frozen=True)
class TelemetryHeader:
    """The 512-byte header of the Telemetry Host-Initiated log (LID 07h)."""

    log_identifier: int
    ieee_oui: int
    data_area_last_blocks: tuple[int, int, int, int]
    host_generation: int
    controller_data_available: bool
    controller_generation: int
    reason_identifier: bytes

    def size_bytes(self, data_area: int = 3) -> int:
        """Return the log's length through `data_area` (1-4): header plus its last block, 512 B each."""
        if not 1 <= data_area <= 4:
            raise ValueError(f"telemetry data area {data_area!r} is not 1-4")
        return (self.data_area_last_blocks[data_area - 1] + 1) * TELEMETRY_BLOCK_BYTES

    @classmethod
    def from_bytes(cls, data: bytes) -> TelemetryHeader:
        """Decode: LID 0, IEEE OUI 7:5, DA1-3 last block 9:8/11:10/13:12, DA4 19:16, 381-383, 511:384."""
        _check_length("TelemetryHeader", data, TELEMETRY_HEADER_SIZE_BYTES)
        da1, da2, da3 = struct.unpack_from("<HHH", data, 8)
        (da4,) = struct.unpack_from("<I", data, 16)
        return cls(
            log_identifier=data[0],
            ieee_oui=_uint(data, 5, 3),
            data_area_last_blocks=(da1, da2, da3, da4),
            host_generation=data[381],
            controller_data_available=bool(data[382] & 1),
            controller_generation=data[383],
            reason_identifier=bytes(data[384:512]),
        )


class SanitizeState(enum.IntEnum):
    """Status of the most recent sanitize operation (SSTAT bits 2:0)."""

    NEVER_SANITIZED = 0
    COMPLETED = 1
    IN_PROGRESS = 2
    FAILED = 3
    COMPLETED_NO_DEALLOCATE = 4


_SANITIZE = struct.Struct("<HHI6I")


@dataclass(frozen=True)
class SanitizeStatusLog:
    """The Sanitize Status log page (LID 81h); estimated times in seconds, None if not reported."""

    progress_fraction: float
    state: int
    overwrite_passes_completed: int
    global_data_erased: bool
    cdw10: int
    overwrite_time_s: int | None
    block_erase_time_s: int | None
    crypto_erase_time_s: int | None
    overwrite_no_dealloc_time_s: int | None
    block_erase_no_dealloc_time_s: int | None
    crypto_erase_no_dealloc_time_s: int | None

    @property
    def in_progress(self) -> bool:
        """Return whether a sanitize operation is running."""
        return self.state == SanitizeState.IN_PROGRESS

    @classmethod
    def from_bytes(cls, data: bytes) -> SanitizeStatusLog:
        """Decode: SPROG 1:0 (n/65536), SSTAT 3:2, SCDW10 7:4, six estimated times 31:8."""
        _check_length("SanitizeStatusLog", data, SANITIZE_STATUS_LOG_SIZE_BYTES)
        sprog, sstat, scdw10, *times = _SANITIZE.unpack_from(data, 0)
        estimates = [None if t == ESTIMATE_NOT_REPORTED else t for t in times]
        return cls(
            progress_fraction=sprog / 65536,
            state=sstat & 0x7,
            overwrite_passes_completed=(sstat >> 3) & 0x1F,
            global_data_erased=bool(sstat & 0x100),
            cdw10=scdw10,
            overwrite_time_s=estimates[0],
            block_erase_time_s=estimates[1],
            crypto_erase_time_s=estimates[2],
            overwrite_no_dealloc_time_s=estimates[3],
            block_erase_no_dealloc_time_s=estimates[4],
            crypto_erase_no_dealloc_time_s=estimates[5],
        )


@dataclass(frozen=True)
class OcpSmartExtendedLog:
    """The OCP SMART / Health Information Extended log page (LID C0h, 512 bytes).

    Fields through byte 215 and the version and GUID at 494-511, as the OCP Datacenter NVMe
    SSD Specification 2.0 lays them out. `raw` keeps the page for fields later OCP revisions
    add in the bytes 2.0 reserves.
    """

    physical_media_units_written: int
    physical_media_units_read: int
    bad_user_nand_blocks_raw: int
    bad_user_nand_blocks_normalized: int
    bad_system_nand_blocks_raw: int
    bad_system_nand_blocks_normalized: int
    xor_recovery_count: int
    uncorrectable_read_error_count: int
    soft_ecc_error_count: int
    end_to_end_detected_errors: int
    end_to_end_corrected_errors: int
    system_data_used_pct: int
    refresh_count: int
    max_user_data_erase_count: int
    min_user_data_erase_count: int
    thermal_throttling_event_count: int
    thermal_throttling_status: int
    dssd_spec_version: tuple[int, int, int, int]
    pcie_correctable_error_count: int
    incomplete_shutdowns: int
    free_blocks_pct: int
    capacitor_health: int
    nvme_base_errata_version: int
    nvme_command_set_errata_version: int
    unaligned_io: int
    security_version_number: int
    total_nuse: int
    plp_start_count: int
    endurance_estimate: int
    pcie_link_retraining_count: int
    power_state_change_count: int
    log_page_version: int
    log_page_guid: int
    raw: bytes

    @property
    def guid_valid(self) -> bool:
        """Return whether the page carries the OCP GUID (a drive may reuse C0h for its own page)."""
        return self.log_page_guid == OCP_SMART_EXTENDED_GUID

    @property
    def dssd_spec_version_str(self) -> str:
        """Return the OCP DSSD version the drive claims as 'major.minor.point.errata'."""
        return ".".join(str(part) for part in self.dssd_spec_version)

    @classmethod
    def from_bytes(cls, data: bytes) -> OcpSmartExtendedLog:
        """Decode the page at the OCP Datacenter NVMe SSD Specification 2.0 offsets."""
        _check_length("OcpSmartExtendedLog", data, OCP_SMART_EXTENDED_LOG_SIZE_BYTES)
        return cls(
            physical_media_units_written=_uint(data, 0, 16),
            physical_media_units_read=_uint(data, 16, 16),
            bad_user_nand_blocks_raw=_uint(data, 32, 6),
            bad_user_nand_blocks_normalized=_uint(data, 38, 2),
            bad_system_nand_blocks_raw=_uint(data, 40, 6),
            bad_system_nand_blocks_normalized=_uint(data, 46, 2),
            xor_recovery_count=_uint(data, 48, 8),
            uncorrectable_read_error_count=_uint(data, 56, 8),
            soft_ecc_error_count=_uint(data, 64, 8),
            end_to_end_detected_errors=_uint(data, 72, 4),
            end_to_end_corrected_errors=_uint(data, 76, 4),
            system_data_used_pct=data[80],
            refresh_count=_uint(data, 81, 7),
            max_user_data_erase_count=_uint(data, 88, 4),
            min_user_data_erase_count=_uint(data, 92, 4),
            thermal_throttling_event_count=data[96],
            thermal_throttling_status=data[97],
            # Major 103, minor 102:101, point 100:99, errata 98.
            dssd_spec_version=(data[103], _uint(data, 101, 2), _uint(data, 99, 2), data[98]),
            pcie_correctable_error_count=_uint(data, 104, 8),
            incomplete_shutdowns=_uint(data, 112, 4),
            free_blocks_pct=data[120],
            capacitor_health=_uint(data, 128, 2),
            nvme_base_errata_version=data[130],
            nvme_command_set_errata_version=data[131],
            unaligned_io=_uint(data, 136, 8),
            security_version_number=_uint(data, 144, 8),
            total_nuse=_uint(data, 152, 8),
            plp_start_count=_uint(data, 160, 16),
            endurance_estimate=_uint(data, 176, 16),
            pcie_link_retraining_count=_uint(data, 192, 8),
            power_state_change_count=_uint(data, 200, 8),
            log_page_version=_uint(data, 494, 2),
            log_page_guid=_uint(data, 496, 16),
            raw=bytes(data),
        )
