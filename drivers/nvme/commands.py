"""NVMe submission/completion queue entries, admin and I/O command builders, status decoding.

Layouts follow the NVM Express Base Specification 2.0 (Common Command Format, Common
Completion Queue Entry, Get Log Page, Identify, Get/Set Features, Format NVM, Sanitize, Device
Self-test, Firmware Image Download / Commit) and the NVM Command Set Specification 1.0 (Read,
Write, Flush, Dataset Management, Write Zeroes). Standard library only: this module also runs
inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

SQE_SIZE_BYTES = 64
CQE_SIZE_BYTES = 16
IDENTIFY_DATA_SIZE_BYTES = 4096
SMART_LOG_SIZE_BYTES = 512
ERROR_LOG_ENTRY_SIZE_BYTES = 64
FIRMWARE_SLOT_LOG_SIZE_BYTES = 512
SELF_TEST_LOG_SIZE_BYTES = 564
TELEMETRY_HEADER_SIZE_BYTES = 512
SANITIZE_STATUS_LOG_SIZE_BYTES = 512
OCP_SMART_EXTENDED_LOG_SIZE_BYTES = 512
DSM_RANGE_SIZE_BYTES = 16
MAX_DSM_RANGES = 256
MAX_BLOCKS_PER_COMMAND = 0x10000
"""NLB is a 0's based 16-bit field, so one Read, Write or Write Zeroes moves at most 65536 blocks."""

NSID_NONE = 0x00000000
NSID_ALL = 0xFFFFFFFF
"""Broadcast namespace ID: the controller-wide (global) log page or feature."""

_SQE = struct.Struct("<BBHIIIQQQ6I")
_CQE = struct.Struct("<IIHHHH")
_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class AdminOpcode(enum.IntEnum):
    """Admin command opcodes (Base Spec 2.0, Figure 28)."""

    DELETE_IO_SQ = 0x00
    CREATE_IO_SQ = 0x01
    GET_LOG_PAGE = 0x02
    DELETE_IO_CQ = 0x04
    CREATE_IO_CQ = 0x05
    IDENTIFY = 0x06
    ABORT = 0x08
    SET_FEATURES = 0x09
    GET_FEATURES = 0x0A
    ASYNC_EVENT_REQUEST = 0x0C
    NAMESPACE_MANAGEMENT = 0x0D
    FIRMWARE_COMMIT = 0x10
    FIRMWARE_IMAGE_DOWNLOAD = 0x11
    DEVICE_SELF_TEST = 0x14
    NAMESPACE_ATTACHMENT = 0x15
    KEEP_ALIVE = 0x18
    FORMAT_NVM = 0x80
    SECURITY_SEND = 0x81
    SECURITY_RECEIVE = 0x82
    SANITIZE = 0x84


LONG_RUNNING_ADMIN_OPCODES = frozenset({AdminOpcode.FORMAT_NVM, AdminOpcode.FIRMWARE_COMMIT})
"""Admin commands that may run for minutes on a large drive; transports give them a long timeout."""


class IoOpcode(enum.IntEnum):
    """NVM command set I/O opcodes (NVM Command Set Spec 1.0, Figure 17)."""

    FLUSH = 0x00
    WRITE = 0x01
    READ = 0x02
    WRITE_UNCORRECTABLE = 0x04
    COMPARE = 0x05
    WRITE_ZEROES = 0x08
    DATASET_MANAGEMENT = 0x09


class Cns(enum.IntEnum):
    """Identify Controller or Namespace Structure values (CDW10 bits 7:0)."""

    NAMESPACE = 0x00
    CONTROLLER = 0x01
    ACTIVE_NAMESPACE_LIST = 0x02
    NAMESPACE_DESCRIPTOR_LIST = 0x03


class LogPageId(enum.IntEnum):
    """Log page identifiers (Get Log Page CDW10 bits 7:0)."""

    ERROR_INFORMATION = 0x01
    SMART_HEALTH = 0x02
    FIRMWARE_SLOT = 0x03
    COMMANDS_SUPPORTED_AND_EFFECTS = 0x05
    DEVICE_SELF_TEST = 0x06
    TELEMETRY_HOST = 0x07
    TELEMETRY_CONTROLLER = 0x08
    ENDURANCE_GROUP = 0x09
    SANITIZE_STATUS = 0x81
    OCP_SMART_EXTENDED = 0xC0
    """Vendor-specific LID that the OCP Datacenter NVMe SSD Specification assigns."""


class FeatureId(enum.IntEnum):
    """Feature identifiers (Get/Set Features CDW10 bits 7:0)."""

    ARBITRATION = 0x01
    POWER_MANAGEMENT = 0x02
    TEMPERATURE_THRESHOLD = 0x04
    ERROR_RECOVERY = 0x05
    VOLATILE_WRITE_CACHE = 0x06
    NUMBER_OF_QUEUES = 0x07
    ASYNC_EVENT_CONFIGURATION = 0x0B
    AUTONOMOUS_POWER_STATE_TRANSITION = 0x0C
    HOST_CONTROLLED_THERMAL_MANAGEMENT = 0x10


