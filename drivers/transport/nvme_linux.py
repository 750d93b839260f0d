"""NVMe passthrough over the Linux kernel's NVMe ioctls (`/dev/nvmeN`, `/dev/ngNnM`, `/dev/nvmeNnM`).

The command travels as the kernel's 72-byte `struct nvme_passthru_cmd` (include/uapi/linux/
nvme_ioctl.h); the kernel builds the submission queue entry (its own CID, PRPs) and returns the
NVMe status as the ioctl's value. Around a power-off the transport removes the controller's PCI
function through sysfs, which makes the kernel send the shutdown notification, and rescans the
PCI bus after power-on. Standard library only: this module also runs inside a minimal Linux
guest with a bare python3.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme.commands import LONG_RUNNING_ADMIN_OPCODES, Completion, DataTransfer, NvmeCommand

PASSTHRU_CMD = struct.Struct("<BBHIIIQQII6III")
"""struct nvme_passthru_cmd: opcode, flags, rsvd1, nsid, cdw2, cdw3, metadata, addr,
metadata_len, data_len, cdw10-cdw15, timeout_ms, result."""
PASSTHRU_CMD_SIZE_BYTES = 72
_RESULT_OFFSET = 68


def _iowr(kind: str, number: int, size: int) -> int:
    # The kernel's _IOWR(): direction read|write (3) in bits 31:30, size 29:16, type 15:8, nr 7:0.
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


NVME_IOCTL_ID = (ord("N") << 8) | 0x40
"""_IO('N', 0x40): returns the namespace ID a namespace device node stands for."""
NVME_IOCTL_ADMIN_CMD = _iowr("N", 0x41, PASSTHRU_CMD_SIZE_BYTES)
NVME_IOCTL_IO_CMD = _iowr("N", 0x43, PASSTHRU_CMD_SIZE_BYTES)

# Statuses the Linux host driver sets itself instead of a controller (drivers/nvme/host/nvme.h):
# the command never completed on the device.
_HOST_PATH_ERROR = 0x370
_HOST_ABORTED = 0x371

# nvme-cli gives Format NVM 600 s as well.
DEFAULT_LONG_TIMEOUT_MS = 600_000

_TIMEOUT_ERRNOS = {errno.EINTR, errno.ETIMEDOUT, errno.EAGAIN}
_GONE_ERRNOS = {errno.ENODEV, errno.ENXIO, errno.EIO, errno.ENOENT}
_CONTROLLER_NODE = re.compile(r"^nvme(\d+)$")
_NAMESPACE_NODE = re.compile(r"^(?:nvme|ng)(\d+)n(\d+)$")

_SUBSYSTEM_DIR = re.compile(r"^nvme-subsys\d+$")
# After power-on a drive needs a few seconds before its PCIe link trains; until then a rescan
# finds nothing, so the rescan is repeated until the controller is back or this much time passed.
DEFAULT_RESCAN_TIMEOUT_S = 30.0
_RESCAN_POLL_S = 0.5

Ioctl = Callable[[int, int, Any, bool], int]
Opener = Callable[[str], int]
Closer = Callable[[int], None]
SysfsWriter = Callable[[str, str], None]


def _open_rdwr(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)


def _write_sysfs(path: str, value: str) -> None:
    with open(path, "w") as attribute:
        attribute.write(value)


def pack_passthru(cmd: NvmeCommand, addr: int, timeout_ms: int = 0) -> bytes:
    """Encode `cmd` as the 72-byte `struct nvme_passthru_cmd` with its data buffer at `addr`.

    The kernel rejects a non-zero `flags` and assigns the CID, PRPs and metadata pointer
    itself, so only opcode, NSID, CDW2/3, CDW10-15 and the data length come from `cmd`.
    """
    if cmd.fuse or cmd.psdt:
        raise ValueError("pack_passthru: the Linux passthrough ioctl accepts no FUSE or PSDT flags")
    return PASSTHRU_CMD.pack(
        cmd.opcode,
        0,
        0,
        cmd.nsid,
        cmd.cdw2,
        cmd.cdw3,
        0,
        addr if cmd.data_len else 0,
        0,
        cmd.data_len,
        cmd.cdw10,
        cmd.cdw11,
        cmd.cdw12,
        cmd.cdw13,
        cmd.cdw14,
        cmd.cdw15,
        timeout_ms,
        0,
    )


def passthru_result(raw: bytes | bytearray) -> int:
    """Return the completion DW0 the kernel wrote into a passthrough struct's `result` field."""
    if len(raw) != PASSTHRU_CMD_SIZE_BYTES:
        raise ValueError(f"passthru_result: expected {PASSTHRU_CMD_SIZE_BYTES} bytes, got {len(raw)}")
    return int.from_bytes(bytes(raw[_RESULT_OFFSET : _RESULT_OFFSET + 4]), "little")


