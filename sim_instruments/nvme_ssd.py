"""A simulated NVMe SSD controller that answers raw 64-byte commands, and its passthrough link.

The controller parses submission queue entries and builds completion entries and data pages
itself, at the offsets of the NVM Express Base Specification 2.0 and NVM Command Set
Specification 1.0, without the driver's encoders: a layout mistake on either side then shows
up as a disagreement in tests instead of cancelling out.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields

from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme.commands import Completion, DataTransfer, NvmeCommand

_SQE_BYTES = 64
_IDENTIFY_BYTES = 4096
_SMART_BYTES = 512
_NSID_ALL = 0xFFFFFFFF
_SENSOR_COUNT = 8
_THRESHOLD_ABSENT_K = 0xFFFF  # the spec's default over threshold for a temperature sensor

# Opcodes, CNS, LID and FID values this controller understands (Base Spec 2.0, Figs 28, 273).
_OPC_GET_LOG_PAGE = 0x02
_OPC_IDENTIFY = 0x06
_OPC_SET_FEATURES = 0x09
_OPC_GET_FEATURES = 0x0A
_CNS_NAMESPACE = 0x00
_CNS_CONTROLLER = 0x01
_LID_SMART = 0x02
_FID_TEMPERATURE_THRESHOLD = 0x04

# Status field values (SCT << 8 | SC), with DNR (bit 14) where a retry cannot succeed.
_SUCCESS = 0x0000
_DNR = 0x4000
_INVALID_OPCODE = 0x0001 | _DNR
_INVALID_FIELD = 0x0002 | _DNR
_INVALID_NAMESPACE = 0x000B | _DNR

_CRITICAL_WARNING_TEMPERATURE = 1 << 1
_ADMIN_QID = 0
_IO_QID = 1
_QUEUE_DEPTH = 64


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


@dataclass
class _Outcome:
    status: int = _SUCCESS
    result: int = 0
    data: bytes = b""


class SimNvmeController:
    """A simulated NVMe controller: raw SQE bytes in, (CQE bytes, data bytes) out.

    Supports Identify (CNS 00h namespace 1, CNS 01h controller), Get Log Page LID 02h (SMART)
    and Get/Set Features FID 04h (temperature thresholds). Everything else completes with
    Invalid Command Opcode or Invalid Field in Command, as a real controller would.
    """

    def __init__(self, identity: SimNvmeIdentity, health: Callable[[], SimHealth]) -> None:
        self.identity = identity
        self._health = health
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

    def submit_admin(self, sqe: bytes, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Execute one admin submission queue entry; return (16-byte CQE, data to the host)."""
        return self._submit(_ADMIN_QID, sqe, self._execute_admin)

    def submit_io(self, sqe: bytes, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Execute one I/O submission queue entry; no I/O command is implemented yet."""
        return self._submit(_IO_QID, sqe, lambda _opcode, _nsid, _cdw: _Outcome(_INVALID_OPCODE))

    def _submit(
        self,
        qid: int,
        sqe: bytes,
        execute: Callable[[int, int, tuple[int, ...]], _Outcome],
    ) -> tuple[bytes, bytes]:
        if not self._present:
            raise InstrumentTimeout(self.name, "no completion: the drive dropped off the bus")
        if len(sqe) != _SQE_BYTES:
            raise ValueError(f"{self.name}: a submission queue entry is 64 bytes, got {len(sqe)}")
        opcode, _flags, cid, nsid = struct.unpack_from("<BBHI", sqe, 0)
        cdw = struct.unpack_from("<6I", sqe, 40)  # CDW10..CDW15
        outcome = execute(opcode, nsid, cdw)
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

    def _execute_admin(self, opcode: int, nsid: int, cdw: tuple[int, ...]) -> _Outcome:
        if opcode == _OPC_IDENTIFY:
            return self._identify(nsid, cdw)
        if opcode == _OPC_GET_LOG_PAGE:
            return self._get_log_page(nsid, cdw)
        if opcode == _OPC_GET_FEATURES:
            return self._get_features(cdw)
        if opcode == _OPC_SET_FEATURES:
            return self._set_features(cdw)
        return _Outcome(_INVALID_OPCODE)

    def _identify(self, nsid: int, cdw: tuple[int, ...]) -> _Outcome:
        cns = cdw[0] & 0xFF
        if cns == _CNS_CONTROLLER:
            return _Outcome(data=self._identify_controller_page())
        if cns == _CNS_NAMESPACE:
            if nsid != 1:
                return _Outcome(_INVALID_NAMESPACE)
            return _Outcome(data=self._identify_namespace_page())
        return _Outcome(_INVALID_FIELD)

    def _get_log_page(self, nsid: int, cdw: tuple[int, ...]) -> _Outcome:
        lid = cdw[0] & 0xFF
        numd = ((cdw[0] >> 16) & 0xFFFF) | ((cdw[1] & 0xFFFF) << 16)  # NUMDL | NUMDU
        length = (numd + 1) * 4
        offset = cdw[2] | (cdw[3] << 32)  # LPOL | LPOU
        if lid != _LID_SMART:
            return _Outcome(_INVALID_FIELD)
        # LPA bit 0 is clear in Identify Controller: only the controller-wide page exists.
        if nsid not in (0, _NSID_ALL):
            return _Outcome(_INVALID_FIELD)
        if offset % 4 or offset >= _SMART_BYTES:
            return _Outcome(_INVALID_FIELD)
        page = self._smart_page()
        return _Outcome(data=page[offset : offset + length].ljust(length, b"\x00"))

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

    def _get_features(self, cdw: tuple[int, ...]) -> _Outcome:
        fid = cdw[0] & 0xFF
        sel = (cdw[0] >> 8) & 0b111
        if fid != _FID_TEMPERATURE_THRESHOLD or sel > 3:
            return _Outcome(_INVALID_FIELD)
        if sel == 3:
            return _Outcome(result=0b101)  # capabilities: saveable, changeable, not per-NS
        keys = self._threshold_key(cdw[1], allow_all=False)
        if keys is None:
            return _Outcome(_INVALID_FIELD)
        table = (self._thresholds_k, self._default_thresholds_k, self._saved_thresholds_k)[sel]
        thsel, tmpsel = keys[0]
        return _Outcome(result=table[keys[0]] | (tmpsel << 16) | (thsel << 20))

    def _set_features(self, cdw: tuple[int, ...]) -> _Outcome:
        fid = cdw[0] & 0xFF
        save = bool(cdw[0] >> 31)
        if fid != _FID_TEMPERATURE_THRESHOLD:
            return _Outcome(_INVALID_FIELD)
        keys = self._threshold_key(cdw[1], allow_all=True)
        if keys is None:
            return _Outcome(_INVALID_FIELD)
        for key in keys:
            self._thresholds_k[key] = cdw[1] & 0xFFFF
            if save:
                self._saved_thresholds_k[key] = cdw[1] & 0xFFFF
        return _Outcome()

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
        page = bytearray(_IDENTIFY_BYTES)
        major, minor, tertiary = ident.version
        struct.pack_into("<HH", page, 0, ident.vid, ident.ssvid)
        page[4:24] = ident.serial.encode("ascii").ljust(20, b" ")
        page[24:64] = ident.model.encode("ascii").ljust(40, b" ")
        page[64:72] = ident.firmware.encode("ascii").ljust(8, b" ")
        page[72] = 6  # RAB
        page[73:76] = ident.ieee_oui.to_bytes(3, "little")
        page[77] = ident.mdts
        struct.pack_into("<H", page, 78, ident.cntlid)
        struct.pack_into("<I", page, 80, (major << 16) | (minor << 8) | tertiary)
        struct.pack_into("<H", page, 256, 0x0006)  # OACS: Format NVM, Firmware Download/Commit
        page[258] = 3  # ACL
        page[259] = 3  # AERL
        page[262] = 63  # ELPE
        struct.pack_into("<HH", page, 266, ident.wctemp_k, ident.cctemp_k)
        page[280:296] = ident.capacity_bytes.to_bytes(16, "little")  # TNVMCAP
        struct.pack_into("<I", page, 328, ident.sanicap)
        page[512] = 0x66  # SQES: 64-byte entries
        page[513] = 0x44  # CQES: 16-byte entries
        struct.pack_into("<I", page, 516, 1)  # NN
        page[525] = int(ident.volatile_write_cache)
        nqn = f"nqn.2024-01.io.qualify.sim:nvme:{ident.serial}".encode("ascii")
        page[768 : 768 + len(nqn)] = nqn
        struct.pack_into("<H", page, 2048, 2500)  # power state 0 max power: 25 W (centiwatts)
        return bytes(page)

    def _identify_namespace_page(self) -> bytes:
        ident = self.identity
        page = bytearray(_IDENTIFY_BYTES)
        blocks = ident.capacity_bytes // ident.active_block_size_bytes
        struct.pack_into("<QQQ", page, 0, blocks, blocks, blocks)  # NSZE, NCAP, NUSE
        page[25] = len(ident.lba_sizes_bytes) - 1  # NLBAF is 0's based
        page[26] = ident.active_lba_index  # FLBAS bits 3:0
        page[48:64] = ident.capacity_bytes.to_bytes(16, "little")  # NVMCAP
        digest = hashlib.sha256(ident.serial.encode("ascii")).digest()
        page[104:120] = digest[:16]  # NGUID
        page[120:128] = digest[16:24]  # EUI64
        for index, size in enumerate(ident.lba_sizes_bytes):
            lbads = size.bit_length() - 1
            relative_performance = 0 if size == 4096 else 2  # best at 4 KiB, good otherwise
            struct.pack_into("<I", page, 128 + 4 * index, (lbads << 16) | (relative_performance << 24))
        return bytes(page)


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
