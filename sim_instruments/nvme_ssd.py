"""A simulated NVMe SSD controller that answers raw 64-byte commands, and its passthrough link.

The controller parses submission queue entries and builds completion entries and data pages
itself, at the offsets of the NVM Express Base Specification 2.0, the NVM Command Set
Specification 1.0 and the OCP Datacenter NVMe SSD Specification 2.0, without the driver's
encoders: a layout mistake on either side then shows up as a disagreement in tests instead of
cancelling out.

Alone, a controller answers Identify, SMART and the temperature thresholds from a health
callable. Given a backend (`NvmeBackend`, implemented by `sim_instruments.ssd.device.SimSsd`) it
is a whole drive: Error Information, Firmware Slot, Device Self-test, Telemetry Host-Initiated,
Sanitize Status and the OCP SMART extended (C0h) log pages; Format NVM, Sanitize, Device
Self-test, Firmware Image Download and Commit; Volatile Write Cache; and the NVM I/O commands
Flush, Write, Read, Write Uncorrectable, Compare, Write Zeroes and Dataset Management.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme.commands import Completion, DataTransfer, NvmeCommand

_SQE_BYTES = 64
_IDENTIFY_BYTES = 4096
_SMART_BYTES = 512
_LOG_512_BYTES = 512
_SELF_TEST_LOG_BYTES = 564
_ERROR_ENTRY_BYTES = 64
_TELEMETRY_BLOCK_BYTES = 512
_NSID_ALL = 0xFFFFFFFF
_SENSOR_COUNT = 8
_THRESHOLD_ABSENT_K = 0xFFFF  # the spec's default over threshold for a temperature sensor
ERROR_LOG_ENTRIES = 64  # ELPE + 1
SELF_TEST_RESULTS = 20

# Admin opcodes (Base Spec 2.0, Figure 28) and NVM I/O opcodes (NVM Command Set 1.0, Figure 17).
_OPC_GET_LOG_PAGE = 0x02
_OPC_IDENTIFY = 0x06
_OPC_SET_FEATURES = 0x09
_OPC_GET_FEATURES = 0x0A
_OPC_FIRMWARE_COMMIT = 0x10
_OPC_FIRMWARE_DOWNLOAD = 0x11
_OPC_DEVICE_SELF_TEST = 0x14
_OPC_FORMAT_NVM = 0x80
_OPC_SANITIZE = 0x84
_IO_FLUSH = 0x00
_IO_WRITE = 0x01
_IO_READ = 0x02
_IO_WRITE_UNCORRECTABLE = 0x04
_IO_COMPARE = 0x05
_IO_WRITE_ZEROES = 0x08
_IO_DATASET_MANAGEMENT = 0x09
_CNS_NAMESPACE = 0x00
_CNS_CONTROLLER = 0x01
_FID_TEMPERATURE_THRESHOLD = 0x04
_FID_VOLATILE_WRITE_CACHE = 0x06

# Log page identifiers: Base Spec 2.0 Figure 202, and C0h from the OCP Datacenter NVMe SSD
# Specification 2.0 (SMART / Health Information Extended, "SMART Cloud Attributes").
LID_ERROR_INFORMATION = 0x01
LID_SMART = 0x02
LID_FIRMWARE_SLOT = 0x03
LID_DEVICE_SELF_TEST = 0x06
LID_TELEMETRY_HOST = 0x07
LID_SANITIZE_STATUS = 0x81
LID_OCP_SMART_EXTENDED = 0xC0

# OCP C0h layout (OCP Datacenter NVMe SSD Spec 2.0, SMART Cloud Attributes log; the same
# offsets as nvme-cli's struct ocp_smart_extended_log and Windows'
# NVME_OCP_DEVICE_SMART_INFORMATION_LOG_V3). The GUID is stored little-endian, so the bytes
# at 496-511 read C5 AF 10 28 ... D5 AF.
OCP_LOG_PAGE_VERSION = 0x0003
OCP_LOG_PAGE_GUID = bytes.fromhex("AFD514C97C6F4F9CA4F2BFEA2810AFC5")[::-1]

# Status field values (SCT << 8 | SC), with DNR (bit 14) where a retry cannot succeed.
STATUS_SUCCESS = 0x0000
_DNR = 0x4000
STATUS_INVALID_OPCODE = 0x0001 | _DNR
STATUS_INVALID_FIELD = 0x0002 | _DNR
STATUS_INTERNAL_ERROR = 0x0006 | _DNR
STATUS_INVALID_NAMESPACE = 0x000B | _DNR
STATUS_SANITIZE_IN_PROGRESS = 0x001D
STATUS_NAMESPACE_WRITE_PROTECTED = 0x0020 | _DNR
STATUS_LBA_OUT_OF_RANGE = 0x0080 | _DNR
STATUS_INVALID_FIRMWARE_SLOT = 0x0106 | _DNR
STATUS_INVALID_FIRMWARE_IMAGE = 0x0107 | _DNR
STATUS_INVALID_FORMAT = 0x010A | _DNR
STATUS_SELF_TEST_IN_PROGRESS = 0x011D
STATUS_UNRECOVERED_READ_ERROR = 0x0281
STATUS_COMPARE_FAILURE = 0x0285 | _DNR
# Errors a host provokes by probing (unsupported opcodes, pages, fields) are not device errors
# and stay out of the Error Information log.
_UNLOGGED = {STATUS_SUCCESS, STATUS_INVALID_OPCODE, STATUS_INVALID_FIELD, STATUS_INVALID_NAMESPACE}

_CRITICAL_WARNING_TEMPERATURE = 1 << 1
_ADMIN_QID = 0
_IO_QID = 1
_QUEUE_DEPTH = 64
_DSM_RANGE_BYTES = 16
_DSM_DEALLOCATE = 1 << 2
_WRITE_ZEROES_DEALLOCATE = 1 << 25
_FUA = 1 << 30


@dataclass(frozen=True)
class SimNvmeIdentity:
    """What a simulated drive reports about itself in its Identify pages."""

    serial: str
    model: str
    firmware: str
    capacity_bytes: int
    vid: int = 0x1B36
    ssvid: int = 0x1AF4
    ieee_oui: int = 0x525400
    lba_sizes_bytes: tuple[int, ...] = (512, 4096)
    active_lba_index: int = 0
    version: tuple[int, int, int] = (2, 0, 0)
    wctemp_k: int = 343
    cctemp_k: int = 358
    cntlid: int = 1
    mdts: int = 5
    sanicap: int = 0b011
    volatile_write_cache: bool = True

    def __post_init__(self) -> None:
        """Reject identities the Identify pages cannot carry."""
        for name, text, length in (
            ("serial", self.serial, 20),
            ("model", self.model, 40),
            ("firmware", self.firmware, 8),
        ):
            if not text.isascii() or len(text) > length:
                raise ValueError(f"SimNvmeIdentity.{name}={text!r}: not ASCII of <= {length} chars")
        if not 1 <= len(self.lba_sizes_bytes) <= 16:
            raise ValueError("SimNvmeIdentity.lba_sizes_bytes: between 1 and 16 formats")
        for size in self.lba_sizes_bytes:
            if size < 512 or size & (size - 1):
                raise ValueError(f"SimNvmeIdentity: LBA size {size} is not a power of two >= 512")
            if self.capacity_bytes <= 0 or self.capacity_bytes % size:
                raise ValueError(
                    f"SimNvmeIdentity: capacity {self.capacity_bytes} B is not a positive "
                    f"multiple of the {size} B LBA size"
                )
        if not 0 <= self.active_lba_index < len(self.lba_sizes_bytes):
            raise ValueError(f"SimNvmeIdentity.active_lba_index {self.active_lba_index} out of range")

    @property
    def active_block_size_bytes(self) -> int:
        """Return the LBA size the namespace is formatted with."""
        return self.lba_sizes_bytes[self.active_lba_index]


@dataclass(frozen=True)
class SimHealth:
    """The drive's health state as the lab's world model sees it at one instant."""

    temperature_k: int = 313
    available_spare_pct: int = 100
    available_spare_threshold_pct: int = 10
    percentage_used_pct: int = 0
    endurance_group_critical_warning: int = 0
    data_units_read: int = 0
    data_units_written: int = 0
    host_read_commands: int = 0
    host_write_commands: int = 0
    controller_busy_time_min: int = 0
    power_cycles: int = 0
    power_on_hours: int = 0
    unsafe_shutdowns: int = 0
    media_errors: int = 0
    num_err_log_entries: int = 0
    critical_warning: int = 0
    warning_temp_time_min: int = 0
    critical_temp_time_min: int = 0
    temperature_sensors_k: tuple[int, ...] = ()
    thermal_mgmt_temp1_transitions: int = 0
    thermal_mgmt_temp2_transitions: int = 0
    thermal_mgmt_temp1_time_s: int = 0
    thermal_mgmt_temp2_time_s: int = 0

    def __post_init__(self) -> None:
        """Reject values the SMART page cannot carry (a world-model bug, caught early)."""
        widths = {
            "temperature_k": 16,
            "available_spare_pct": 8,
            "available_spare_threshold_pct": 8,
            "endurance_group_critical_warning": 8,
            "critical_warning": 8,
            "warning_temp_time_min": 32,
            "critical_temp_time_min": 32,
            "thermal_mgmt_temp1_transitions": 32,
            "thermal_mgmt_temp2_transitions": 32,
            "thermal_mgmt_temp1_time_s": 32,
            "thermal_mgmt_temp2_time_s": 32,
        }
        for item in fields(self):
            if item.name == "temperature_sensors_k":
                continue
            value = getattr(self, item.name)
            # Counters are u128 on the page; percentage used may pass 255 and saturates there.
            bits = widths.get(item.name, 128)
            if not 0 <= value < (1 << bits):
                raise ValueError(f"SimHealth.{item.name}={value!r} does not fit in {bits} bits")
        if len(self.temperature_sensors_k) > _SENSOR_COUNT:
            raise ValueError(f"SimHealth: at most {_SENSOR_COUNT} temperature sensors")
        for temp_k in self.temperature_sensors_k:
            if not 0 <= temp_k <= 0xFFFF:
                raise ValueError(f"SimHealth: sensor temperature {temp_k!r} K out of range")


def _check_bits(owner: str, values: Mapping[str, int], widths: Mapping[str, int]) -> None:
    """Raise ValueError for a field value its log page field cannot hold."""
    for name, bits in widths.items():
        value = values[name]
        if not 0 <= value < (1 << bits):
            raise ValueError(f"{owner}.{name}={value!r} does not fit in {bits} bits")


@dataclass(frozen=True)
class OcpHealth:
    """The OCP SMART / Health Information Extended log (C0h) values at one instant."""

    physical_media_units_written: int = 0  # bytes written to the NAND
    physical_media_units_read: int = 0  # bytes read from the NAND
    bad_user_nand_blocks_raw: int = 0
    bad_user_nand_blocks_normalized: int = 100
    bad_system_nand_blocks_raw: int = 0
    bad_system_nand_blocks_normalized: int = 100
    xor_recovery_count: int = 0
    uncorrectable_read_errors: int = 0
    soft_ecc_errors: int = 0
    end_to_end_detected_errors: int = 0
    end_to_end_corrected_errors: int = 0
    system_data_used_pct: int = 0
    refresh_count: int = 0
    user_data_erase_count_max: int = 0
    user_data_erase_count_min: int = 0
    thermal_throttling_events: int = 0
    thermal_throttling_status: int = 0  # 0 unthrottled, 1 first level, 2 second level
    dssd_version: tuple[int, int, int, int] = (2, 0, 0, 0)  # major, minor, point, errata
    pcie_correctable_errors: int = 0
    incomplete_shutdowns: int = 0
    free_blocks_pct: int = 0
    capacitor_health_pct: int = 0xFFFF  # FFFFh: no capacitor
    nvme_errata_version: int = 0
    unaligned_io: int = 0
    security_version: int = 0
    nuse_blocks: int = 0
    plp_start_count: int = 0
    endurance_estimate_bytes: int = 0
    pcie_link_retraining_count: int = 0
    power_state_change_count: int = 0
    log_page_version: int = OCP_LOG_PAGE_VERSION

    def __post_init__(self) -> None:
        """Reject values the C0h page cannot carry."""
        widths = {
            "physical_media_units_written": 128,
            "physical_media_units_read": 128,
            "bad_user_nand_blocks_raw": 48,
            "bad_user_nand_blocks_normalized": 16,
            "bad_system_nand_blocks_raw": 48,
            "bad_system_nand_blocks_normalized": 16,
            "xor_recovery_count": 64,
            "uncorrectable_read_errors": 64,
            "soft_ecc_errors": 64,
            "end_to_end_detected_errors": 32,
            "end_to_end_corrected_errors": 32,
            "system_data_used_pct": 8,
            "refresh_count": 56,
            "user_data_erase_count_max": 32,
            "user_data_erase_count_min": 32,
            "thermal_throttling_events": 8,
            "thermal_throttling_status": 8,
            "pcie_correctable_errors": 64,
            "incomplete_shutdowns": 32,
            "free_blocks_pct": 8,
            "capacitor_health_pct": 16,
            "nvme_errata_version": 8,
            "unaligned_io": 64,
            "security_version": 64,
            "nuse_blocks": 64,
            "plp_start_count": 128,
            "endurance_estimate_bytes": 128,
            "pcie_link_retraining_count": 64,
            "power_state_change_count": 64,
            "log_page_version": 16,
        }
        _check_bits("OcpHealth", {name: getattr(self, name) for name in widths}, widths)


@dataclass(frozen=True)
class ErrorLogEntry:
    """One Error Information log entry (64 bytes, Base Spec 2.0 Figure 205)."""

    error_count: int
    sqid: int
    cid: int
    status: int  # the 15-bit status field, without the phase tag
    lba: int = 0
    nsid: int = 0
    parameter_location: int = 0xFFFF  # FFFFh: not specific to a command parameter
    command_specific: int = 0


@dataclass(frozen=True)
class SelfTestResult:
    """One Self-test Result Data Structure (28 bytes, Base Spec 2.0 Figure 260)."""

    code: int  # 1 short, 2 extended
    result: int  # 0 no error, 1 aborted by command, 2 by reset, 4 by format, 7 failed segment, ...
    segment: int = 0
    valid_diagnostic: int = 0  # bit 0 NSID, 1 FLBA, 2 SCT, 3 SC
    power_on_hours: int = 0
    nsid: int = 0
    failing_lba: int = 0
    sct: int = 0
    sc: int = 0


@dataclass(frozen=True)
class SelfTestLog:
    """The Device Self-test log: the operation in progress and the newest results first."""

    current_operation: int = 0
    completion_pct: int = 0
    results: tuple[SelfTestResult, ...] = ()


@dataclass(frozen=True)
class FirmwareSlots:
    """The Firmware Slot log: active slot, slot activated at the next reset, revisions."""

    active_slot: int
    next_reset_slot: int  # 0: none pending
    revisions: tuple[str, ...]  # per slot from slot 1; "" for an empty slot


@dataclass(frozen=True)
class SanitizeStatus:
    """The Sanitize Status log (81h)."""

    progress: int = 0xFFFF  # SPROG numerator over 65536; FFFFh when none is in progress
    status: int = 0  # 0 never sanitized, 1 completed, 2 in progress, 3 failed
    global_data_erased: bool = False
    cdw10: int = 0
    overwrite_s: int = 0xFFFFFFFF
    block_erase_s: int = 0xFFFFFFFF
    crypto_erase_s: int = 0xFFFFFFFF


@dataclass(frozen=True)
class NamespaceState:
    """The namespace as formatted now."""

    lba_index: int
    nuse_blocks: int


@dataclass
class CommandOutcome:
    """What a command did: its status, completion DW0, data to the host, the LBA of an error."""

    status: int = STATUS_SUCCESS
    result: int = 0
    data: bytes = b""
    error_lba: int = 0


class NvmeBackend(Protocol):
    """The drive behind a controller: its media, health and background operations."""

    def health(self) -> SimHealth:
        """Return the SMART / Health values now."""
        ...

    def ocp_health(self) -> OcpHealth:
        """Return the OCP C0h values now."""
        ...

    def fatal(self) -> bool:
        """Return whether the controller is in fatal status (CSTS.CFS)."""
        ...

    def namespace(self) -> NamespaceState:
        """Return the namespace's format and use."""
        ...

    def firmware_revision(self) -> str:
        """Return the running firmware revision."""
        ...

    def error_log(self) -> Sequence[ErrorLogEntry]:
        """Return the Error Information entries, newest first."""
        ...

    def log_error(self, sqid: int, cid: int, status: int, lba: int, nsid: int) -> None:
        """Record a command error in the Error Information log."""
        ...

    def firmware_slots(self) -> FirmwareSlots:
        """Return the Firmware Slot log values."""
        ...

    def self_test_log(self) -> SelfTestLog:
        """Return the Device Self-test log values."""
        ...

    def sanitize_status(self) -> SanitizeStatus:
        """Return the Sanitize Status log values."""
        ...

    def telemetry(self, create: bool) -> tuple[int, bytes]:
        """Return (generation number, data area 1) of host-initiated telemetry; capture anew if asked."""
        ...

    def write_cache_enabled(self) -> bool:
        """Return whether the volatile write cache is enabled."""
        ...

    def set_write_cache(self, enabled: bool) -> None:
        """Enable or disable the volatile write cache."""
        ...

    def format_nvm(self, lba_index: int, secure_erase: int) -> CommandOutcome:
        """Format the namespace with an LBA format; user data is discarded."""
        ...

    def sanitize(self, action: int, no_deallocate: bool, cdw10: int) -> CommandOutcome:
        """Start a sanitize operation (2 block erase, 4 crypto erase, 1 exit failure mode)."""
        ...

    def start_self_test(self, code: int, nsid: int) -> CommandOutcome:
        """Start (1 short, 2 extended) or abort (Fh) a device self-test."""
        ...

    def firmware_download(self, offset_bytes: int, data: bytes) -> CommandOutcome:
        """Store a piece of a firmware image."""
        ...

    def firmware_commit(self, slot: int, action: int) -> CommandOutcome:
        """Commit the downloaded image to a slot and/or activate a slot."""
        ...

    def read(self, slba: int, nlb: int) -> CommandOutcome:
        """Read `nlb` blocks from `slba`."""
        ...

    def write(self, slba: int, data: bytes, fua: bool) -> CommandOutcome:
        """Write whole blocks from `slba`."""
        ...

    def flush(self) -> CommandOutcome:
        """Make every completed write durable."""
        ...

    def write_uncorrectable(self, slba: int, nlb: int) -> CommandOutcome:
        """Mark blocks so reads fail until they are written again."""
        ...

    def compare(self, slba: int, data: bytes) -> CommandOutcome:
        """Compare blocks with `data`."""
        ...

    def write_zeroes(self, slba: int, nlb: int, deallocate: bool) -> CommandOutcome:
        """Set blocks to zeroes."""
        ...

    def deallocate(self, ranges: Sequence[tuple[int, int]]) -> CommandOutcome:
        """Deallocate (trim) (start LBA, block count) ranges."""
        ...