class LinuxNvmeTransport:
    """One NVMe controller through the Linux passthrough ioctls (implements NvmePassthrough).

    `path` is a controller character device (`/dev/nvme0`), a generic namespace character
    device (`/dev/ng0n1`) or a namespace block device (`/dev/nvme0n1`). Admin commands go
    through `path`; the kernel routes them to the controller whichever node it is. I/O
    commands need the node of their namespace: on a namespace node, its own NSID; on the
    controller node, the sibling namespace node whose NVME_IOCTL_ID matches the command's NSID
    (the `nN` in a node's name is an instance number, not always the NSID).

    `timeout_ms` bounds each command (0: the kernel's default, 60 s admin and 30 s I/O);
    Format NVM and Firmware Commit get `long_timeout_ms` instead.

    `ioctl`, `opener` and `closer` stand in for fcntl.ioctl, os.open and os.close, so the
    command-to-struct mapping is testable without a kernel; `sysfs_root`, `sysfs_write`,
    `sleep` and `monotonic` do the same for the power-off and power-on paths.
    """

    def __init__(
        self,
        path: str,
        *,
        timeout_ms: int = 0,
        long_timeout_ms: int = DEFAULT_LONG_TIMEOUT_MS,
        ioctl: Ioctl = fcntl.ioctl,
        opener: Opener = _open_rdwr,
        closer: Closer = os.close,
        namespace_nodes: Callable[[str], list[str]] | None = None,
        sysfs_root: str = "/sys",
        sysfs_write: SysfsWriter = _write_sysfs,
        rescan_timeout_s: float = DEFAULT_RESCAN_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address: str = path
        self._timeout_ms = timeout_ms
        self._long_timeout_ms = long_timeout_ms
        self._ioctl = ioctl
        self._opener = opener
        self._closer = closer
        self._namespace_nodes = namespace_nodes or _sibling_namespace_nodes
        self._sysfs_root = sysfs_root
        self._sysfs_write = sysfs_write
        self._rescan_timeout_s = rescan_timeout_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._pci_function: str | None = None
        self._removed = False
        self._fd: int | None = None
        self._io_fds: dict[int, int] = {}
        self._own_nsid: int | None = None
        self._open_nodes()

    @property
    def nsid(self) -> int | None:
        """Return the namespace ID of `path` when it is a namespace node, else None."""
        return self._own_nsid

    def admin(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one admin command through NVME_IOCTL_ADMIN_CMD."""
        return self._submit(self._require_fd(), NVME_IOCTL_ADMIN_CMD, cmd, data)

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one I/O command through NVME_IOCTL_IO_CMD on the node of `cmd.nsid`."""
        return self._submit(self._io_fd(cmd.nsid), NVME_IOCTL_IO_CMD, cmd, data)

    def close(self) -> None:
        """Close every device node this transport opened; later commands raise InstrumentError."""
        fds = set(self._io_fds.values())
        if self._fd is not None:
            fds.add(self._fd)
        self._fd = None
        self._io_fds.clear()
        for fd in sorted(fds):
            # A node that vanished with its device may refuse the close; there is nothing to undo.
            with contextlib.suppress(OSError):
                self._closer(fd)

    def pci_function(self) -> str:
        """Return the sysfs directory of the PCI function behind this controller.

        Found from `/sys/class/nvme/nvmeX/device`; a namespace node leads to its controller
        through its own `device` link (a multipath namespace, through its subsystem, when one
        controller serves it).
        """
        controller = self._controller_dir()
        function = os.path.realpath(os.path.join(controller, "device"))
        if not os.path.isfile(os.path.join(function, "remove")):
            raise InstrumentError(
                self.address, f"{controller} is not backed by a removable PCI function ({function})"
            )
        return function

    def shutdown_notification(self) -> None:
        """Remove the controller's PCI function (sysfs `remove`): the kernel shuts it down first.

        On removal the Linux NVMe driver sets CC.SHN and waits for the controller to report the
        shutdown complete, which is how a host powers a drive off cleanly. The device nodes go
        with it; `after_power_on()` finds the controller again. Needs root.
        """
        function = self.pci_function()
        self._pci_function = function
        self.close()  # the nodes die with the device; an open one would delay its removal
        remove = os.path.join(function, "remove")
        try:
            self._sysfs_write(remove, "1")
        except OSError as exc:
            self._open_nodes()
            raise self._sysfs_error(remove, exc, "remove the controller for a clean power-off") from exc
        self._removed = True

    def after_power_on(self) -> None:
        """Rescan the PCI bus (sysfs `rescan`) until the controller is back, then reopen its node.

        Repeats the rescan for up to `rescan_timeout_s` while the drive brings its link up;
        raise InstrumentTimeout if it does not come back, InstrumentError without root.
        """
        rescan = os.path.join(self._sysfs_root, "bus", "pci", "rescan")
        deadline_s = self._monotonic() + self._rescan_timeout_s
        self.close()
        while True:
            try:
                self._sysfs_write(rescan, "1")
            except OSError as exc:
                raise self._sysfs_error(rescan, exc, "rescan the PCI bus after power-on") from exc
            if self._controller_back():
                break
            if self._monotonic() >= deadline_s:
                where = f" at {self._pci_function}" if self._pci_function else ""
                raise InstrumentTimeout(
                    self.address,
                    f"no NVMe controller{where} {self._rescan_timeout_s:g} s after power-on "
                    "(PCI rescan found none)",
                )
            self._sleep(_RESCAN_POLL_S)
        self._removed = False
        expected = self._pci_function
        found = self.pci_function() if expected is not None else None
        if found != expected:
            self.close()
            raise InstrumentError(
                self.address,
                f"after the rescan this node is the controller at {found}, not the one at "
                f"{expected}: the kernel numbered the controllers differently",
            )

    def _open_nodes(self) -> None:
        """Open the node at `address` (and learn its NSID when it is a namespace node)."""
        fd = self._open(self.address)
        nsid = None
        if _NAMESPACE_NODE.match(os.path.basename(self.address)):
            try:
                nsid = self._namespace_id(fd, self.address)
            except InstrumentError:
                with contextlib.suppress(OSError):
                    self._closer(fd)
                raise
        self._fd = fd
        self._own_nsid = nsid
        self._io_fds = {} if nsid is None else {nsid: fd}

    def _controller_back(self) -> bool:
        """Return whether the controller is back: its PCI function has one and its node opens."""
        function = self._pci_function
        if function is not None and not glob.glob(os.path.join(function, "nvme", "nvme*")):
            return False
        try:
            self._open_nodes()
        except InstrumentError:
            return False
        return True

    def _controller_dir(self) -> str:
        """Return the sysfs directory of the controller this transport's node belongs to."""
        name = os.path.basename(self.address)
        if _CONTROLLER_NODE.match(name):
            controller = os.path.join(self._sysfs_root, "class", "nvme", name)
        elif _NAMESPACE_NODE.match(name):
            group = "nvme-generic" if name.startswith("ng") else "block"
            parent = os.path.realpath(os.path.join(self._sysfs_root, "class", group, name, "device"))
            controller = parent
            if _SUBSYSTEM_DIR.match(os.path.basename(parent)):
                # A multipath namespace hangs off its subsystem, which lists its controllers.
                found = sorted(e for e in os.listdir(parent) if _CONTROLLER_NODE.match(e))
                if len(found) != 1:
                    raise InstrumentError(
                        self.address,
                        f"{name} is a multipath namespace reached through {len(found)} controllers "
                        f"({', '.join(found) or 'none'}); address one controller node (/dev/nvmeX)",
                    )
                controller = os.path.join(parent, found[0])
        else:
            raise InstrumentError(self.address, f"{name} is not an NVMe device node")
        if not os.path.isdir(controller):
            raise InstrumentError(self.address, f"no NVMe controller in sysfs for {name} ({controller})")
        return controller

    def _sysfs_error(self, path: str, exc: OSError, what: str) -> InstrumentError:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return InstrumentError(self.address, f"writing {path} to {what} needs root (CAP_SYS_ADMIN)")
        return InstrumentError(self.address, f"cannot write {path} to {what}: {exc.strerror or exc}")

    def _require_fd(self) -> int:
        if self._removed:
            raise InstrumentError(
                self.address, "the controller was removed for a power-off; after_power_on() finds it again"
            )
        if self._fd is None:
            raise InstrumentError(self.address, "transport is closed")
        return self._fd

    def _open(self, path: str) -> int:
        try:
            return self._opener(path)
        except OSError as exc:
            raise InstrumentError(path, f"cannot open: {exc.strerror or exc}") from exc

    def _namespace_id(self, fd: int, path: str) -> int:
        try:
            return int(self._ioctl(fd, NVME_IOCTL_ID, 0, False))
        except OSError as exc:
            raise InstrumentError(path, f"NVME_IOCTL_ID failed: {exc.strerror or exc}") from exc

    def _io_fd(self, nsid: int) -> int:
        self._require_fd()
        if nsid in self._io_fds:
            return self._io_fds[nsid]
        if self._own_nsid is not None:
            # The kernel refuses a namespace node an I/O command for another namespace.
            raise InstrumentError(
                self.address, f"I/O for namespace {nsid} sent to the node of namespace {self._own_nsid}"
            )
        for node in self._namespace_nodes(self.address):
            fd = self._open(node)
            found = self._namespace_id(fd, node)
            if found == nsid:
                self._io_fds[nsid] = fd
                return fd
            self._closer(fd)
        raise InstrumentError(self.address, f"no namespace node of this controller serves namespace {nsid}")

    def _submit(
        self, fd: int, request: int, cmd: NvmeCommand, data: bytes | None
    ) -> tuple[Completion, bytes]:
        transfer = cmd.transfer
        if transfer is DataTransfer.BIDIRECTIONAL:
            raise ValueError(f"{self.address}: the Linux ioctl cannot move data both ways in one command")
        if transfer is DataTransfer.HOST_TO_CONTROLLER and cmd.data_len:
            if data is None or len(data) != cmd.data_len:
                got = "none" if data is None else f"{len(data)} bytes"
                raise ValueError(f"{self.address}: command sends {cmd.data_len} bytes, got {got}")
        elif data is not None:
            raise ValueError(f"{self.address}: data out given for a {transfer.name} command")
        # The kernel reads and writes the data through `addr`: a ctypes buffer does not move.
        buffer: ctypes.Array[ctypes.c_char] | None = None
        if cmd.data_len:
            buffer = (ctypes.c_char * cmd.data_len).from_buffer_copy(data or bytes(cmd.data_len))
        addr = ctypes.addressof(buffer) if buffer is not None else 0
        long_running = request == NVME_IOCTL_ADMIN_CMD and cmd.opcode in LONG_RUNNING_ADMIN_OPCODES
        timeout_ms = max(self._timeout_ms, self._long_timeout_ms) if long_running else self._timeout_ms
        raw = bytearray(pack_passthru(cmd, addr, timeout_ms))
        try:
            status = int(self._ioctl(fd, request, raw, True))
        except OSError as exc:
            raise self._link_error(exc) from exc
        if status in (_HOST_PATH_ERROR, _HOST_ABORTED):
            raise InstrumentTimeout(
                self.address,
                f"command {cmd.opcode:02X}h never completed on the device "
                f"(host status {status:#05x}: the kernel aborted it or lost the controller)",
            )
        if not 0 <= status <= 0x7FFF:
            raise ProtocolError(self.address, f"ioctl returned {status:#x}, not an NVMe status field")
        completion = Completion.from_status(status, result=passthru_result(raw), cid=cmd.cid)
        if transfer is DataTransfer.CONTROLLER_TO_HOST and buffer is not None:
            return completion, buffer.raw[: cmd.data_len]
        return completion, b""

    def _link_error(self, exc: OSError) -> InstrumentError:
        reason = exc.strerror or str(exc)
        if exc.errno in _TIMEOUT_ERRNOS:
            return InstrumentTimeout(self.address, f"no completion: {reason}")
        if exc.errno in _GONE_ERRNOS:
            return InstrumentError(self.address, f"device unreachable: {reason}")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return InstrumentError(self.address, f"passthrough refused ({reason}): needs CAP_SYS_ADMIN")
        if exc.errno == errno.EINVAL:
            return InstrumentError(
                self.address, f"kernel rejected the command ({reason}): NSID, flags or length"
            )
        if exc.errno == errno.ENOTTY:
            return InstrumentError(self.address, "not an NVMe device node")
        return InstrumentError(self.address, f"ioctl failed: {reason}")


def _sibling_namespace_nodes(controller_path: str) -> list[str]:
    """Return the namespace nodes of a controller node: generic (ngXnY) first, then block."""
    match = _CONTROLLER_NODE.match(os.path.basename(controller_path))
    if match is None:
        return []
    folder = os.path.dirname(controller_path) or "/dev"
    index = match.group(1)
    nodes = []
    for prefix in ("ng", "nvme"):
        # Block partitions (nvme0n1p1) do not match the namespace pattern, so they drop out.
        candidates = glob.glob(os.path.join(folder, f"{prefix}{index}n*"))
        nodes.extend(sorted(p for p in candidates if _NAMESPACE_NODE.match(os.path.basename(p))))
    return nodes
