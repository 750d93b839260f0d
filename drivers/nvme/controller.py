"""A generic NVMe controller driver over a passthrough transport: admin and NVM I/O commands.

Implements `drivers.protocols.NvmeController`. Standard library only: this module also runs
inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from typing import TypeVar

from drivers.errors import DeviceCommandError, InstrumentError, ProtocolError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import (
    NSID_ALL,
    CommitAction,
    Completion,
    DsmRange,
    NvmeCommand,
    SanitizeAction,
    SecureErase,
    SelfTestCode,
    ThresholdType,
)
from drivers.nvme.logs import (
    ErrorLogEntry,
    FirmwareSlotLog,
    OcpSmartExtendedLog,
    SanitizeStatusLog,
    SelfTestLog,
    TelemetryHeader,
    decode_error_log,
)
from drivers.nvme.structures import (
    IdentifyController,
    IdentifyNamespace,
    SmartLog,
    StructureError,
)
from drivers.transport.nvme_passthrough import NvmePassthrough

_T = TypeVar("_T")

# Command Specific statuses (SCT 1) with which Firmware Commit reports a committed image that
# waits for a reset to run: the commit worked, the activation is the caller's next step.
_COMMIT_NEEDS_RESET = {
    0x0B: "conventional reset",
    0x10: "NVM subsystem reset",
    0x11: "controller level reset",
}
_FIRMWARE_CHUNK_BYTES = 4096
_TELEMETRY_CHUNK_BYTES = 4096


class FirmwareActivation(enum.Enum):
    """What a Firmware Commit left to do before the new image runs."""

    DONE = "done"
    CONVENTIONAL_RESET = "conventional reset"
    NVM_SUBSYSTEM_RESET = "NVM subsystem reset"
    CONTROLLER_RESET = "controller level reset"


class NvmeDriver:
    """Identify, logs, features, format, sanitize, self-test, firmware and I/O of one controller.

    The driver numbers its commands (CID) so that a completion for another command, a sign
    of a confused transport, is caught instead of decoded as if it were ours.
    """

    def __init__(self, transport: NvmePassthrough) -> None:
        self._transport = transport
        self.address: str = transport.address
        self._next_cid = 0
        self._identity: IdentifyController | None = None
        # Bytes per logical block per namespace, read from Identify Namespace on first I/O and
        # forgotten when a format or sanitize may have changed it.
        self._lba_bytes: dict[int, int] = {}

    def admin_command(self, cmd: NvmeCommand, data: bytes | None = None) -> bytes:
        """Submit an admin command and return its data; raise DeviceCommandError on error status."""
        cmd = self._numbered(cmd)
        completion, payload = self._transport.admin(cmd, data)
        self._check(cmd, completion, payload)
        return payload

    def admin_result(self, cmd: NvmeCommand, data: bytes | None = None) -> int:
        """Submit an admin command and return completion DW0 (e.g. a Get Features value)."""
        cmd = self._numbered(cmd)
        completion, payload = self._transport.admin(cmd, data)
        self._check(cmd, completion, payload)
        return completion.result

    def io_command(self, cmd: NvmeCommand, data: bytes | None = None) -> bytes:
        """Submit an I/O command and return its data; raise DeviceCommandError on error status."""
        cmd = self._numbered(cmd)
        completion, payload = self._transport.io(cmd, data)
        self._check(cmd, completion, payload, admin=False)
        return payload

    def identify_controller(self) -> IdentifyController:
        """Return the decoded Identify Controller data structure (CNS 01h)."""
        payload = self.admin_command(cmds.identify_controller())
        return self._decode(IdentifyController.from_bytes, payload)

    def identify_namespace(self, nsid: int = 1) -> IdentifyNamespace:
        """Return the decoded Identify Namespace data structure (CNS 00h) of `nsid`."""
        payload = self.admin_command(cmds.identify_namespace(nsid))
        return self._decode(IdentifyNamespace.from_bytes, payload)

    def smart_log(self, nsid: int = NSID_ALL) -> SmartLog:
        """Return the decoded SMART / Health Information log page (LID 02h)."""
        payload = self.admin_command(cmds.smart_log(nsid))
        return self._decode(SmartLog.from_bytes, payload)

    def get_temperature_threshold(
        self,
        sensor: int = cmds.TEMPERATURE_SENSOR_COMPOSITE,
        threshold_type: ThresholdType = ThresholdType.OVER,
    ) -> int:
        """Return a temperature threshold in kelvin (Get Features FID 04h)."""
        result = self.admin_result(cmds.get_temperature_threshold(sensor, threshold_type))
        return cmds.temperature_threshold_k(result)

    def set_temperature_threshold(
        self,
        threshold_k: int,
        sensor: int = cmds.TEMPERATURE_SENSOR_COMPOSITE,
        threshold_type: ThresholdType = ThresholdType.OVER,
        save: bool = False,
    ) -> None:
        """Set a temperature threshold in kelvin (Set Features FID 04h)."""
        self.admin_result(cmds.set_temperature_threshold(threshold_k, sensor, threshold_type, save=save))

    def active_namespaces(self) -> list[int]:
        """Return the active namespace IDs (Identify CNS 02h), ascending."""
        found: list[int] = []
        start = 0
        while True:
            payload = self.admin_command(cmds.identify_active_namespaces(start))
            ids = [int.from_bytes(payload[i : i + 4], "little") for i in range(0, len(payload), 4)]
            page = [nsid for nsid in ids if nsid]
            found.extend(page)
            # A full page of 1024 IDs may continue past its last entry; a controller that does
            # not move forward would otherwise keep this loop going.
            if len(page) < len(ids) or not page or page[-1] <= start:
                return found
            start = page[-1]

    def error_log(self, entries: int | None = None) -> list[ErrorLogEntry]:
        """Return the Error Information log (LID 01h), newest first, empty slots dropped.

        `entries` defaults to every entry the controller keeps (Identify Controller ELPE + 1).
        """
        count = entries if entries is not None else self._controller_identity().elpe + 1
        payload = self.admin_command(cmds.error_log(count))
        return [entry for entry in self._decode(decode_error_log, payload) if entry.valid]

    def firmware_slot_log(self) -> FirmwareSlotLog:
        """Return the Firmware Slot Information log (LID 03h)."""
        payload = self.admin_command(cmds.firmware_slot_log())
        return self._decode(FirmwareSlotLog.from_bytes, payload)

    def self_test_log(self, nsid: int = NSID_ALL) -> SelfTestLog:
        """Return the Device Self-test log (LID 06h)."""
        payload = self.admin_command(cmds.self_test_log(nsid))
        return self._decode(SelfTestLog.from_bytes, payload)

    def telemetry_host_header(self, create: bool = False) -> TelemetryHeader:
        """Return the Telemetry Host-Initiated header (LID 07h); `create` takes a new snapshot."""
        payload = self.admin_command(cmds.telemetry_host_log(create=create))
        return self._decode(TelemetryHeader.from_bytes, payload)

    def telemetry_host_log(self, data_area: int = 3) -> bytes:
        """Capture a new Telemetry Host-Initiated log through `data_area` (1-4), header included.

        Reads in 4 KiB pieces so no transfer exceeds any controller's MDTS.
        """
        first = self.admin_command(cmds.telemetry_host_log(create=True))
        total = self._decode(TelemetryHeader.from_bytes, first).size_bytes(data_area)
        pieces = [first]
        offset = len(first)
        while offset < total:
            length = min(_TELEMETRY_CHUNK_BYTES, total - offset)
            piece = self.admin_command(cmds.telemetry_host_log(offset_bytes=offset, length_bytes=length))
            pieces.append(piece)
            offset += length
        return b"".join(pieces)

    def sanitize_status(self) -> SanitizeStatusLog:
        """Return the Sanitize Status log (LID 81h)."""
        payload = self.admin_command(cmds.sanitize_status_log())
        return self._decode(SanitizeStatusLog.from_bytes, payload)

    def ocp_smart_extended_log(self, uuid_index: int = 0) -> OcpSmartExtendedLog:
        """Return the OCP SMART / Health Information Extended log (LID C0h).

        Raises ProtocolError when the page lacks the OCP GUID: LID C0h is vendor-specific and
        a non-OCP drive may answer it with a page of its own.
        """
        payload = self.admin_command(cmds.ocp_smart_extended_log(uuid_index))
        log = self._decode(OcpSmartExtendedLog.from_bytes, payload)
        if not log.guid_valid:
            raise ProtocolError(
                self.address,
                f"log page C0h carries GUID {log.log_page_guid:032X}, not the OCP SMART extended GUID",
            )
        return log

    def lba_format_index(self, block_size_bytes: int, metadata_size_bytes: int = 0, nsid: int = 1) -> int:
        """Return the index of the LBA format with this block and metadata size (for Format NVM)."""
        namespace = self.identify_namespace(nsid)
        for index, lba_format in enumerate(namespace.lba_formats):
            if (
                lba_format.block_size_bytes == block_size_bytes
                and lba_format.metadata_size_bytes == metadata_size_bytes
            ):
                return index
        offered = ", ".join(
            f"{f.block_size_bytes}+{f.metadata_size_bytes}" for f in namespace.lba_formats if f.supported
        )
        raise InstrumentError(
            self.address,
            f"namespace {nsid} offers no {block_size_bytes}+{metadata_size_bytes} B LBA format ({offered})",
        )

    def format_nvm(
        self,
        nsid: int = 1,
        lbaf: int | None = None,
        ses: SecureErase = SecureErase.NONE,
    ) -> IdentifyNamespace:
        """Format a namespace (Format NVM) and return its Identify Namespace afterwards.

        `lbaf` defaults to the namespace's current LBA format; `ses` erases user data
        (USER_DATA) or the keys (CRYPTOGRAPHIC) as well.
        """
        if lbaf is None:
            lbaf = self.identify_namespace(1 if nsid == NSID_ALL else nsid).formatted_lba_index
        self._lba_bytes.clear()
        self.admin_command(cmds.format_nvm(nsid, lbaf, ses))
        return self.identify_namespace(1 if nsid == NSID_ALL else nsid)

    def sanitize(
        self,
        action: SanitizeAction,
        *,
        allow_unrestricted_exit: bool = False,
        overwrite_passes: int = 1,
        no_deallocate: bool = False,
        overwrite_pattern: int = 0,
    ) -> None:
        """Start a sanitize operation; poll `sanitize_status()` for its progress."""
        self._lba_bytes.clear()
        self.admin_command(
            cmds.sanitize(
                action,
                allow_unrestricted_exit=allow_unrestricted_exit,
                overwrite_passes=overwrite_passes,
                no_deallocate=no_deallocate,
                overwrite_pattern=overwrite_pattern,
            )
        )

    def start_self_test(self, code: SelfTestCode = SelfTestCode.SHORT, nsid: int = NSID_ALL) -> None:
        """Start a device self-test; poll `self_test_log()` for its progress and result."""
        self.admin_command(cmds.device_self_test(code, nsid))

    def abort_self_test(self) -> None:
        """Abort the device self-test in progress."""
        self.admin_command(cmds.device_self_test(SelfTestCode.ABORT))

    def firmware_download(self, image: bytes, chunk_bytes: int = _FIRMWARE_CHUNK_BYTES) -> None:
        """Transfer a firmware image in `chunk_bytes` pieces (Firmware Image Download).

        Identify Controller FWUG states the granularity a controller needs; 4 KiB suits the
        common case and every MDTS.
        """
        if not image or len(image) % 4:
            raise ValueError(f"firmware image of {len(image)} bytes is not whole dwords")
        if chunk_bytes <= 0 or chunk_bytes % 4:
            raise ValueError(f"firmware chunk of {chunk_bytes} bytes is not whole dwords")
        for offset in range(0, len(image), chunk_bytes):
            piece = image[offset : offset + chunk_bytes]
            self.admin_command(cmds.firmware_image_download(offset, len(piece)), piece)

    def firmware_commit(self, slot: int, action: CommitAction) -> FirmwareActivation:
        """Commit a downloaded image to `slot` and say what reset, if any, activation waits for."""
        try:
            self.admin_command(cmds.firmware_commit(slot, action))
        except DeviceCommandError as exc:
            sct, sc = (exc.status >> 8) & 0x7, exc.status & 0xFF
            if sct == 1 and sc in _COMMIT_NEEDS_RESET:
                return FirmwareActivation(_COMMIT_NEEDS_RESET[sc])
            raise
        return FirmwareActivation.DONE

    def read(self, nsid: int, slba: int, blocks: int, fua: bool = False) -> bytes:
        """Read `blocks` logical blocks from `slba` of namespace `nsid` (Read)."""
        return self.io_command(cmds.read(nsid, slba, blocks, self._block_bytes(nsid), fua=fua))

    def write(self, nsid: int, slba: int, data: bytes, fua: bool = False) -> None:
        """Write whole logical blocks of `data` from `slba` of namespace `nsid` (Write)."""
        lba_bytes = self._block_bytes(nsid)
        if not data or len(data) % lba_bytes:
            raise ValueError(f"write: {len(data)} bytes is not whole {lba_bytes}-byte blocks")
        self.io_command(cmds.write(nsid, slba, len(data) // lba_bytes, lba_bytes, fua=fua), data)

    def flush(self, nsid: int) -> None:
        """Commit the volatile write cache of namespace `nsid` to media (Flush)."""
        self.io_command(cmds.flush(nsid))

    def write_zeroes(self, nsid: int, slba: int, blocks: int, deallocate: bool = False) -> None:
        """Zero `blocks` logical blocks from `slba` without sending data (Write Zeroes)."""
        self.io_command(cmds.write_zeroes(nsid, slba, blocks, deallocate=deallocate))

    def deallocate(self, nsid: int, ranges: Iterable[DsmRange | tuple[int, int]]) -> None:
        """Deallocate (trim) ranges of (starting LBA, blocks) (Dataset Management, AD set)."""
        items = [r if isinstance(r, DsmRange) else DsmRange(slba=r[0], blocks=r[1]) for r in ranges]
        self.io_command(cmds.dataset_management(nsid, items, deallocate=True), cmds.dsm_payload(items))

    def prepare_power_off(self) -> None:
        """Tell the controller its power is about to go, through the transport (implements PowerOffNotice).

        The controller flushes its volatile write cache and shuts down (CC.SHN), so the power-off
        that follows is not an unsafe shutdown. Raise InstrumentError if the transport has no way
        to send the notification.
        """
        notify = getattr(self._transport, "shutdown_notification", None)
        if notify is None:
            raise InstrumentError(
                self.address,
                f"{type(self._transport).__name__} cannot send a shutdown notification; "
                "its power-off would be an unsafe shutdown",
            )
        notify()

    def after_power_on(self) -> None:
        """Find the controller again after a power-off (the transport's bus rescan, if it has one).

        Forget what the driver read from it: a power cycle may have activated new firmware.
        """
        found = getattr(self._transport, "after_power_on", None)
        if found is not None:
            found()
        self._identity = None
        self._lba_bytes.clear()

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _controller_identity(self) -> IdentifyController:
        if self._identity is None:
            self._identity = self.identify_controller()
        return self._identity

    def _block_bytes(self, nsid: int) -> int:
        if nsid not in self._lba_bytes:
            namespace = self.identify_namespace(nsid)
            lba_format = namespace.active_lba_format
            size = lba_format.block_size_bytes
            if lba_format.metadata_size_bytes:
                if not namespace.metadata_extended:
                    raise InstrumentError(
                        self.address,
                        f"namespace {nsid} keeps {lba_format.metadata_size_bytes} B of metadata per block "
                        "in a separate buffer, which this driver does not transfer",
                    )
                size += lba_format.metadata_size_bytes
            self._lba_bytes[nsid] = size
        return self._lba_bytes[nsid]

    def _numbered(self, cmd: NvmeCommand) -> NvmeCommand:
        cid = self._next_cid
        self._next_cid = (cid + 1) & 0xFFFF
        return dataclasses.replace(cmd, cid=cid)

    def _check(self, cmd: NvmeCommand, completion: Completion, payload: bytes, admin: bool = True) -> None:
        what = cmds.opcode_name(cmd.opcode, admin=admin)
        if completion.cid != cmd.cid:
            raise ProtocolError(
                self.address,
                f"{what}: completion carries CID {completion.cid}, command was CID {cmd.cid}",
            )
        if not completion.ok:
            retry = "; do not retry" if completion.dnr else ""
            raise DeviceCommandError(
                self.address,
                f"{what} failed: {completion.status_text}{retry}",
                status=completion.status,
            )
        expected = cmd.data_len if cmd.transfer is cmds.DataTransfer.CONTROLLER_TO_HOST else 0
        if len(payload) != expected:
            raise ProtocolError(self.address, f"{what}: expected {expected} data bytes, got {len(payload)}")

    def _decode(self, decoder: Callable[[bytes], _T], payload: bytes) -> _T:
        try:
            return decoder(payload)
        except StructureError as exc:
            raise ProtocolError(self.address, str(exc)) from exc
