"""The Linux ioctl transport: struct nvme_passthru_cmd byte for byte, and commands mapped onto it.

`FakeKernel` stands in for the kernel behind fcntl.ioctl: it receives exactly the bytes a
real NVME_IOCTL_ADMIN_CMD / NVME_IOCTL_IO_CMD would, reads and writes the data buffer at the
struct's `addr` as the kernel's copy_to_user/copy_from_user do, writes `result` back, and
returns the NVMe status. Layout checked against include/uapi/linux/nvme_ioctl.h (torvalds/linux).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.errors import DeviceCommandError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import NvmeCommand
from drivers.nvme.controller import NvmeDriver
from drivers.protocols import PowerOffNotice
from drivers.transport.nvme_linux import (
    NVME_IOCTL_ADMIN_CMD,
    NVME_IOCTL_ID,
    NVME_IOCTL_IO_CMD,
    PASSTHRU_CMD,
    LinuxNvmeTransport,
    pack_passthru,
    passthru_result,
)
from drivers.transport.nvme_passthrough import NvmePassthrough


def test_ioctl_numbers_are_the_kernels() -> None:
    # _IOWR('N', 0x41, struct nvme_passthru_cmd): dir 3 << 30 | 72 << 16 | 'N' << 8 | nr.
    assert NVME_IOCTL_ADMIN_CMD == 0xC0484E41
    assert NVME_IOCTL_IO_CMD == 0xC0484E43
    assert NVME_IOCTL_ID == 0x4E40


def test_passthru_struct_is_72_bytes_at_the_uapi_offsets() -> None:
    cmd = NvmeCommand(
        opcode=0xA5,
        nsid=0x11223344,
        cdw2=0x22222222,
        cdw3=0x33333333,
        cdw10=0xA0A0A0A0,
        cdw11=0xB1B1B1B1,
        cdw12=0xC2C2C2C2,
        cdw13=0xD3D3D3D3,
        cdw14=0xE4E4E4E4,
        cdw15=0xF5F5F5F5,
        data_len=4096,
        cid=0x1234,  # the kernel picks its own CID: not in the struct
    )
    raw = pack_passthru(cmd, addr=0x00007F00DEADB000, timeout_ms=60_000)
    assert PASSTHRU_CMD.size == len(raw) == 72
    expected = bytearray(72)
    expected[0] = 0xA5  # __u8 opcode
    expected[1] = 0  # __u8 flags (the kernel rejects any)
    struct.pack_into("<H", expected, 2, 0)  # __u16 rsvd1
    struct.pack_into("<I", expected, 4, 0x11223344)  # __u32 nsid
    struct.pack_into("<I", expected, 8, 0x22222222)  # __u32 cdw2
    struct.pack_into("<I", expected, 12, 0x33333333)  # __u32 cdw3
    struct.pack_into("<Q", expected, 16, 0)  # __u64 metadata
    struct.pack_into("<Q", expected, 24, 0x00007F00DEADB000)  # __u64 addr
    struct.pack_into("<I", expected, 32, 0)  # __u32 metadata_len
    struct.pack_into("<I", expected, 36, 4096)  # __u32 data_len
    for index, value in enumerate((0xA0A0A0A0, 0xB1B1B1B1, 0xC2C2C2C2, 0xD3D3D3D3, 0xE4E4E4E4, 0xF5F5F5F5)):
        struct.pack_into("<I", expected, 40 + 4 * index, value)  # __u32 cdw10..cdw15
    struct.pack_into("<I", expected, 64, 60_000)  # __u32 timeout_ms
    struct.pack_into("<I", expected, 68, 0)  # __u32 result
    assert raw == bytes(expected)


def test_smart_log_command_packs_the_reference_cdw10() -> None:
    raw = pack_passthru(cmds.smart_log(), addr=0x1000)
    assert raw[0] == 0x02
    assert struct.unpack_from("<I", raw, 4)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", raw, 40)[0] == 0x007F0002
    assert struct.unpack_from("<I", raw, 36)[0] == 512


def test_command_without_data_carries_no_address() -> None:
    raw = pack_passthru(cmds.flush(1), addr=0x1000)
    assert struct.unpack_from("<QI", raw, 24) == (0, 0)


def test_fused_commands_cannot_pass_through_linux() -> None:
    with pytest.raises(ValueError, match="FUSE or PSDT"):
        pack_passthru(NvmeCommand(opcode=0x01, fuse=1), addr=0)


def test_result_is_read_from_the_last_dword() -> None:
    raw = bytearray(72)
    struct.pack_into("<I", raw, 68, 0xCAFEF00D)
    assert passthru_result(raw) == 0xCAFEF00D
    with pytest.raises(ValueError, match="72 bytes"):
        passthru_result(bytes(71))


@dataclass
class Call:
    fd: int
    request: int
    fields: tuple[int, ...]
    data_out: bytes | None


@dataclass
class FakeKernel:
    """Stands in for the kernel behind fcntl.ioctl on NVMe device nodes."""

    nsid_of_fd: dict[int, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    data_in: bytes = b""
    status: int = 0
    result: int = 0
    error: int | None = None

    def ioctl(self, fd: int, request: int, arg: object, mutate: bool) -> int:
        if request == NVME_IOCTL_ID:
            return self.nsid_of_fd[fd]
        if self.error is not None:
            raise OSError(self.error, "fake kernel error")
        assert isinstance(arg, bytearray) and mutate
        assert len(arg) == 72
        fields = PASSTHRU_CMD.unpack(bytes(arg))
        opcode, addr, data_len = fields[0], fields[7], fields[9]
        data_out = None
        if data_len:
            assert addr, "a command with data must carry a buffer address"
            if opcode & 0b01:
                data_out = ctypes.string_at(addr, data_len)
            else:
                payload = self.data_in[:data_len]
                ctypes.memmove(addr, payload, len(payload))
        self.calls.append(Call(fd, request, fields, data_out))
        struct.pack_into("<I", arg, 68, self.result)
        return self.status


FDS = {"/dev/nvme0": 3, "/dev/ng0n1": 4, "/dev/nvme0n1": 5, "/dev/ng0n2": 6}


def _transport(
    kernel: FakeKernel,
    path: str = "/dev/nvme0",
    closed: list[int] | None = None,
    timeout_ms: int = 0,
    long_timeout_ms: int = 600_000,
) -> LinuxNvmeTransport:
    return LinuxNvmeTransport(
        path,
        timeout_ms=timeout_ms,
        long_timeout_ms=long_timeout_ms,
        ioctl=kernel.ioctl,
        opener=FDS.__getitem__,
        closer=(closed if closed is not None else []).append,
        namespace_nodes=lambda _controller: ["/dev/ng0n1", "/dev/ng0n2"],
    )


def test_transport_satisfies_the_passthrough_protocol() -> None:
    assert isinstance(_transport(FakeKernel()), NvmePassthrough)


def test_admin_read_returns_the_buffer_the_kernel_filled_and_dw0() -> None:
    kernel = FakeKernel(data_in=bytes(range(256)) * 16, result=0x157)
    completion, data = _transport(kernel).admin(NvmeCommand(opcode=0x06, cdw10=1, data_len=4096, cid=9))
    assert completion.ok and completion.result == 0x157 and completion.cid == 9
    assert data == bytes(range(256)) * 16
    call = kernel.calls[0]
    assert (call.fd, call.request) == (3, NVME_IOCTL_ADMIN_CMD)
    assert call.fields[0] == 0x06 and call.fields[10] == 1 and call.fields[9] == 4096


def test_write_sends_the_callers_bytes_through_addr() -> None:
    kernel = FakeKernel(nsid_of_fd={4: 1, 6: 2})
    transport = _transport(kernel)
    payload = bytes([0x5A]) * 1024
    completion, data = transport.io(cmds.write(nsid=2, slba=7, blocks=2, lba_bytes=512), payload)
    assert completion.ok and data == b""
    call = kernel.calls[0]
    assert call.request == NVME_IOCTL_IO_CMD
    assert call.fd == 6  # the sibling node whose NVME_IOCTL_ID is 2, not the first one found
    assert call.data_out == payload
    assert call.fields[3] == 2 and call.fields[10] == 7 and call.fields[12] == 1


def test_io_on_a_namespace_node_uses_that_node() -> None:
    kernel = FakeKernel(nsid_of_fd={4: 1})
    transport = _transport(kernel, path="/dev/ng0n1")
    assert transport.nsid == 1
    transport.io(cmds.flush(1))
    assert kernel.calls[0].fd == 4
    with pytest.raises(InstrumentError, match="namespace 2 sent to the node of namespace 1"):
        transport.io(cmds.flush(2))


def test_io_for_an_unknown_namespace_is_an_instrument_error() -> None:
    kernel = FakeKernel(nsid_of_fd={4: 1, 6: 2})
    closed: list[int] = []
    transport = _transport(kernel, closed=closed)
    with pytest.raises(InstrumentError, match="serves namespace 9"):
        transport.io(cmds.flush(9))
    assert closed == [4, 6]


def test_error_status_is_returned_as_a_completion_not_raised() -> None:
    kernel = FakeKernel(status=0x4002)  # Invalid Field in Command, DNR
    completion, data = _transport(kernel).admin(NvmeCommand(opcode=0x02, data_len=512, cid=4))
    assert (completion.sct, completion.sc, completion.dnr, completion.cid) == (0, 0x02, True, 4)
    assert len(data) == 512


def test_driver_turns_the_status_into_a_device_command_error() -> None:
    kernel = FakeKernel(status=0x4080, nsid_of_fd={5: 1})
    driver = NvmeDriver(_transport(kernel, path="/dev/nvme0n1"))
    with pytest.raises(DeviceCommandError, match="LBA Out of Range") as info:
        driver.io_command(cmds.read(1, 10**6, 1, 512))
    assert info.value.status == 0x4080


@pytest.mark.parametrize(
    ("code", "kind", "text"),
    [
        (errno.EINTR, InstrumentTimeout, "no completion"),
        (errno.ETIMEDOUT, InstrumentTimeout, "no completion"),
        (errno.ENODEV, InstrumentError, "unreachable"),
        (errno.EACCES, InstrumentError, "CAP_SYS_ADMIN"),
        (errno.EINVAL, InstrumentError, "kernel rejected"),
        (errno.ENOTTY, InstrumentError, "not an NVMe device"),
    ],
)
def test_errno_maps_to_link_errors(code: int, kind: type[InstrumentError], text: str) -> None:
    kernel = FakeKernel(error=code)
    with pytest.raises(kind, match=text):
        _transport(kernel).admin(cmds.identify_controller())


@pytest.mark.parametrize("status", [0x370, 0x371])
def test_host_aborted_statuses_mean_no_completion(status: int) -> None:
    kernel = FakeKernel(status=status)
    with pytest.raises(InstrumentTimeout, match="never completed"):
        _transport(kernel).admin(cmds.identify_controller())


def test_status_wider_than_15_bits_is_a_protocol_error() -> None:
    kernel = FakeKernel(status=0x8001)
    with pytest.raises(ProtocolError, match="not an NVMe status"):
        _transport(kernel).admin(cmds.identify_controller())


def test_format_gets_the_long_timeout_and_identify_the_short_one() -> None:
    kernel = FakeKernel()
    transport = _transport(kernel, timeout_ms=5000, long_timeout_ms=900_000)
    transport.admin(cmds.identify_controller())
    transport.admin(cmds.format_nvm(1, 4))
    assert [call.fields[16] for call in kernel.calls] == [5000, 900_000]


def test_data_direction_is_checked_before_the_kernel_sees_it() -> None:
    kernel = FakeKernel(nsid_of_fd={4: 1})
    transport = _transport(kernel)
    with pytest.raises(ValueError, match="sends 1024 bytes, got none"):
        transport.io(cmds.write(1, 0, 2, 512))
    with pytest.raises(ValueError, match="data out given"):
        transport.admin(cmds.identify_controller(), b"x" * 4096)
    with pytest.raises(ValueError, match="both ways"):
        transport.admin(NvmeCommand(opcode=0x03, data_len=4))
    assert kernel.calls == []


def test_closed_transport_refuses_commands_and_closes_every_node() -> None:
    kernel = FakeKernel(nsid_of_fd={4: 1})
    closed: list[int] = []
    transport = _transport(kernel, closed=closed)
    transport.io(cmds.flush(1))
    transport.close()
    assert closed == [3, 4]
    with pytest.raises(InstrumentError, match="closed"):
        transport.admin(cmds.identify_controller())


def test_missing_device_node_is_an_instrument_error(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="cannot open"):
        LinuxNvmeTransport(str(tmp_path / "nvme9"))


# Power-off and power-on through sysfs, on a fake sysfs tree --------------------------------------

PCI_FUNCTION = "devices/pci0000:00/0000:00:01.0/0000:03:00.0"


@dataclass
class FakeSysfs:
    """A sysfs tree as the kernel lays out an NVMe controller on PCI, under `root`.

    Writing `remove` takes the controller away; a `rescan` brings it back once `ready`.
    """

    root: Path
    writes: list[tuple[str, str]] = field(default_factory=list)
    ready: bool = True
    refuse: int | None = None

    def __post_init__(self) -> None:
        function = self.root / PCI_FUNCTION
        function.mkdir(parents=True)
        (function / "remove").write_text("")
        (self.root / "bus" / "pci").mkdir(parents=True)
        (self.root / "bus" / "pci" / "rescan").write_text("")
        for group in ("nvme", "block", "nvme-generic"):
            (self.root / "class" / group).mkdir(parents=True)
        self._add_controller()

    def _add_controller(self) -> None:
        controller = self.root / PCI_FUNCTION / "nvme" / "nvme0"
        controller.mkdir(parents=True)
        (controller / "device").symlink_to("../../../0000:03:00.0")
        for name, group in (("nvme0n1", "block"), ("ng0n1", "nvme-generic")):
            (controller / name).mkdir()
            (controller / name / "device").symlink_to("../../nvme0")
            (self.root / "class" / group / name).symlink_to(f"../../{PCI_FUNCTION}/nvme/nvme0/{name}")
        (self.root / "class" / "nvme" / "nvme0").symlink_to(f"../../{PCI_FUNCTION}/nvme/nvme0")

    def write(self, path: str, value: str) -> None:
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        self.writes.append((os.path.relpath(path, self.root), value))
        Path(path).write_text(value)
        controllers = self.root / PCI_FUNCTION / "nvme"
        if path.endswith("/remove"):
            shutil.rmtree(controllers)
            for link in (self.root / "class").glob("*/*"):
                link.unlink()
        elif path.endswith("/rescan") and self.ready and not controllers.exists():
            self._add_controller()


def _sysfs_transport(sysfs: FakeSysfs, path: str = "/dev/nvme0", **kwargs: object) -> LinuxNvmeTransport:
    return LinuxNvmeTransport(
        path,
        ioctl=FakeKernel(nsid_of_fd={4: 1, 5: 1}).ioctl,
        opener=FDS.__getitem__,
        closer=lambda fd: None,
        sysfs_root=str(sysfs.root),
        sysfs_write=sysfs.write,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("node", ["/dev/nvme0", "/dev/nvme0n1", "/dev/ng0n1"])
def test_controller_and_namespace_nodes_lead_to_the_pci_function(tmp_path: Path, node: str) -> None:
    sysfs = FakeSysfs(tmp_path / "sys")
    assert _sysfs_transport(sysfs, node).pci_function() == str(sysfs.root / PCI_FUNCTION)


def test_a_multipath_namespace_leads_through_its_subsystem_when_one_controller_serves_it(
    tmp_path: Path,
) -> None:
    sysfs = FakeSysfs(tmp_path / "sys")
    subsystem = sysfs.root / "devices" / "virtual" / "nvme-subsystem" / "nvme-subsys0"
    (subsystem / "nvme0n1").mkdir(parents=True)
    (subsystem / "nvme0n1" / "device").symlink_to("../../nvme-subsys0")
    (subsystem / "nvme0").symlink_to(f"../../../../{PCI_FUNCTION}/nvme/nvme0")
    block = sysfs.root / "class" / "block" / "nvme0n1"
    block.unlink()
    block.symlink_to("../../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1")
    transport = _sysfs_transport(sysfs, "/dev/nvme0n1")
    assert transport.pci_function() == str(sysfs.root / PCI_FUNCTION)
    (subsystem / "nvme1").symlink_to(f"../../../../{PCI_FUNCTION}/nvme/nvme0")
    with pytest.raises(InstrumentError, match="multipath namespace reached through 2 controllers"):
        transport.pci_function()


def test_shutdown_notification_removes_the_pci_function_and_power_on_finds_it_again(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path / "sys")
    transport = _sysfs_transport(sysfs)
    driver = NvmeDriver(transport)
    driver.prepare_power_off()
    assert sysfs.writes == [(f"{PCI_FUNCTION}/remove", "1")]
    with pytest.raises(InstrumentError, match="removed for a power-off"):
        transport.admin(cmds.identify_controller())
    driver.after_power_on()
    assert sysfs.writes[-1] == ("bus/pci/rescan", "1")
    completion, _ = transport.admin(cmds.identify_controller())
    assert completion.ok


def test_power_on_rescans_until_the_drive_is_back_then_gives_up(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path / "sys")
    now = [0.0]
    transport = _sysfs_transport(
        sysfs, rescan_timeout_s=5.0, sleep=lambda s: now.__setitem__(0, now[0] + s), monotonic=lambda: now[0]
    )
    transport.shutdown_notification()
    sysfs.ready = False
    with pytest.raises(InstrumentTimeout, match=r"0000:03:00\.0 5 s after power-on"):
        transport.after_power_on()
    rescans = [w for w in sysfs.writes if w[0] == "bus/pci/rescan"]
    assert len(rescans) == 11  # one every half second, until the deadline
    sysfs.ready = True
    transport.after_power_on()
    assert transport.admin(cmds.identify_controller())[0].ok


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_without_root_the_power_off_is_refused_and_the_link_stays_usable(tmp_path: Path, code: int) -> None:
    sysfs = FakeSysfs(tmp_path / "sys", refuse=code)
    transport = _sysfs_transport(sysfs)
    with pytest.raises(InstrumentError, match=r"remove.*needs root"):
        transport.shutdown_notification()
    assert transport.admin(cmds.identify_controller())[0].ok
    with pytest.raises(InstrumentError, match=r"rescan.*needs root"):
        transport.after_power_on()


def test_a_node_without_a_pci_function_cannot_be_powered_off_cleanly(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path / "sys")
    (sysfs.root / PCI_FUNCTION / "remove").unlink()
    with pytest.raises(InstrumentError, match="not backed by a removable PCI function"):
        _sysfs_transport(sysfs).shutdown_notification()


def test_driver_without_a_notifying_transport_refuses_the_orderly_power_off() -> None:
    class Bare:
        address = "fake"

    driver = NvmeDriver(Bare())  # type: ignore[arg-type]
    assert isinstance(driver, PowerOffNotice)
    with pytest.raises(InstrumentError, match="cannot send a shutdown notification"):
        driver.prepare_power_off()
    driver.after_power_on()  # nothing to find again