class FeatureSelect(enum.IntEnum):
    """Get Features SEL field (CDW10 bits 10:8): which value of the feature to return."""

    CURRENT = 0
    DEFAULT = 1
    SAVED = 2
    SUPPORTED_CAPABILITIES = 3


class ThresholdType(enum.IntEnum):
    """Temperature Threshold THSEL field (CDW11 bits 21:20)."""

    OVER = 0
    UNDER = 1


class DataTransfer(enum.IntEnum):
    """Data direction a command implies through its opcode bits 1:0 (Base Spec 2.0, Fig. 27)."""

    NONE = 0b00
    HOST_TO_CONTROLLER = 0b01
    CONTROLLER_TO_HOST = 0b10
    BIDIRECTIONAL = 0b11


TEMPERATURE_SENSOR_COMPOSITE = 0x0
TEMPERATURE_SENSOR_ALL = 0xF
"""TMPSEL value that applies a Set Features threshold to every implemented sensor."""


def _check_width(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"NvmeCommand.{name}={value!r} does not fit in {bits} bits")


@dataclass(frozen=True)
class NvmeCommand:
    """One 64-byte submission queue entry plus the host buffer size it transfers.

    `data_len` is not part of the SQE: it is the size of the host data buffer (the Linux
    passthrough ioctl's `data_len`), which the transport allocates or sends.
    """

    opcode: int
    nsid: int = 0
    cdw10: int = 0
    cdw11: int = 0
    cdw12: int = 0
    cdw13: int = 0
    cdw14: int = 0
    cdw15: int = 0
    data_len: int = 0
    cid: int = 0
    fuse: int = 0
    psdt: int = 0
    cdw2: int = 0
    cdw3: int = 0
    mptr: int = 0
    prp1: int = 0
    prp2: int = 0

    def __post_init__(self) -> None:
        """Reject values that do not fit their SQE fields, so encoding never truncates."""
        _check_width("opcode", self.opcode, 8)
        _check_width("cid", self.cid, 16)
        _check_width("fuse", self.fuse, 2)
        _check_width("psdt", self.psdt, 2)
        for name in ("nsid", "cdw2", "cdw3", "cdw10", "cdw11", "cdw12", "cdw13", "cdw14", "cdw15"):
            _check_width(name, getattr(self, name), 32)
        for name in ("mptr", "prp1", "prp2"):
            _check_width(name, getattr(self, name), 64)
        # The Linux passthrough ioctl carries data_len as a __u32.
        _check_width("data_len", self.data_len, 32)

    @property
    def transfer(self) -> DataTransfer:
        """Return the data direction encoded in the opcode's two low bits."""
        return DataTransfer(self.opcode & 0b11)

    def to_bytes(self) -> bytes:
        """Encode the 64-byte submission queue entry, little-endian."""
        flags = self.fuse | (self.psdt << 6)
        return _SQE.pack(
            self.opcode,
            flags,
            self.cid,
            self.nsid,
            self.cdw2,
            self.cdw3,
            self.mptr,
            self.prp1,
            self.prp2,
            self.cdw10,
            self.cdw11,
            self.cdw12,
            self.cdw13,
            self.cdw14,
            self.cdw15,
        )

    @classmethod
    def from_bytes(cls, data: bytes, data_len: int = 0) -> NvmeCommand:
        """Decode a 64-byte submission queue entry; `data_len` is supplied by the caller."""
        if len(data) != SQE_SIZE_BYTES:
            raise ValueError(f"NvmeCommand: expected {SQE_SIZE_BYTES} bytes, got {len(data)}")
        (opcode, flags, cid, nsid, cdw2, cdw3, mptr, prp1, prp2, *cdws) = _SQE.unpack(data)
        return cls(
            opcode=opcode,
            nsid=nsid,
            cdw10=cdws[0],
            cdw11=cdws[1],
            cdw12=cdws[2],
            cdw13=cdws[3],
            cdw14=cdws[4],
            cdw15=cdws[5],
            data_len=data_len,
            cid=cid,
            fuse=flags & 0b11,
            psdt=(flags >> 6) & 0b11,
            cdw2=cdw2,
            cdw3=cdw3,
            mptr=mptr,
            prp1=prp1,
            prp2=prp2,
        )


class StatusCodeType(enum.IntEnum):
    """Status Code Type (SCT) of a completion (Base Spec 2.0, Figure 100)."""

    GENERIC = 0
    COMMAND_SPECIFIC = 1
    MEDIA_AND_DATA_INTEGRITY = 2
    PATH_RELATED = 3
    VENDOR_SPECIFIC = 7


_SCT_NAMES = {
    0: "Generic Command Status",
    1: "Command Specific Status",
    2: "Media and Data Integrity Error",
    3: "Path Related Status",
    7: "Vendor Specific Status",
}