def _encode_error_entry(entry: ErrorLogEntry) -> bytes:
    buf = bytearray(_ERROR_ENTRY_BYTES)
    # Bytes 0-31: error count, SQID, CID, status field (status << 1 | phase), PEL, LBA, NSID,
    # vendor specific, transport type; 32-39 command specific information.
    struct.pack_into(
        "<QHHHHQI",
        buf,
        0,
        entry.error_count,
        entry.sqid,
        entry.cid,
        entry.status << 1,
        entry.parameter_location,
        entry.lba,
        entry.nsid,
    )
    struct.pack_into("<Q", buf, 32, entry.command_specific)
    return bytes(buf)


def _encode_self_test_result(result: SelfTestResult | None) -> bytes:
    buf = bytearray(28)
    if result is None:
        buf[0] = 0x0F  # result Fh: entry not used
        return bytes(buf)
    buf[0] = (result.code << 4) | result.result
    buf[1] = result.segment
    buf[2] = result.valid_diagnostic
    struct.pack_into(
        "<QIQBB", buf, 4, result.power_on_hours, result.nsid, result.failing_lba, result.sct, result.sc
    )
    return bytes(buf)


def encode_ocp_health(ocp: OcpHealth) -> bytes:
    """Encode the 512-byte OCP SMART / Health Information Extended log page (C0h)."""
    page = bytearray(_LOG_512_BYTES)
    page[0:16] = ocp.physical_media_units_written.to_bytes(16, "little")
    page[16:32] = ocp.physical_media_units_read.to_bytes(16, "little")
    page[32:38] = ocp.bad_user_nand_blocks_raw.to_bytes(6, "little")
    struct.pack_into("<H", page, 38, ocp.bad_user_nand_blocks_normalized)
    page[40:46] = ocp.bad_system_nand_blocks_raw.to_bytes(6, "little")
    struct.pack_into("<H", page, 46, ocp.bad_system_nand_blocks_normalized)
    struct.pack_into(
        "<QQQII",
        page,
        48,
        ocp.xor_recovery_count,
        ocp.uncorrectable_read_errors,
        ocp.soft_ecc_errors,
        ocp.end_to_end_detected_errors,
        ocp.end_to_end_corrected_errors,
    )
    page[80] = ocp.system_data_used_pct
    page[81:88] = ocp.refresh_count.to_bytes(7, "little")
    struct.pack_into("<II", page, 88, ocp.user_data_erase_count_max, ocp.user_data_erase_count_min)
    page[96] = ocp.thermal_throttling_events
    page[97] = ocp.thermal_throttling_status
    major, minor, point, errata = ocp.dssd_version
    page[98] = errata
    struct.pack_into("<HHB", page, 99, point, minor, major)
    struct.pack_into("<QI", page, 104, ocp.pcie_correctable_errors, ocp.incomplete_shutdowns)
    page[120] = ocp.free_blocks_pct
    struct.pack_into("<HB", page, 128, ocp.capacitor_health_pct, ocp.nvme_errata_version)
    struct.pack_into("<QQQ", page, 136, ocp.unaligned_io, ocp.security_version, ocp.nuse_blocks)
    page[160:176] = ocp.plp_start_count.to_bytes(16, "little")
    page[176:192] = ocp.endurance_estimate_bytes.to_bytes(16, "little")
    struct.pack_into("<QQ", page, 192, ocp.pcie_link_retraining_count, ocp.power_state_change_count)
    struct.pack_into("<H", page, 494, ocp.log_page_version)
    page[496:512] = OCP_LOG_PAGE_GUID
    return bytes(page)


