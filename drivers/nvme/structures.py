"""Decoders (and fixture encoders) for NVMe data structures: SMART log, Identify pages.

Offsets follow the NVM Express Base Specification 2.0 (SMART / Health Information log page,
Identify Controller data structure) and the NVM Command Set Specification 1.0 (Identify
Namespace). All multi-byte fields are little-endian. Standard library only: this module also
runs inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

SMART_LOG_SIZE_BYTES = 512
IDENTIFY_SIZE_BYTES = 4096
DATA_UNIT_BYTES = 1000 * 512
"""One SMART data unit is 1000 units of 512 bytes, whatever the LBA size."""

KELVIN_OFFSET = 273.15
TEMPERATURE_SENSOR_COUNT = 8
MAX_LBA_FORMATS = 64


class StructureError(ValueError):
    """A data structure of the wrong size or with an impossible field value."""


def _check_length(name: str, data: bytes, expected: int) -> None:
    if len(data) != expected:
        raise StructureError(f"{name}: expected {expected} bytes, got {len(data)}")


def _u128(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 16], "little")


def _put_u128(buf: bytearray, offset: int, value: int, name: str) -> None:
    if not 0 <= value < 1 << 128:
        raise StructureError(f"{name}={value!r} does not fit in 128 bits")
    buf[offset : offset + 16] = value.to_bytes(16, "little")


def _ascii(data: bytes, offset: int, length: int) -> str:
    # The spec pads with spaces; some firmware pads with NULs or right-justifies.
    raw = data[offset : offset + length]
    return raw.decode("ascii", errors="replace").strip(" \x00")


def _put_ascii(buf: bytearray, offset: int, length: int, text: str, name: str) -> None:
    raw = text.encode("ascii")
    if len(raw) > length:
        raise StructureError(f"{name}={text!r} is longer than {length} bytes")
    buf[offset : offset + length] = raw.ljust(length, b" ")


def kelvin_to_celsius(temp_k: int) -> float:
    """Convert an NVMe temperature in kelvin to °C (the same 273.15 offset as Linux hwmon)."""
    return temp_k - KELVIN_OFFSET


class CriticalWarning(enum.IntFlag):
    """SMART Critical Warning bits (byte 0 of the SMART / Health log)."""

    AVAILABLE_SPARE = 1 << 0
    TEMPERATURE = 1 << 1
    RELIABILITY_DEGRADED = 1 << 2
    READ_ONLY = 1 << 3
    VOLATILE_BACKUP_FAILED = 1 << 4
    PMR_READ_ONLY = 1 << 5


# Offsets of the SMART / Health Information log page (LID 02h), Base Spec 2.0 Figure 207.
_SMART_U128_FIELDS = (
    ("data_units_read", 32),
    ("data_units_written", 48),
    ("host_read_commands", 64),
    ("host_write_commands", 80),
    ("controller_busy_time_min", 96),
    ("power_cycles", 112),
    ("power_on_hours", 128),
    ("unsafe_shutdowns", 144),
    ("media_errors", 160),
    ("num_err_log_entries", 176),
)
_SMART_HEAD = struct.Struct("<BHBBBB")  # bytes 0-6
_SMART_TEMP_TIMES = struct.Struct("<II")  # bytes 192-199
_SMART_SENSORS = struct.Struct("<8H")  # bytes 200-215
_SMART_THERMAL_MGMT = struct.Struct("<IIII")  # bytes 216-231


@dataclass(frozen=True)
class SmartLog:
    """The SMART / Health Information log page (LID 02h, 512 bytes)."""

    critical_warning: CriticalWarning
    temperature_k: int
    available_spare_pct: int
    available_spare_threshold_pct: int
    percentage_used_pct: int
    endurance_group_critical_warning: int
    data_units_read: int
    data_units_written: int
    host_read_commands: int
    host_write_commands: int
    controller_busy_time_min: int
    power_cycles: int
    power_on_hours: int
    unsafe_shutdowns: int
    media_errors: int
    num_err_log_entries: int
    warning_temp_time_min: int
    critical_temp_time_min: int
    temperature_sensors_k: tuple[int | None, ...]
    thermal_mgmt_temp1_transitions: int
    thermal_mgmt_temp2_transitions: int
    thermal_mgmt_temp1_time_s: int
    thermal_mgmt_temp2_time_s: int

    @property
    def temperature_c(self) -> float:
        """Return the composite temperature in °C."""
        return kelvin_to_celsius(self.temperature_k)

    @property
    def temperature_sensors_c(self) -> tuple[float | None, ...]:
        """Return temperature sensors 1-8 in °C; None where the sensor is absent."""
        return tuple(None if t is None else kelvin_to_celsius(t) for t in self.temperature_sensors_k)

    @property
    def data_read_bytes(self) -> int:
        """Return host data read in bytes (data units x 512 000)."""
        return self.data_units_read * DATA_UNIT_BYTES

    @property
    def data_written_bytes(self) -> int:
        """Return host data written in bytes (data units x 512 000)."""
        return self.data_units_written * DATA_UNIT_BYTES

    @property
    def spare_below_threshold(self) -> bool:
        """Return whether available spare fell below its threshold (critical warning bit 0)."""
        return CriticalWarning.AVAILABLE_SPARE in self.critical_warning

    @property
    def temperature_warning(self) -> bool:
        """Return whether a temperature is outside a threshold (critical warning bit 1)."""
        return CriticalWarning.TEMPERATURE in self.critical_warning

    @property
    def reliability_degraded(self) -> bool:
        """Return whether media errors degraded NVM subsystem reliability (bit 2)."""
        return CriticalWarning.RELIABILITY_DEGRADED in self.critical_warning

    @property
    def read_only(self) -> bool:
        """Return whether all of the media is in read-only mode (bit 3)."""
        return CriticalWarning.READ_ONLY in self.critical_warning

    @property
    def volatile_backup_failed(self) -> bool:
        """Return whether the volatile memory backup device failed (bit 4)."""
        return CriticalWarning.VOLATILE_BACKUP_FAILED in self.critical_warning

    @property
    def pmr_read_only(self) -> bool:
        """Return whether the Persistent Memory Region became read-only (bit 5)."""
        return CriticalWarning.PMR_READ_ONLY in self.critical_warning

    @classmethod
    def from_bytes(cls, data: bytes) -> SmartLog:
        """Decode a 512-byte SMART / Health Information log page."""
        _check_length("SmartLog", data, SMART_LOG_SIZE_BYTES)
        warning, temp_k, spare, spare_thresh, used, eg_warning = _SMART_HEAD.unpack_from(data, 0)
        counters = {name: _u128(data, offset) for name, offset in _SMART_U128_FIELDS}
        warn_time, crit_time = _SMART_TEMP_TIMES.unpack_from(data, 192)
        sensors = _SMART_SENSORS.unpack_from(data, 200)
        tmt1_count, tmt2_count, tmt1_time, tmt2_time = _SMART_THERMAL_MGMT.unpack_from(data, 216)
        return cls(
            critical_warning=CriticalWarning(warning),
            temperature_k=temp_k,
            available_spare_pct=spare,
            available_spare_threshold_pct=spare_thresh,
            percentage_used_pct=used,
            endurance_group_critical_warning=eg_warning,
            warning_temp_time_min=warn_time,
            critical_temp_time_min=crit_time,
            # A sensor field of 0 means the sensor is not implemented.
            temperature_sensors_k=tuple(t if t else None for t in sensors),
            thermal_mgmt_temp1_transitions=tmt1_count,
            thermal_mgmt_temp2_transitions=tmt2_count,
            thermal_mgmt_temp1_time_s=tmt1_time,
            thermal_mgmt_temp2_time_s=tmt2_time,
            **counters,
        )

    def to_bytes(self) -> bytes:
        """Encode the 512-byte page (reserved bytes zero), for fixtures and golden files."""
        if len(self.temperature_sensors_k) != TEMPERATURE_SENSOR_COUNT:
            raise StructureError(
                f"SmartLog.temperature_sensors_k: expected {TEMPERATURE_SENSOR_COUNT} entries, "
                f"got {len(self.temperature_sensors_k)}"
            )
        buf = bytearray(SMART_LOG_SIZE_BYTES)
        try:
            _SMART_HEAD.pack_into(
                buf,
                0,
                int(self.critical_warning),
                self.temperature_k,
                self.available_spare_pct,
                self.available_spare_threshold_pct,
                self.percentage_used_pct,
                self.endurance_group_critical_warning,
            )
            _SMART_TEMP_TIMES.pack_into(buf, 192, self.warning_temp_time_min, self.critical_temp_time_min)
            _SMART_SENSORS.pack_into(buf, 200, *(t or 0 for t in self.temperature_sensors_k))
            _SMART_THERMAL_MGMT.pack_into(
                buf,
                216,
                self.thermal_mgmt_temp1_transitions,
                self.thermal_mgmt_temp2_transitions,
                self.thermal_mgmt_temp1_time_s,
                self.thermal_mgmt_temp2_time_s,
            )
        except struct.error as exc:
            raise StructureError(f"SmartLog: field out of range: {exc}") from exc
        for name, offset in _SMART_U128_FIELDS:
            _put_u128(buf, offset, getattr(self, name), f"SmartLog.{name}")
        return bytes(buf)


def decode_version(ver: int) -> tuple[int, int, int]:
    """Split a VER register value into (major, minor, tertiary): 0x00020000 is 2.0.0."""
    return (ver >> 16) & 0xFFFF, (ver >> 8) & 0xFF, ver & 0xFF


def encode_version(version: tuple[int, int, int]) -> int:
    """Pack (major, minor, tertiary) into a VER register value."""
    major, minor, tertiary = version
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFF and 0 <= tertiary <= 0xFF):
        raise StructureError(f"NVMe version {version!r} does not fit VER")
    return (major << 16) | (minor << 8) | tertiary


# Identify Controller data structure (CNS 01h), Base Spec 2.0 Figure 275.
_IC_VID = struct.Struct("<HH")  # 0-3
_IC_72 = struct.Struct("<B3sBBHIIIII")  # 72-99: RAB IEEE CMIC MDTS CNTLID VER RTD3R RTD3E OAES CTRATT
_IC_256 = struct.Struct("<HBBBBBBBBHHHII")  # 256-279: OACS .. HMMIN
_IC_SANICAP = struct.Struct("<I")  # 328-331
_IC_512 = struct.Struct("<BBHIHHBBHHBBHHII")  # 512-543: SQES .. MNAN
_IC_SUBNQN = (768, 256)


@dataclass(frozen=True)
class IdentifyController:
    """The Identify Controller data structure (CNS 01h, 4096 bytes); main fields decoded."""

    vid: int
    ssvid: int
    serial_number: str
    model_number: str
    firmware_revision: str
    rab: int
    ieee_oui: int
    cmic: int
    mdts: int
    cntlid: int
    version: tuple[int, int, int]
    rtd3r_us: int
    rtd3e_us: int
    oaes: int
    ctratt: int
    oacs: int
    acl: int
    aerl: int
    frmw: int
    lpa: int
    elpe: int
    npss: int
    avscc: int
    apsta: int
    wctemp_k: int
    cctemp_k: int
    mtfa: int
    hmpre: int
    hmmin: int
    tnvmcap_bytes: int
    unvmcap_bytes: int
    sanicap: int
    sqes: int
    cqes: int
    maxcmd: int
    nn: int
    oncs: int
    fuses: int
    fna: int
    vwc: int
    awun: int
    awupf: int
    icsvscc: int
    nwpc: int
    acwu: int
    ocfs: int
    sgls: int
    mnan: int
    subnqn: str

    @property
    def version_str(self) -> str:
        """Return the NVMe version as 'major.minor.tertiary'."""
        return ".".join(str(part) for part in self.version)

    @property
    def wctemp_c(self) -> float:
        """Return the warning composite temperature threshold in °C."""
        return kelvin_to_celsius(self.wctemp_k)

    @property
    def cctemp_c(self) -> float:
        """Return the critical composite temperature threshold in °C."""
        return kelvin_to_celsius(self.cctemp_k)

    @property
    def volatile_write_cache_present(self) -> bool:
        """Return whether a volatile write cache is present (VWC bit 0)."""
        return bool(self.vwc & 1)

    @property
    def smart_per_namespace(self) -> bool:
        """Return whether the SMART log may be read per namespace (LPA bit 0)."""
        return bool(self.lpa & 1)

    def max_data_transfer_bytes(self, min_page_size_bytes: int = 4096) -> int | None:
        """Return the largest transfer in bytes, or None for no limit (MDTS 0).

        MDTS is a power of two in units of CAP.MPSMIN, a controller register that an admin
        passthrough cannot read, so the caller states it (4 KiB on almost every controller).
        """
        if self.mdts == 0:
            return None
        return min_page_size_bytes << self.mdts

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentifyController:
        """Decode a 4096-byte Identify Controller data structure."""
        _check_length("IdentifyController", data, IDENTIFY_SIZE_BYTES)
        vid, ssvid = _IC_VID.unpack_from(data, 0)
        (rab, ieee, cmic, mdts, cntlid, ver, rtd3r, rtd3e, oaes, ctratt) = _IC_72.unpack_from(data, 72)
        (
            oacs,
            acl,
            aerl,
            frmw,
            lpa,
            elpe,
            npss,
            avscc,
            apsta,
            wctemp,
            cctemp,
            mtfa,
            hmpre,
            hmmin,
        ) = _IC_256.unpack_from(data, 256)
        (sanicap,) = _IC_SANICAP.unpack_from(data, 328)
        (
            sqes,
            cqes,
            maxcmd,
            nn,
            oncs,
            fuses,
            fna,
            vwc,
            awun,
            awupf,
            icsvscc,
            nwpc,
            acwu,
            ocfs,
            sgls,
            mnan,
        ) = _IC_512.unpack_from(data, 512)
        nqn_offset, nqn_len = _IC_SUBNQN
        subnqn = (
            data[nqn_offset : nqn_offset + nqn_len].split(b"\x00", 1)[0].decode("utf-8", errors="replace")
        )
        return cls(
            vid=vid,
            ssvid=ssvid,
            serial_number=_ascii(data, 4, 20),
            model_number=_ascii(data, 24, 40),
            firmware_revision=_ascii(data, 64, 8),
            rab=rab,
            ieee_oui=int.from_bytes(ieee, "little"),
            cmic=cmic,
            mdts=mdts,
            cntlid=cntlid,
            version=decode_version(ver),
            rtd3r_us=rtd3r,
            rtd3e_us=rtd3e,
            oaes=oaes,
            ctratt=ctratt,
            oacs=oacs,
            acl=acl,
            aerl=aerl,
            frmw=frmw,
            lpa=lpa,
            elpe=elpe,
            npss=npss,
            avscc=avscc,
            apsta=apsta,
            wctemp_k=wctemp,
            cctemp_k=cctemp,
            mtfa=mtfa,
            hmpre=hmpre,
            hmmin=hmmin,
            tnvmcap_bytes=_u128(data, 280),
            unvmcap_bytes=_u128(data, 296),
            sanicap=sanicap,
            sqes=sqes,
            cqes=cqes,
            maxcmd=maxcmd,
            nn=nn,
            oncs=oncs,
            fuses=fuses,
            fna=fna,
            vwc=vwc,
            awun=awun,
            awupf=awupf,
            icsvscc=icsvscc,
            nwpc=nwpc,
            acwu=acwu,
            ocfs=ocfs,
            sgls=sgls,
            mnan=mnan,
            subnqn=subnqn,
        )

    def to_bytes(self) -> bytes:
        """Encode the 4096-byte structure (undecoded fields zero), for fixtures."""
        buf = bytearray(IDENTIFY_SIZE_BYTES)
        try:
            _IC_VID.pack_into(buf, 0, self.vid, self.ssvid)
            _IC_72.pack_into(
                buf,
                72,
                self.rab,
                self.ieee_oui.to_bytes(3, "little"),
                self.cmic,
                self.mdts,
                self.cntlid,
                encode_version(self.version),
                self.rtd3r_us,
                self.rtd3e_us,
                self.oaes,
                self.ctratt,
            )
            _IC_256.pack_into(
                buf,
                256,
                self.oacs,
                self.acl,
                self.aerl,
                self.frmw,
                self.lpa,
                self.elpe,
                self.npss,
                self.avscc,
                self.apsta,
                self.wctemp_k,
                self.cctemp_k,
                self.mtfa,
                self.hmpre,
                self.hmmin,
            )
            _IC_SANICAP.pack_into(buf, 328, self.sanicap)
            _IC_512.pack_into(
                buf,
                512,
                self.sqes,
                self.cqes,
                self.maxcmd,
                self.nn,
                self.oncs,
                self.fuses,
                self.fna,
                self.vwc,
                self.awun,
                self.awupf,
                self.icsvscc,
                self.nwpc,
                self.acwu,
                self.ocfs,
                self.sgls,
                self.mnan,
            )
        except (struct.error, OverflowError) as exc:
            raise StructureError(f"IdentifyController: field out of range: {exc}") from exc
        _put_ascii(buf, 4, 20, self.serial_number, "IdentifyController.serial_number")
        _put_ascii(buf, 24, 40, self.model_number, "IdentifyController.model_number")
        _put_ascii(buf, 64, 8, self.firmware_revision, "IdentifyController.firmware_revision")
        _put_u128(buf, 280, self.tnvmcap_bytes, "IdentifyController.tnvmcap_bytes")
        _put_u128(buf, 296, self.unvmcap_bytes, "IdentifyController.unvmcap_bytes")
        nqn = self.subnqn.encode("utf-8")
        nqn_offset, nqn_len = _IC_SUBNQN
        if len(nqn) >= nqn_len:
            raise StructureError(f"IdentifyController.subnqn is longer than {nqn_len - 1} bytes")
        buf[nqn_offset : nqn_offset + len(nqn)] = nqn
        return bytes(buf)


class RelativePerformance(enum.IntEnum):
    """LBA format Relative Performance (RP, bits 25:24 of an LBA Format entry)."""

    BEST = 0
    BETTER = 1
    GOOD = 2
    DEGRADED = 3


@dataclass(frozen=True)
class LbaFormat:
    """One LBA Format entry of Identify Namespace: block size, metadata size, performance."""

    metadata_size_bytes: int
    lbads: int
    relative_performance: RelativePerformance

    @property
    def block_size_bytes(self) -> int:
        """Return the LBA data size in bytes (2^LBADS); 1 for an unused entry (LBADS 0)."""
        return 1 << self.lbads

    @property
    def supported(self) -> bool:
        """Return whether the entry describes a usable format (LBADS >= 9, i.e. >= 512 B)."""
        return self.lbads >= 9

    @classmethod
    def from_dword(cls, dword: int) -> LbaFormat:
        """Decode an LBA Format dword: MS 15:0, LBADS 23:16, RP 25:24."""
        return cls(
            metadata_size_bytes=dword & 0xFFFF,
            lbads=(dword >> 16) & 0xFF,
            relative_performance=RelativePerformance((dword >> 24) & 0b11),
        )

    def to_dword(self) -> int:
        """Encode the LBA Format dword."""
        if not (0 <= self.metadata_size_bytes <= 0xFFFF and 0 <= self.lbads <= 0xFF):
            raise StructureError(f"LbaFormat out of range: {self!r}")
        return self.metadata_size_bytes | (self.lbads << 16) | (int(self.relative_performance) << 24)


# Identify Namespace data structure (CNS 00h), NVM Command Set Spec 1.0 Figure 97.
_NS_HEAD = struct.Struct("<QQQBBBBBBBB")  # 0-31: NSZE NCAP NUSE NSFEAT NLBAF FLBAS MC DPC DPS NMIC RESCAP
_NS_LBAF_OFFSET = 128


@dataclass(frozen=True)
class IdentifyNamespace:
    """The Identify Namespace data structure (CNS 00h, 4096 bytes); main fields decoded."""

    nsze_blocks: int
    ncap_blocks: int
    nuse_blocks: int
    nsfeat: int
    nlbaf: int
    flbas: int
    mc: int
    dpc: int
    dps: int
    nmic: int
    rescap: int
    nvmcap_bytes: int
    nguid: bytes
    eui64: bytes
    lba_formats: tuple[LbaFormat, ...]

    @property
    def lba_format_count(self) -> int:
        """Return how many LBA formats the namespace reports (NLBAF is 0's based)."""
        return self.nlbaf + 1

    @property
    def formatted_lba_index(self) -> int:
        """Return the active LBA format index from FLBAS (bits 3:0, plus 6:5 past 16 formats)."""
        index = self.flbas & 0xF
        if self.lba_format_count > 16:
            index |= ((self.flbas >> 5) & 0b11) << 4
        return index

    @property
    def metadata_extended(self) -> bool:
        """Return whether metadata travels at the end of each LBA (FLBAS bit 4)."""
        return bool(self.flbas & 0x10)

    @property
    def active_lba_format(self) -> LbaFormat:
        """Return the LBA format the namespace is formatted with."""
        return self.lba_formats[self.formatted_lba_index]

    @property
    def block_size_bytes(self) -> int:
        """Return the active logical block size in bytes."""
        return self.active_lba_format.block_size_bytes

    @property
    def size_bytes(self) -> int:
        """Return the namespace size (NSZE x block size) in bytes."""
        return self.nsze_blocks * self.block_size_bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentifyNamespace:
        """Decode a 4096-byte Identify Namespace data structure."""
        _check_length("IdentifyNamespace", data, IDENTIFY_SIZE_BYTES)
        (nsze, ncap, nuse, nsfeat, nlbaf, flbas, mc, dpc, dps, nmic, rescap) = _NS_HEAD.unpack_from(data, 0)
        count = nlbaf + 1
        if count > MAX_LBA_FORMATS:
            raise StructureError(
                f"IdentifyNamespace: NLBAF {nlbaf} reports {count} LBA formats, more than {MAX_LBA_FORMATS}"
            )
        formats = tuple(
            LbaFormat.from_dword(int.from_bytes(data[off : off + 4], "little"))
            for off in range(_NS_LBAF_OFFSET, _NS_LBAF_OFFSET + 4 * count, 4)
        )
        namespace = cls(
            nsze_blocks=nsze,
            ncap_blocks=ncap,
            nuse_blocks=nuse,
            nsfeat=nsfeat,
            nlbaf=nlbaf,
            flbas=flbas,
            mc=mc,
            dpc=dpc,
            dps=dps,
            nmic=nmic,
            rescap=rescap,
            nvmcap_bytes=_u128(data, 48),
            nguid=bytes(data[104:120]),
            eui64=bytes(data[120:128]),
            lba_formats=formats,
        )
        if namespace.formatted_lba_index >= count:
            raise StructureError(
                f"IdentifyNamespace: FLBAS selects LBA format {namespace.formatted_lba_index} of {count}"
            )
        return namespace

    def to_bytes(self) -> bytes:
        """Encode the 4096-byte structure (undecoded fields zero), for fixtures."""
        if len(self.lba_formats) != self.nlbaf + 1:
            raise StructureError(
                f"IdentifyNamespace: NLBAF {self.nlbaf} needs {self.nlbaf + 1} LBA formats, "
                f"got {len(self.lba_formats)}"
            )
        buf = bytearray(IDENTIFY_SIZE_BYTES)
        try:
            _NS_HEAD.pack_into(
                buf,
                0,
                self.nsze_blocks,
                self.ncap_blocks,
                self.nuse_blocks,
                self.nsfeat,
                self.nlbaf,
                self.flbas,
                self.mc,
                self.dpc,
                self.dps,
                self.nmic,
                self.rescap,
            )
        except struct.error as exc:
            raise StructureError(f"IdentifyNamespace: field out of range: {exc}") from exc
        _put_u128(buf, 48, self.nvmcap_bytes, "IdentifyNamespace.nvmcap_bytes")
        if len(self.nguid) != 16 or len(self.eui64) != 8:
            raise StructureError("IdentifyNamespace: NGUID must be 16 bytes and EUI64 8 bytes")
        buf[104:120] = self.nguid
        buf[120:128] = self.eui64
        for index, lba_format in enumerate(self.lba_formats):
            offset = _NS_LBAF_OFFSET + 4 * index
            buf[offset : offset + 4] = lba_format.to_dword().to_bytes(4, "little")
        return bytes(buf)