# Names as the Base Spec 2.0 (Figures 101-104) and NVM Command Set Spec 1.0 word them, so an
# engineer can search the spec for the text an error shows.
_STATUS_NAMES: dict[tuple[int, int], str] = {
    (0, 0x00): "Successful Completion",
    (0, 0x01): "Invalid Command Opcode",
    (0, 0x02): "Invalid Field in Command",
    (0, 0x03): "Command ID Conflict",
    (0, 0x04): "Data Transfer Error",
    (0, 0x05): "Commands Aborted due to Power Loss Notification",
    (0, 0x06): "Internal Error",
    (0, 0x07): "Command Abort Requested",
    (0, 0x08): "Command Aborted due to SQ Deletion",
    (0, 0x09): "Command Aborted due to Failed Fused Command",
    (0, 0x0A): "Command Aborted due to Missing Fused Command",
    (0, 0x0B): "Invalid Namespace or Format",
    (0, 0x0C): "Command Sequence Error",
    (0, 0x0D): "Invalid SGL Segment Descriptor",
    (0, 0x0E): "Invalid Number of SGL Descriptors",
    (0, 0x0F): "Data SGL Length Invalid",
    (0, 0x10): "Metadata SGL Length Invalid",
    (0, 0x11): "SGL Descriptor Type Invalid",
    (0, 0x12): "Invalid Use of Controller Memory Buffer",
    (0, 0x13): "PRP Offset Invalid",
    (0, 0x14): "Atomic Write Unit Exceeded",
    (0, 0x15): "Operation Denied",
    (0, 0x16): "SGL Offset Invalid",
    (0, 0x18): "Host Identifier Inconsistent Format",
    (0, 0x19): "Keep Alive Timer Expired",
    (0, 0x1A): "Keep Alive Timeout Invalid",
    (0, 0x1B): "Command Aborted due to Preempt and Abort",
    (0, 0x1C): "Sanitize Failed",
    (0, 0x1D): "Sanitize In Progress",
    (0, 0x1E): "SGL Data Block Granularity Invalid",
    (0, 0x1F): "Command Not Supported for Queue in CMB",
    (0, 0x20): "Namespace is Write Protected",
    (0, 0x21): "Command Interrupted",
    (0, 0x22): "Transient Transport Error",
    (0, 0x80): "LBA Out of Range",
    (0, 0x81): "Capacity Exceeded",
    (0, 0x82): "Namespace Not Ready",
    (0, 0x83): "Reservation Conflict",
    (0, 0x84): "Format In Progress",
    (1, 0x00): "Completion Queue Invalid",
    (1, 0x01): "Invalid Queue Identifier",
    (1, 0x02): "Invalid Queue Size",
    (1, 0x03): "Abort Command Limit Exceeded",
    (1, 0x05): "Asynchronous Event Request Limit Exceeded",
    (1, 0x06): "Invalid Firmware Slot",
    (1, 0x07): "Invalid Firmware Image",
    (1, 0x08): "Invalid Interrupt Vector",
    (1, 0x09): "Invalid Log Page",
    (1, 0x0A): "Invalid Format",
    (1, 0x0B): "Firmware Activation Requires Conventional Reset",
    (1, 0x0C): "Invalid Queue Deletion",
    (1, 0x0D): "Feature Identifier Not Saveable",
    (1, 0x0E): "Feature Not Changeable",
    (1, 0x0F): "Feature Not Namespace Specific",
    (1, 0x10): "Firmware Activation Requires NVM Subsystem Reset",
    (1, 0x11): "Firmware Activation Requires Controller Level Reset",
    (1, 0x12): "Firmware Activation Requires Maximum Time Violation",
    (1, 0x13): "Firmware Activation Prohibited",
    (1, 0x14): "Overlapping Range",
    (1, 0x15): "Namespace Insufficient Capacity",
    (1, 0x16): "Namespace Identifier Unavailable",
    (1, 0x18): "Namespace Already Attached",
    (1, 0x19): "Namespace Is Private",
    (1, 0x1A): "Namespace Not Attached",
    (1, 0x1B): "Thin Provisioning Not Supported",
    (1, 0x1C): "Controller List Invalid",
    (1, 0x1D): "Device Self-test In Progress",
    (1, 0x1E): "Boot Partition Write Prohibited",
    (1, 0x80): "Conflicting Attributes",
    (1, 0x81): "Invalid Protection Information",
    (1, 0x82): "Attempted Write to Read Only Range",
    (2, 0x80): "Write Fault",
    (2, 0x81): "Unrecovered Read Error",
    (2, 0x82): "End-to-end Guard Check Error",
    (2, 0x83): "End-to-end Application Tag Check Error",
    (2, 0x84): "End-to-end Reference Tag Check Error",
    (2, 0x85): "Compare Failure",
    (2, 0x86): "Access Denied",
    (2, 0x87): "Deallocated or Unwritten Logical Block",
    (3, 0x00): "Internal Path Error",
    (3, 0x01): "Asymmetric Access Persistent Loss",
    (3, 0x02): "Asymmetric Access Inaccessible",
    (3, 0x03): "Asymmetric Access Transition",
    (3, 0x60): "Controller Pathing Error",
    (3, 0x70): "Host Pathing Error",
    (3, 0x71): "Command Aborted By Host",
}