class SimNvmeController:
    """A simulated NVMe controller: raw SQE bytes in, (CQE bytes, data bytes) out.

    Without a backend it supports Identify (CNS 00h namespace 1, CNS 01h controller), Get Log
    Page LID 02h (SMART) and Get/Set Features FID 04h (temperature thresholds). With a backend
    it is a whole drive (see the module docstring). Everything else completes with Invalid
    Command Opcode or Invalid Field in Command, as a real controller would.
    """

    def __init__(
        self,
        identity: SimNvmeIdentity,
        health: Callable[[], SimHealth],
        backend: NvmeBackend | None = None,
        self_test_extended_min: int = 0,
        firmware_slots: int = 1,
    ) -> None:
        self.identity = identity
        self._health = health
        self._backend = backend
        self._self_test_extended_min = self_test_extended_min
        self._firmware_slots = firmware_slots
        self.name = f"sim-nvme:{identity.serial}"
        self._present = True
        default_over = {0: identity.wctemp_k} | dict.fromkeys(
            range(1, _SENSOR_COUNT + 1), _THRESHOLD_ABSENT_K
        )
        default_under = dict.fromkeys(range(_SENSOR_COUNT + 1), 0)
        # Keyed by (THSEL, TMPSEL): 0 over / 1 under, sensor 0 = composite.
        self._default_thresholds_k = {
            **{(0, s): t for s, t in default_over.items()},
            **{(1, s): t for s, t in default_under.items()},
        }
        self._thresholds_k = dict(self._default_thresholds_k)
        self._saved_thresholds_k = dict(self._default_thresholds_k)
        self._sq_head = {_ADMIN_QID: 0, _IO_QID: 0}
        self._cq_tail = {_ADMIN_QID: 0, _IO_QID: 0}
        self._phase = {_ADMIN_QID: 1, _IO_QID: 1}

    @property
    def present(self) -> bool:
        """Return whether the drive still answers on the bus."""
        return self._present

    def drop_off(self) -> None:
        """Make the drive fall off the bus: every later command times out."""
        self._present = False

    def come_back(self) -> None:
        """Put the drive back on the bus (after the fault that dropped it is cleared)."""
        self._present = True

    def reset(self) -> None:
        """Apply a controller level reset: queues restart, features return to saved values."""
        self._thresholds_k = dict(self._saved_thresholds_k)
        self._sq_head = {_ADMIN_QID: 0, _IO_QID: 0}
        self._cq_tail = {_ADMIN_QID: 0, _IO_QID: 0}
        self._phase = {_ADMIN_QID: 1, _IO_QID: 1}

    def snapshot(self) -> dict[str, Any]:
        """Return the controller's mutable state as JSON-ready data."""

        def table(thresholds: Mapping[tuple[int, int], int]) -> list[list[int]]:
            return [[thsel, tmpsel, value] for (thsel, tmpsel), value in sorted(thresholds.items())]

        return {
            "present": self._present,
            "thresholds_k": table(self._thresholds_k),
            "saved_thresholds_k": table(self._saved_thresholds_k),
            "queues": {
                str(qid): [self._sq_head[qid], self._cq_tail[qid], self._phase[qid]]
                for qid in (_ADMIN_QID, _IO_QID)
            },
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self._present = bool(state["present"])
        self._thresholds_k = {(int(a), int(b)): int(v) for a, b, v in state["thresholds_k"]}
        self._saved_thresholds_k = {(int(a), int(b)): int(v) for a, b, v in state["saved_thresholds_k"]}
        for qid in (_ADMIN_QID, _IO_QID):
            head, tail, phase = state["queues"][str(qid)]
            self._sq_head[qid], self._cq_tail[qid], self._phase[qid] = int(head), int(tail), int(phase)

    def submit_admin(self, sqe: bytes, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Execute one admin submission queue entry; return (16-byte CQE, data to the host)."""
        return self._submit(_ADMIN_QID, sqe, data, self._execute_admin)

    def submit_io(self, sqe: bytes, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Execute one I/O submission queue entry; return (16-byte CQE, data to the host)."""
        return self._submit(_IO_QID, sqe, data, self._execute_io)

    def _submit(
        self,
        qid: int,
        sqe: bytes,
        data: bytes | None,
        execute: Callable[[int, int, tuple[int, ...], bytes], CommandOutcome],
    ) -> tuple[bytes, bytes]:
        if not self._present:
            raise InstrumentTimeout(self.name, "no completion: the drive dropped off the bus")
        if len(sqe) != _SQE_BYTES:
            raise ValueError(f"{self.name}: a submission queue entry is 64 bytes, got {len(sqe)}")
        opcode, _flags, cid, nsid = struct.unpack_from("<BBHI", sqe, 0)
        cdw = struct.unpack_from("<6I", sqe, 40)  # CDW10..CDW15
        if self._backend is not None and self._backend.fatal():
            outcome = CommandOutcome(STATUS_INTERNAL_ERROR)
        else:
            outcome = execute(opcode, nsid, cdw, data or b"")
            if self._backend is not None and outcome.status not in _UNLOGGED:
                self._backend.log_error(qid, cid, outcome.status, outcome.error_lba, nsid)
        self._sq_head[qid] = (self._sq_head[qid] + 1) % _QUEUE_DEPTH
        cqe = struct.pack(
            "<IIHHHH",
            outcome.result,
            0,
            self._sq_head[qid],
            qid,
            cid,
            (outcome.status << 1) | self._phase[qid],
        )
        self._cq_tail[qid] = (self._cq_tail[qid] + 1) % _QUEUE_DEPTH
        if self._cq_tail[qid] == 0:
            self._phase[qid] ^= 1  # the phase tag inverts each time the CQ wraps
        return cqe, outcome.data

    # Admin commands -------------------------------------------------------------------------

    def _execute_admin(self, opcode: int, nsid: int, cdw: tuple[int, ...], data: bytes) -> CommandOutcome:
        if opcode == _OPC_IDENTIFY:
            return self._identify(nsid, cdw)
        if opcode == _OPC_GET_LOG_PAGE:
            return self._get_log_page(nsid, cdw)
        if opcode == _OPC_GET_FEATURES:
            return self._get_features(cdw)
        if opcode == _OPC_SET_FEATURES:
            return self._set_features(cdw)
        backend = self._backend
        if backend is None:
            return CommandOutcome(STATUS_INVALID_OPCODE)
        if opcode == _OPC_FORMAT_NVM:
            return self._format_nvm(backend, nsid, cdw[0])
        if opcode == _OPC_SANITIZE:
            action = cdw[0] & 0b111
            return backend.sanitize(action, bool(cdw[0] & (1 << 9)), cdw[0])
        if opcode == _OPC_DEVICE_SELF_TEST:
            if nsid not in (0, 1, _NSID_ALL):
                return CommandOutcome(STATUS_INVALID_NAMESPACE)
            return backend.start_self_test(cdw[0] & 0xF, nsid)
        if opcode == _OPC_FIRMWARE_DOWNLOAD:
            length = (cdw[0] + 1) * 4
            if len(data) != length:
                return CommandOutcome(STATUS_INVALID_FIELD)
            return backend.firmware_download(cdw[1] * 4, data)
        if opcode == _OPC_FIRMWARE_COMMIT:
            return backend.firmware_commit(cdw[0] & 0b111, (cdw[0] >> 3) & 0b111)
        return CommandOutcome(STATUS_INVALID_OPCODE)

    def _format_nvm(self, backend: NvmeBackend, nsid: int, cdw10: int) -> CommandOutcome:
        if nsid not in (1, _NSID_ALL):
            return CommandOutcome(STATUS_INVALID_NAMESPACE)
        lba_index = (cdw10 & 0xF) | (((cdw10 >> 12) & 0b11) << 4)
        mset_pi_pil = (cdw10 >> 4) & 0b11111
        if lba_index >= len(self.identity.lba_sizes_bytes) or mset_pi_pil:
            return CommandOutcome(STATUS_INVALID_FORMAT)  # no such format, or metadata asked for
        secure_erase = (cdw10 >> 9) & 0b111
        if secure_erase > 2:
            return CommandOutcome(STATUS_INVALID_FIELD)
        return backend.format_nvm(lba_index, secure_erase)

    def _identify(self, nsid: int, cdw: tuple[int, ...]) -> CommandOutcome:
        cns = cdw[0] & 0xFF
        if cns == _CNS_CONTROLLER:
            return CommandOutcome(data=self._identify_controller_page())
        if cns == _CNS_NAMESPACE:
            if nsid != 1:
                return CommandOutcome(STATUS_INVALID_NAMESPACE)
            return CommandOutcome(data=self._identify_namespace_page())
        return CommandOutcome(STATUS_INVALID_FIELD)

    def _log_page(self, lid: int, lsp: int) -> bytes | None:
        if lid == LID_SMART:
            return self._smart_page()
        backend = self._backend
        if backend is None:
            return None
        if lid == LID_ERROR_INFORMATION:
            entries = list(backend.error_log())[:ERROR_LOG_ENTRIES]
            page = b"".join(_encode_error_entry(entry) for entry in entries)
            return page.ljust(ERROR_LOG_ENTRIES * _ERROR_ENTRY_BYTES, b"\x00")
        if lid == LID_FIRMWARE_SLOT:
            return self._firmware_slot_page(backend.firmware_slots())
        if lid == LID_DEVICE_SELF_TEST:
            return self._self_test_page(backend.self_test_log())
        if lid == LID_TELEMETRY_HOST:
            return self._telemetry_page(*backend.telemetry(create=bool(lsp & 1)))
        if lid == LID_SANITIZE_STATUS:
            return self._sanitize_page(backend.sanitize_status())
        if lid == LID_OCP_SMART_EXTENDED:
            return encode_ocp_health(backend.ocp_health())
        return None

    def _get_log_page(self, nsid: int, cdw: tuple[int, ...]) -> CommandOutcome:
        lid = cdw[0] & 0xFF
        lsp = (cdw[0] >> 8) & 0x7F
        numd = ((cdw[0] >> 16) & 0xFFFF) | ((cdw[1] & 0xFFFF) << 16)  # NUMDL | NUMDU
        length = (numd + 1) * 4
        offset = cdw[2] | (cdw[3] << 32)  # LPOL | LPOU
        # LPA bit 0 is clear in Identify Controller: every page here is controller-wide.
        if nsid not in (0, _NSID_ALL):
            return CommandOutcome(STATUS_INVALID_FIELD)
        page = self._log_page(lid, lsp)
        if page is None or offset % 4 or offset >= len(page):
            return CommandOutcome(STATUS_INVALID_FIELD)
        return CommandOutcome(data=page[offset : offset + length].ljust(length, b"\x00"))

    def _firmware_slot_page(self, slots: FirmwareSlots) -> bytes:
        page = bytearray(_LOG_512_BYTES)
        page[0] = (slots.active_slot & 0b111) | ((slots.next_reset_slot & 0b111) << 4)  # AFI
        for index, revision in enumerate(slots.revisions[:7]):
            offset = 8 + 8 * index  # FRS1 at bytes 15:8, FRS7 at 63:56
            page[offset : offset + 8] = revision.encode("ascii").ljust(8, b" ") if revision else bytes(8)
        return bytes(page)

    def _self_test_page(self, log: SelfTestLog) -> bytes:
        page = bytearray(_SELF_TEST_LOG_BYTES)
        page[0] = log.current_operation & 0xF
        page[1] = log.completion_pct & 0x7F
        results: list[SelfTestResult | None] = list(log.results[:SELF_TEST_RESULTS])
        results += [None] * (SELF_TEST_RESULTS - len(results))
        for index, result in enumerate(results):
            offset = 4 + 28 * index
            page[offset : offset + 28] = _encode_self_test_result(result)
        return bytes(page)

    def _telemetry_page(self, generation: int, data_area: bytes) -> bytes:
        blocks = max(1, -(-len(data_area) // _TELEMETRY_BLOCK_BYTES))
        header = bytearray(_TELEMETRY_BLOCK_BYTES)
        header[0] = LID_TELEMETRY_HOST
        header[5:8] = self.identity.ieee_oui.to_bytes(3, "little")
        # Data areas 1-3 end at the same block: everything the model captures is in area 1.
        struct.pack_into("<HHH", header, 8, blocks, blocks, blocks)
        struct.pack_into("<I", header, 16, blocks)
        header[381] = generation & 0xFF  # host-initiated data generation number
        header[382] = 0  # no controller-initiated data available
        reason = b"qualify sim host-initiated"
        header[384 : 384 + len(reason)] = reason
        body = data_area.ljust(blocks * _TELEMETRY_BLOCK_BYTES, b"\x00")
        return bytes(header) + body

    def _sanitize_page(self, status: SanitizeStatus) -> bytes:
        page = bytearray(_LOG_512_BYTES)
        sstat = (status.status & 0b111) | (int(status.global_data_erased) << 8)
        struct.pack_into(
            "<HHIIIIIII",
            page,
            0,
            status.progress,
            sstat,
            status.cdw10,
            status.overwrite_s,
            status.block_erase_s,
            status.crypto_erase_s,
            0xFFFFFFFF,  # no-deallocate variants: not estimated
            0xFFFFFFFF,
            0xFFFFFFFF,
        )
        return bytes(page)

    def _threshold_key(self, cdw11: int, allow_all: bool) -> list[tuple[int, int]] | None:
        tmpsel = (cdw11 >> 16) & 0xF
        thsel = (cdw11 >> 20) & 0b11
        if thsel > 1:
            return None
        sensors = self._implemented_sensors()
        if tmpsel == 0xF and allow_all:
            return [(thsel, 0)] + [(thsel, s) for s in sensors]
        if tmpsel == 0 or tmpsel in sensors:
            return [(thsel, tmpsel)]
        return None

    def _get_features(self, cdw: tuple[int, ...]) -> CommandOutcome:
        fid = cdw[0] & 0xFF
        sel = (cdw[0] >> 8) & 0b111
        if fid == _FID_VOLATILE_WRITE_CACHE and self._backend is not None and sel <= 3:
            if sel == 3:
                return CommandOutcome(result=0b100)  # changeable, not saveable, not per-NS
            enabled = self._backend.write_cache_enabled() if sel == 0 else True
            return CommandOutcome(result=int(enabled))
        if fid != _FID_TEMPERATURE_THRESHOLD or sel > 3:
            return CommandOutcome(STATUS_INVALID_FIELD)
        if sel == 3:
            return CommandOutcome(result=0b101)  # capabilities: saveable, changeable, not per-NS
        keys = self._threshold_key(cdw[1], allow_all=False)
        if keys is None:
            return CommandOutcome(STATUS_INVALID_FIELD)
        table = (self._thresholds_k, self._default_thresholds_k, self._saved_thresholds_k)[sel]
        thsel, tmpsel = keys[0]
        return CommandOutcome(result=table[keys[0]] | (tmpsel << 16) | (thsel << 20))

    def _set_features(self, cdw: tuple[int, ...]) -> CommandOutcome:
        fid = cdw[0] & 0xFF
        save = bool(cdw[0] >> 31)
        if fid == _FID_VOLATILE_WRITE_CACHE and self._backend is not None and not save:
            self._backend.set_write_cache(bool(cdw[1] & 1))
            return CommandOutcome()
        if fid != _FID_TEMPERATURE_THRESHOLD:
            return CommandOutcome(STATUS_INVALID_FIELD)
        keys = self._threshold_key(cdw[1], allow_all=True)
        if keys is None:
            return CommandOutcome(STATUS_INVALID_FIELD)
        for key in keys:
            self._thresholds_k[key] = cdw[1] & 0xFFFF
            if save:
                self._saved_thresholds_k[key] = cdw[1] & 0xFFFF
        return CommandOutcome()

    def _implemented_sensors(self) -> list[int]:
        sensors = self._health().temperature_sensors_k
        return [index + 1 for index, temp_k in enumerate(sensors) if temp_k]

    def _temperature_alarm(self, health: SimHealth) -> bool:
        readings = [(0, health.temperature_k)] + [
            (index + 1, temp_k) for index, temp_k in enumerate(health.temperature_sensors_k) if temp_k
        ]
        return any(
            temp_k >= self._thresholds_k[(0, sensor)] or temp_k <= self._thresholds_k[(1, sensor)]
            for sensor, temp_k in readings
        )

    def _smart_page(self) -> bytes:
        health = self._health()
        page = bytearray(_SMART_BYTES)
        warning = health.critical_warning
        if self._temperature_alarm(health):
            warning |= _CRITICAL_WARNING_TEMPERATURE
        struct.pack_into(
            "<BHBBBB",
            page,
            0,
            warning,
            health.temperature_k,
            health.available_spare_pct,
            health.available_spare_threshold_pct,
            min(health.percentage_used_pct, 255),  # the spec saturates this byte at 255
            health.endurance_group_critical_warning,
        )
        for offset, value in (
            (32, health.data_units_read),
            (48, health.data_units_written),
            (64, health.host_read_commands),
            (80, health.host_write_commands),
            (96, health.controller_busy_time_min),
            (112, health.power_cycles),
            (128, health.power_on_hours),
            (144, health.unsafe_shutdowns),
            (160, health.media_errors),
            (176, health.num_err_log_entries),
        ):
            page[offset : offset + 16] = value.to_bytes(16, "little")
        struct.pack_into("<II", page, 192, health.warning_temp_time_min, health.critical_temp_time_min)
        sensors = list(health.temperature_sensors_k) + [0] * (
            _SENSOR_COUNT - len(health.temperature_sensors_k)
        )
        struct.pack_into("<8H", page, 200, *sensors)
        struct.pack_into(
            "<IIII",
            page,
            216,
            health.thermal_mgmt_temp1_transitions,
            health.thermal_mgmt_temp2_transitions,
            health.thermal_mgmt_temp1_time_s,
            health.thermal_mgmt_temp2_time_s,
        )
        return bytes(page)

    def _identify_controller_page(self) -> bytes:
        ident = self.identity
        backend = self._backend
        page = bytearray(_IDENTIFY_BYTES)
        major, minor, tertiary = ident.version
        firmware = backend.firmware_revision() if backend is not None else ident.firmware
        struct.pack_into("<HH", page, 0, ident.vid, ident.ssvid)
        page[4:24] = ident.serial.encode("ascii").ljust(20, b" ")
        page[24:64] = ident.model.encode("ascii").ljust(40, b" ")
        page[64:72] = firmware.encode("ascii").ljust(8, b" ")
        page[72] = 6  # RAB
        page[73:76] = ident.ieee_oui.to_bytes(3, "little")
        page[77] = ident.mdts
        struct.pack_into("<H", page, 78, ident.cntlid)
        struct.pack_into("<I", page, 80, (major << 16) | (minor << 8) | tertiary)
        page[258] = 3  # ACL
        page[259] = 3  # AERL
        page[262] = ERROR_LOG_ENTRIES - 1  # ELPE is 0's based
        struct.pack_into("<HH", page, 266, ident.wctemp_k, ident.cctemp_k)
        page[280:296] = ident.capacity_bytes.to_bytes(16, "little")  # TNVMCAP
        struct.pack_into("<I", page, 328, ident.sanicap)
        page[512] = 0x66  # SQES: 64-byte entries
        page[513] = 0x44  # CQES: 16-byte entries
        struct.pack_into("<I", page, 516, 1)  # NN
        page[525] = int(ident.volatile_write_cache)
        if backend is None:
            struct.pack_into("<H", page, 256, 0x0006)  # OACS: Format NVM, Firmware Download/Commit
        else:
            struct.pack_into("<H", page, 256, 0x0016)  # OACS: + Device Self-test
            # FRMW: slot 1 read-only, the slot count, activation without reset supported.
            page[260] = 0x01 | ((self._firmware_slots & 0b111) << 1) | 0x10
            page[261] = 0x0C  # LPA: extended data for Get Log Page, telemetry host-initiated
            struct.pack_into("<HB", page, 316, self._self_test_extended_min, 0x01)  # EDSTT, DSTO
            # ONCS: Compare, Write Uncorrectable, Dataset Management, Write Zeroes, Save/Select.
            struct.pack_into("<H", page, 520, 0x001F)
            page[524] = 0x04  # FNA: cryptographic erase supported as part of secure erase
        nqn = f"nqn.2024-01.io.qualify.sim:nvme:{ident.serial}".encode("ascii")
        page[768 : 768 + len(nqn)] = nqn
        struct.pack_into("<H", page, 2048, 2500)  # power state 0 max power: 25 W (centiwatts)
        return bytes(page)

    def _namespace(self) -> tuple[int, int]:
        """Return (active LBA format index, NUSE in blocks)."""
        ident = self.identity
        if self._backend is None:
            blocks = ident.capacity_bytes // ident.active_block_size_bytes
            return ident.active_lba_index, blocks
        state = self._backend.namespace()
        return state.lba_index, state.nuse_blocks

    def block_size_bytes(self) -> int:
        """Return the LBA size the namespace is formatted with now."""
        return self.identity.lba_sizes_bytes[self._namespace()[0]]

    def _identify_namespace_page(self) -> bytes:
        ident = self.identity
        lba_index, nuse = self._namespace()
        page = bytearray(_IDENTIFY_BYTES)
        blocks = ident.capacity_bytes // ident.lba_sizes_bytes[lba_index]
        struct.pack_into("<QQQ", page, 0, blocks, blocks, nuse)  # NSZE, NCAP, NUSE
        page[25] = len(ident.lba_sizes_bytes) - 1  # NLBAF is 0's based
        page[26] = lba_index  # FLBAS bits 3:0
        if self._backend is not None:
            page[33] = 0x09  # DLFEAT: deallocated blocks read as zeroes; Write Zeroes may deallocate
        page[48:64] = ident.capacity_bytes.to_bytes(16, "little")  # NVMCAP
        digest = hashlib.sha256(ident.serial.encode("ascii")).digest()
        page[104:120] = digest[:16]  # NGUID
        page[120:128] = digest[16:24]  # EUI64
        for index, size in enumerate(ident.lba_sizes_bytes):
            lbads = size.bit_length() - 1
            relative_performance = 0 if size == 4096 else 2  # best at 4 KiB, good otherwise
            struct.pack_into("<I", page, 128 + 4 * index, (lbads << 16) | (relative_performance << 24))
        return bytes(page)

    # I/O commands ----------------------------------------------------------------------------

    def _execute_io(self, opcode: int, nsid: int, cdw: tuple[int, ...], data: bytes) -> CommandOutcome:
        backend = self._backend
        if backend is None:
            return CommandOutcome(STATUS_INVALID_OPCODE)
        if opcode == _IO_FLUSH:
            if nsid not in (1, _NSID_ALL):
                return CommandOutcome(STATUS_INVALID_NAMESPACE)
            return backend.flush()
        if opcode not in (
            _IO_WRITE,
            _IO_READ,
            _IO_WRITE_UNCORRECTABLE,
            _IO_COMPARE,
            _IO_WRITE_ZEROES,
            _IO_DATASET_MANAGEMENT,
        ):
            return CommandOutcome(STATUS_INVALID_OPCODE)
        if nsid != 1:
            return CommandOutcome(STATUS_INVALID_NAMESPACE)
        block_bytes = self.block_size_bytes()
        nsze = self.identity.capacity_bytes // block_bytes
        if opcode == _IO_DATASET_MANAGEMENT:
            return self._dataset_management(backend, cdw, data, nsze)
        slba = cdw[0] | (cdw[1] << 32)
        nlb = (cdw[2] & 0xFFFF) + 1  # NLB is 0's based
        if slba + nlb > nsze:
            return CommandOutcome(STATUS_LBA_OUT_OF_RANGE, error_lba=slba)
        transfers = opcode in (_IO_WRITE, _IO_READ, _IO_COMPARE)
        max_bytes = 4096 << self.identity.mdts if self.identity.mdts else None
        if transfers and max_bytes is not None and nlb * block_bytes > max_bytes:
            return CommandOutcome(STATUS_INVALID_FIELD)  # larger than MDTS
        if opcode in (_IO_WRITE, _IO_COMPARE) and len(data) != nlb * block_bytes:
            return CommandOutcome(STATUS_INVALID_FIELD)
        if opcode == _IO_READ:
            return backend.read(slba, nlb)
        if opcode == _IO_WRITE:
            return backend.write(slba, data, fua=bool(cdw[2] & _FUA))
        if opcode == _IO_COMPARE:
            return backend.compare(slba, data)
        if opcode == _IO_WRITE_ZEROES:
            return backend.write_zeroes(slba, nlb, deallocate=bool(cdw[2] & _WRITE_ZEROES_DEALLOCATE))
        return backend.write_uncorrectable(slba, nlb)

    def _dataset_management(
        self, backend: NvmeBackend, cdw: tuple[int, ...], data: bytes, nsze: int
    ) -> CommandOutcome:
        count = (cdw[0] & 0xFF) + 1  # NR is 0's based
        if len(data) < count * _DSM_RANGE_BYTES:
            return CommandOutcome(STATUS_INVALID_FIELD)
        if not cdw[1] & _DSM_DEALLOCATE:
            return CommandOutcome()  # attributes only (integral read/write hints): advisory
        ranges = []
        for index in range(count):
            _attributes, length, start = struct.unpack_from("<IIQ", data, index * _DSM_RANGE_BYTES)
            if start + length > nsze:
                return CommandOutcome(STATUS_LBA_OUT_OF_RANGE, error_lba=start)
            if length:
                ranges.append((start, length))
        return backend.deallocate(ranges)


class SimNvmeTransport:
    """The simulated lab's end of an NVMe passthrough link (implements NvmePassthrough)."""

    def __init__(self, controller: SimNvmeController, address: str | None = None) -> None:
        self._controller = controller
        self.address: str = address or f"sim-nvme:{controller.identity.serial}"
        self._closed = False

    def admin(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one command to the simulated admin queue."""
        return self._submit(self._controller.submit_admin, cmd, data)

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one command to the simulated I/O queue."""
        return self._submit(self._controller.submit_io, cmd, data)

    def close(self) -> None:
        """Release the link; later commands raise InstrumentError."""
        self._closed = True

    def _before_command(self) -> None:
        """Check the link before a command; subclasses add conditions (power)."""

    def _submit(
        self,
        submit: Callable[[bytes, bytes | None], tuple[bytes, bytes]],
        cmd: NvmeCommand,
        data: bytes | None,
    ) -> tuple[Completion, bytes]:
        if self._closed:
            raise InstrumentError(self.address, "transport is closed")
        transfer = cmd.transfer
        if data is not None and (
            transfer is not DataTransfer.HOST_TO_CONTROLLER or len(data) != cmd.data_len
        ):
            raise ValueError(
                f"{self.address}: {len(data)} bytes of data out do not fit a "
                f"{transfer.name} command with data_len {cmd.data_len}"
            )
        try:
            self._before_command()
            cqe, returned = submit(cmd.to_bytes(), data)
        except InstrumentTimeout as exc:
            raise InstrumentTimeout(self.address, exc.message) from exc
        completion = Completion.from_bytes(cqe)
        if transfer is not DataTransfer.CONTROLLER_TO_HOST:
            return completion, b""
        if len(returned) > cmd.data_len:
            raise ProtocolError(
                self.address,
                f"controller transferred {len(returned)} bytes into a {cmd.data_len}-byte buffer",
            )
        # The host buffer keeps its zeros wherever the controller transferred nothing.
        return completion, returned.ljust(cmd.data_len, b"\x00")