def describe_status(sct: int, sc: int) -> str:
    """Return a status in words with its codes, e.g. 'Invalid Field in Command (SCT 0, SC 02h)'."""
    name = _STATUS_NAMES.get((sct, sc))
    if name is None:
        name = f"Unrecognised {_SCT_NAMES.get(sct, 'Reserved Status Code Type')}"
    return f"{name} (SCT {sct}, SC {sc:02X}h)"


@dataclass(frozen=True)
class Completion:
    """One 16-byte completion queue entry, with its status field decoded.

    `status` is the 15-bit Status Field (CQE DW3 bits 31:17) without the phase tag, the same
    value the Linux passthrough ioctl returns: SC in bits 7:0, SCT 10:8, CRD 12:11, More 13,
    DNR 14.
    """

    result: int = 0
    dw1: int = 0
    sq_head: int = 0
    sq_id: int = 0
    cid: int = 0
    phase: bool = True
    sc: int = 0
    sct: int = 0
    crd: int = 0
    more: bool = False
    dnr: bool = False

    def __post_init__(self) -> None:
        """Reject field values that the 16-byte entry cannot hold."""
        for name, value, bits in (
            ("result", self.result, 32),
            ("dw1", self.dw1, 32),
            ("sq_head", self.sq_head, 16),
            ("sq_id", self.sq_id, 16),
            ("cid", self.cid, 16),
            ("sc", self.sc, 8),
            ("sct", self.sct, 3),
            ("crd", self.crd, 2),
        ):
            if not 0 <= value < (1 << bits):
                raise ValueError(f"Completion.{name}={value!r} does not fit in {bits} bits")

    @property
    def ok(self) -> bool:
        """Return whether the command completed successfully (SCT 0, SC 00h)."""
        return self.sct == 0 and self.sc == 0

    @property
    def status(self) -> int:
        """Return the 15-bit status field (SC, SCT, CRD, More, DNR) without the phase tag."""
        return self.sc | (self.sct << 8) | (self.crd << 11) | (int(self.more) << 13) | (int(self.dnr) << 14)

    @property
    def status_text(self) -> str:
        """Return the status in words, e.g. 'Invalid Field in Command (SCT 0, SC 02h)'."""
        return describe_status(self.sct, self.sc)

    @classmethod
    def from_status(cls, status: int, result: int = 0, cid: int = 0) -> Completion:
        """Build a completion from a 15-bit status field and DW0, as the Linux ioctl reports."""
        if not 0 <= status <= 0x7FFF:
            raise ValueError(f"Completion: status field {status:#x} does not fit in 15 bits")
        return cls(
            result=result,
            cid=cid,
            sc=status & 0xFF,
            sct=(status >> 8) & 0x7,
            crd=(status >> 11) & 0x3,
            more=bool(status & (1 << 13)),
            dnr=bool(status & (1 << 14)),
        )

    def to_bytes(self) -> bytes:
        """Encode the 16-byte completion queue entry, little-endian."""
        return _CQE.pack(
            self.result,
            self.dw1,
            self.sq_head,
            self.sq_id,
            self.cid,
            (self.status << 1) | int(self.phase),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Completion:
        """Decode a 16-byte completion queue entry."""
        if len(data) != CQE_SIZE_BYTES:
            raise ValueError(f"Completion: expected {CQE_SIZE_BYTES} bytes, got {len(data)}")
        result, dw1, sq_head, sq_id, cid, word = _CQE.unpack(data)
        status = word >> 1
        return cls(
            result=result,
            dw1=dw1,
            sq_head=sq_head,
            sq_id=sq_id,
            cid=cid,
            phase=bool(word & 1),
            sc=status & 0xFF,
            sct=(status >> 8) & 0x7,
            crd=(status >> 11) & 0x3,
            more=bool(status & (1 << 13)),
            dnr=bool(status & (1 << 14)),
        )


def identify(cns: int, nsid: int = NSID_NONE, cntid: int = 0, csi: int = 0) -> NvmeCommand:
    """Build an Identify command (opcode 06h) that reads one 4096-byte data structure."""
    if not 0 <= cns <= 0xFF:
        raise ValueError(f"identify: CNS {cns!r} does not fit in 8 bits")
    if not 0 <= cntid <= 0xFFFF:
        raise ValueError(f"identify: CNTID {cntid!r} does not fit in 16 bits")
    if not 0 <= csi <= 0xFF:
        raise ValueError(f"identify: CSI {csi!r} does not fit in 8 bits")
    return NvmeCommand(
        opcode=AdminOpcode.IDENTIFY,
        nsid=nsid,
        cdw10=cns | (cntid << 16),
        cdw11=csi << 24,
        data_len=IDENTIFY_DATA_SIZE_BYTES,
    )


def identify_controller() -> NvmeCommand:
    """Build Identify CNS 01h: the Identify Controller data structure."""
    return identify(Cns.CONTROLLER)


def identify_namespace(nsid: int = 1) -> NvmeCommand:
    """Build Identify CNS 00h: the Identify Namespace data structure of `nsid`."""
    return identify(Cns.NAMESPACE, nsid=nsid)


def get_log_page(
    lid: int,
    nsid: int,
    length_bytes: int,
    offset_bytes: int = 0,
    lsp: int = 0,
    lsi: int = 0,
    rae: bool = False,
    uuid_index: int = 0,
) -> NvmeCommand:
    """Build a Get Log Page command (opcode 02h) reading `length_bytes` from `offset_bytes`.

    NUMD is a 0's based dword count split into NUMDL (CDW10 31:16) and NUMDU (CDW11 15:0);
    the offset is LPOL/LPOU (CDW12/CDW13) and must be dword aligned. `uuid_index` (CDW14
    6:0) selects whose vendor-specific page a LID names, e.g. the OCP one.
    """
    if not 0 <= lid <= 0xFF:
        raise ValueError(f"get_log_page: LID {lid!r} does not fit in 8 bits")
    if length_bytes <= 0 or length_bytes % 4:
        raise ValueError(
            f"get_log_page: length {length_bytes} bytes is not a positive whole number of dwords"
        )
    numd = length_bytes // 4 - 1
    if numd > _U32_MAX:
        raise ValueError(f"get_log_page: length {length_bytes} bytes exceeds 2^32 dwords")
    if offset_bytes < 0 or offset_bytes % 4 or offset_bytes > _U64_MAX:
        raise ValueError(f"get_log_page: offset {offset_bytes} bytes is not dword aligned")
    if not 0 <= lsp <= 0x7F:
        raise ValueError(f"get_log_page: LSP {lsp!r} does not fit in 7 bits")
    if not 0 <= lsi <= 0xFFFF:
        raise ValueError(f"get_log_page: LSI {lsi!r} does not fit in 16 bits")
    if not 0 <= uuid_index <= 0x7F:
        raise ValueError(f"get_log_page: UUID index {uuid_index!r} does not fit in 7 bits")
    return NvmeCommand(
        opcode=AdminOpcode.GET_LOG_PAGE,
        nsid=nsid,
        cdw10=lid | (lsp << 8) | (int(rae) << 15) | ((numd & 0xFFFF) << 16),
        cdw11=(numd >> 16) | (lsi << 16),
        cdw12=offset_bytes & _U32_MAX,
        cdw13=offset_bytes >> 32,
        cdw14=uuid_index,
        data_len=length_bytes,
    )


def smart_log(nsid: int = NSID_ALL) -> NvmeCommand:
    """Build Get Log Page LID 02h for the whole 512-byte SMART / Health Information page."""
    return get_log_page(LogPageId.SMART_HEALTH, nsid, SMART_LOG_SIZE_BYTES)


def error_log(entries: int) -> NvmeCommand:
    """Build Get Log Page LID 01h for the newest `entries` 64-byte Error Information entries."""
    if entries <= 0:
        raise ValueError(f"error_log: {entries} entries; ask for at least one")
    return get_log_page(LogPageId.ERROR_INFORMATION, NSID_ALL, entries * ERROR_LOG_ENTRY_SIZE_BYTES)


def firmware_slot_log() -> NvmeCommand:
    """Build Get Log Page LID 03h: the 512-byte Firmware Slot Information page."""
    return get_log_page(LogPageId.FIRMWARE_SLOT, NSID_ALL, FIRMWARE_SLOT_LOG_SIZE_BYTES)


def self_test_log(nsid: int = NSID_ALL) -> NvmeCommand:
    """Build Get Log Page LID 06h: the 564-byte Device Self-test page."""
    return get_log_page(LogPageId.DEVICE_SELF_TEST, nsid, SELF_TEST_LOG_SIZE_BYTES)


def telemetry_host_log(
    create: bool = False,
    offset_bytes: int = 0,
    length_bytes: int = TELEMETRY_HEADER_SIZE_BYTES,
) -> NvmeCommand:
    """Build Get Log Page LID 07h (Telemetry Host-Initiated); `create` sets LSP bit 0.

    The first read of a capture sets Create Telemetry Host-Initiated Data so the controller
    snapshots its state; later reads of the same capture (other offsets) leave it clear.
    """
    return get_log_page(
        LogPageId.TELEMETRY_HOST, NSID_NONE, length_bytes, offset_bytes=offset_bytes, lsp=int(create)
    )


def sanitize_status_log() -> NvmeCommand:
    """Build Get Log Page LID 81h: the 512-byte Sanitize Status page."""
    return get_log_page(LogPageId.SANITIZE_STATUS, NSID_NONE, SANITIZE_STATUS_LOG_SIZE_BYTES)


def ocp_smart_extended_log(uuid_index: int = 0) -> NvmeCommand:
    """Build Get Log Page LID C0h: the OCP SMART / Health Information Extended page (512 B).

    OCP 2.5 and later drives expect the index of the OCP UUID in their UUID list (Identify
    CNS 17h); 0 reads the page of drives that predate UUID selection (OCP 1.0-2.0).
    """
    return get_log_page(
        LogPageId.OCP_SMART_EXTENDED, NSID_ALL, OCP_SMART_EXTENDED_LOG_SIZE_BYTES, uuid_index=uuid_index
    )


def identify_active_namespaces(start_nsid: int = 0) -> NvmeCommand:
    """Build Identify CNS 02h: up to 1024 active NSIDs greater than `start_nsid`, ascending."""
    return identify(Cns.ACTIVE_NAMESPACE_LIST, nsid=start_nsid)


def get_features(
    fid: int,
    cdw11: int = 0,
    sel: int = FeatureSelect.CURRENT,
    nsid: int = NSID_NONE,
    data_len: int = 0,
) -> NvmeCommand:
    """Build a Get Features command (opcode 0Ah); the value comes back in completion DW0."""
    if not 0 <= fid <= 0xFF:
        raise ValueError(f"get_features: FID {fid!r} does not fit in 8 bits")
    if not 0 <= sel <= 0b111:
        raise ValueError(f"get_features: SEL {sel!r} does not fit in 3 bits")
    return NvmeCommand(
        opcode=AdminOpcode.GET_FEATURES,
        nsid=nsid,
        cdw10=fid | (sel << 8),
        cdw11=cdw11,
        data_len=data_len,
    )


def set_features(
    fid: int,
    cdw11: int = 0,
    save: bool = False,
    nsid: int = NSID_NONE,
    data_len: int = 0,
) -> NvmeCommand:
    """Build a Set Features command (opcode 09h); `save` sets SV to keep it across resets."""
    if not 0 <= fid <= 0xFF:
        raise ValueError(f"set_features: FID {fid!r} does not fit in 8 bits")
    return NvmeCommand(
        opcode=AdminOpcode.SET_FEATURES,
        nsid=nsid,
        cdw10=fid | (int(save) << 31),
        cdw11=cdw11,
        data_len=data_len,
    )


def _temperature_threshold_cdw11(threshold_k: int, sensor: int, threshold_type: ThresholdType) -> int:
    if not 0 <= threshold_k <= 0xFFFF:
        raise ValueError(f"temperature threshold {threshold_k!r} K does not fit in 16 bits")
    if not 0 <= sensor <= 0xF:
        raise ValueError(f"temperature sensor selector {sensor!r} does not fit in 4 bits")
    return threshold_k | (sensor << 16) | (int(threshold_type) << 20)


def get_temperature_threshold(
    sensor: int = TEMPERATURE_SENSOR_COMPOSITE,
    threshold_type: ThresholdType = ThresholdType.OVER,
    sel: int = FeatureSelect.CURRENT,
) -> NvmeCommand:
    """Build Get Features FID 04h for one sensor's over or under temperature threshold."""
    cdw11 = _temperature_threshold_cdw11(0, sensor, threshold_type)
    return get_features(FeatureId.TEMPERATURE_THRESHOLD, cdw11=cdw11, sel=sel)


def set_temperature_threshold(
    threshold_k: int,
    sensor: int = TEMPERATURE_SENSOR_COMPOSITE,
    threshold_type: ThresholdType = ThresholdType.OVER,
    save: bool = False,
) -> NvmeCommand:
    """Build Set Features FID 04h: TMPTH (kelvin) in CDW11 15:0, TMPSEL 19:16, THSEL 21:20."""
    cdw11 = _temperature_threshold_cdw11(threshold_k, sensor, threshold_type)
    return set_features(FeatureId.TEMPERATURE_THRESHOLD, cdw11=cdw11, save=save)


def temperature_threshold_k(result: int) -> int:
    """Return TMPTH in kelvin from a Get Features FID 04h completion DW0."""
    return result & 0xFFFF


class SecureErase(enum.IntEnum):
    """Format NVM Secure Erase Settings (SES, CDW10 bits 11:9)."""

    NONE = 0
    USER_DATA = 1
    CRYPTOGRAPHIC = 2


def format_nvm(
    nsid: int,
    lbaf: int,
    ses: SecureErase = SecureErase.NONE,
    mset: bool = False,
    pi: int = 0,
    pil: bool = False,
) -> NvmeCommand:
    """Build Format NVM (opcode 80h): LBA format `lbaf` (LBAFL 3:0, LBAFU 13:12), SES 11:9.

    `mset` puts metadata at the end of each LBA (extended LBA), `pi`/`pil` choose the
    protection information type and its place. NSID FFFFFFFFh formats every namespace.
    """
    if not 0 <= lbaf <= 0x3F:
        raise ValueError(f"format_nvm: LBA format index {lbaf!r} does not fit in 6 bits")
    if not 0 <= pi <= 0b111:
        raise ValueError(f"format_nvm: PI {pi!r} does not fit in 3 bits")
    return NvmeCommand(
        opcode=AdminOpcode.FORMAT_NVM,
        nsid=nsid,
        cdw10=(lbaf & 0xF)
        | (int(mset) << 4)
        | (pi << 5)
        | (int(pil) << 8)
        | (int(SecureErase(ses)) << 9)
        | ((lbaf >> 4) << 12),
    )


class SanitizeAction(enum.IntEnum):
    """Sanitize Action (SANACT, CDW10 bits 2:0)."""

    EXIT_FAILURE_MODE = 1
    BLOCK_ERASE = 2
    OVERWRITE = 3
    CRYPTO_ERASE = 4


def sanitize(
    action: SanitizeAction,
    allow_unrestricted_exit: bool = False,
    overwrite_passes: int = 1,
    overwrite_invert: bool = False,
    no_deallocate: bool = False,
    overwrite_pattern: int = 0,
) -> NvmeCommand:
    """Build Sanitize (opcode 84h): SANACT 2:0, AUSE 3, OWPASS 7:4, OIPBP 8, NDAS 9; OVRPAT.

    OWPASS 0 means 16 passes in the spec; this builder takes the real count, 1 to 16.
    The command returns at once; progress is in the Sanitize Status log (LID 81h).
    """
    if not 1 <= overwrite_passes <= 16:
        raise ValueError(f"sanitize: {overwrite_passes} overwrite passes; 1 to 16")
    if not 0 <= overwrite_pattern <= _U32_MAX:
        raise ValueError(f"sanitize: overwrite pattern {overwrite_pattern!r} does not fit in 32 bits")
    return NvmeCommand(
        opcode=AdminOpcode.SANITIZE,
        cdw10=int(SanitizeAction(action))
        | (int(allow_unrestricted_exit) << 3)
        | ((overwrite_passes & 0xF) << 4)
        | (int(overwrite_invert) << 8)
        | (int(no_deallocate) << 9),
        cdw11=overwrite_pattern,
    )


class SelfTestCode(enum.IntEnum):
    """Device Self-test Self-test Code (STC, CDW10 bits 3:0)."""

    SHORT = 0x1
    EXTENDED = 0x2
    VENDOR_SPECIFIC = 0xE
    ABORT = 0xF


def device_self_test(code: SelfTestCode, nsid: int = NSID_ALL) -> NvmeCommand:
    """Build Device Self-test (opcode 14h); NSID 0 tests the controller only, FFFFFFFFh all."""
    return NvmeCommand(opcode=AdminOpcode.DEVICE_SELF_TEST, nsid=nsid, cdw10=int(SelfTestCode(code)))


def firmware_image_download(offset_bytes: int, length_bytes: int) -> NvmeCommand:
    """Build Firmware Image Download (opcode 11h): NUMD (0's based dwords) and OFST (dwords)."""
    if length_bytes <= 0 or length_bytes % 4:
        raise ValueError(f"firmware_image_download: length {length_bytes} is not whole dwords")
    if offset_bytes < 0 or offset_bytes % 4 or offset_bytes // 4 > _U32_MAX:
        raise ValueError(f"firmware_image_download: offset {offset_bytes} is not a dword offset")
    return NvmeCommand(
        opcode=AdminOpcode.FIRMWARE_IMAGE_DOWNLOAD,
        cdw10=length_bytes // 4 - 1,
        cdw11=offset_bytes // 4,
        data_len=length_bytes,
    )


class CommitAction(enum.IntEnum):
    """Firmware Commit Commit Action (CA, CDW10 bits 5:3)."""

    REPLACE = 0
    REPLACE_AND_ACTIVATE_AT_RESET = 1
    ACTIVATE_AT_RESET = 2
    REPLACE_AND_ACTIVATE_NOW = 3
    REPLACE_BOOT_PARTITION = 6
    ACTIVATE_BOOT_PARTITION = 7


def firmware_commit(slot: int, action: CommitAction, boot_partition_id: int = 0) -> NvmeCommand:
    """Build Firmware Commit (opcode 10h): FS 2:0 (0 lets the controller pick), CA 5:3, BPID 31."""
    if not 0 <= slot <= 7:
        raise ValueError(f"firmware_commit: slot {slot!r} is not 0-7")
    if boot_partition_id not in (0, 1):
        raise ValueError(f"firmware_commit: boot partition {boot_partition_id!r} is not 0 or 1")
    return NvmeCommand(
        opcode=AdminOpcode.FIRMWARE_COMMIT,
        cdw10=slot | (int(CommitAction(action)) << 3) | (boot_partition_id << 31),
    )


def _check_lba_range(name: str, slba: int, blocks: int) -> None:
    if not 0 <= slba <= _U64_MAX:
        raise ValueError(f"{name}: starting LBA {slba!r} does not fit in 64 bits")
    if not 1 <= blocks <= MAX_BLOCKS_PER_COMMAND:
        raise ValueError(f"{name}: {blocks} blocks; one command moves 1 to {MAX_BLOCKS_PER_COMMAND}")


def _rw(opcode: int, name: str, nsid: int, slba: int, blocks: int, lba_bytes: int, fua: bool) -> NvmeCommand:
    _check_lba_range(name, slba, blocks)
    if lba_bytes <= 0:
        raise ValueError(f"{name}: LBA size {lba_bytes!r} bytes")
    return NvmeCommand(
        opcode=opcode,
        nsid=nsid,
        cdw10=slba & _U32_MAX,
        cdw11=slba >> 32,
        cdw12=(blocks - 1) | (int(fua) << 30),
        data_len=blocks * lba_bytes,
    )


def read(nsid: int, slba: int, blocks: int, lba_bytes: int, fua: bool = False) -> NvmeCommand:
    """Build Read (I/O opcode 02h): SLBA in CDW10/11, NLB (0's based) CDW12 15:0, FUA 30."""
    return _rw(IoOpcode.READ, "read", nsid, slba, blocks, lba_bytes, fua)


def write(nsid: int, slba: int, blocks: int, lba_bytes: int, fua: bool = False) -> NvmeCommand:
    """Build Write (I/O opcode 01h): SLBA in CDW10/11, NLB (0's based) CDW12 15:0, FUA 30."""
    return _rw(IoOpcode.WRITE, "write", nsid, slba, blocks, lba_bytes, fua)


def flush(nsid: int) -> NvmeCommand:
    """Build Flush (I/O opcode 00h): commit the volatile write cache of `nsid` to media."""
    return NvmeCommand(opcode=IoOpcode.FLUSH, nsid=nsid)


def write_zeroes(
    nsid: int, slba: int, blocks: int, deallocate: bool = False, fua: bool = False
) -> NvmeCommand:
    """Build Write Zeroes (I/O opcode 08h): SLBA, NLB, DEAC (CDW12 25) lets the drive deallocate."""
    _check_lba_range("write_zeroes", slba, blocks)
    return NvmeCommand(
        opcode=IoOpcode.WRITE_ZEROES,
        nsid=nsid,
        cdw10=slba & _U32_MAX,
        cdw11=slba >> 32,
        cdw12=(blocks - 1) | (int(deallocate) << 25) | (int(fua) << 30),
    )


@dataclass(frozen=True)
class DsmRange:
    """One Dataset Management range: `blocks` logical blocks from `slba`, with attributes."""

    slba: int
    blocks: int
    context_attributes: int = 0

    def to_bytes(self) -> bytes:
        """Encode the 16-byte range: attributes 3:0, length in LBAs 7:4, starting LBA 15:8."""
        if not 0 <= self.slba <= _U64_MAX:
            raise ValueError(f"DsmRange.slba={self.slba!r} does not fit in 64 bits")
        if not 1 <= self.blocks <= _U32_MAX:
            raise ValueError(f"DsmRange.blocks={self.blocks!r}: 1 to 2^32-1")
        if not 0 <= self.context_attributes <= _U32_MAX:
            raise ValueError(f"DsmRange.context_attributes={self.context_attributes!r} is not 32 bits")
        return struct.pack("<IIQ", self.context_attributes, self.blocks, self.slba)


def dataset_management(nsid: int, ranges: list[DsmRange], deallocate: bool = True) -> NvmeCommand:
    """Build Dataset Management (I/O opcode 09h): NR (0's based) CDW10 7:0, AD CDW11 bit 2.

    The range list travels as data (16 bytes a range); `dsm_payload` encodes it.
    """
    if not 1 <= len(ranges) <= MAX_DSM_RANGES:
        raise ValueError(f"dataset_management: {len(ranges)} ranges; 1 to {MAX_DSM_RANGES}")
    return NvmeCommand(
        opcode=IoOpcode.DATASET_MANAGEMENT,
        nsid=nsid,
        cdw10=len(ranges) - 1,
        cdw11=int(deallocate) << 2,
        data_len=len(ranges) * DSM_RANGE_SIZE_BYTES,
    )


def dsm_payload(ranges: list[DsmRange]) -> bytes:
    """Encode the range list a Dataset Management command sends."""
    return b"".join(item.to_bytes() for item in ranges)


def opcode_name(opcode: int, admin: bool = True) -> str:
    """Return a readable name for an opcode, e.g. 'Identify (06h)'."""
    table: type[enum.IntEnum] = AdminOpcode if admin else IoOpcode
    try:
        words = table(opcode).name.replace("_", " ").title().split()
    except ValueError:
        words = ["Opcode"]
    name = " ".join(_ACRONYMS.get(word, word) for word in words)
    return f"{name} ({opcode:02X}h)"


# Words the spec spells in capitals, so messages match the spec's command names.
_ACRONYMS = {"Nvm": "NVM", "Io": "I/O", "Sq": "SQ", "Cq": "CQ"}
