"""Protocol tests for the I2C transports: kernel struct layout, I2C_RDWR through a fake kernel, Bus Pirate bytes."""

from __future__ import annotations

import ctypes
import errno
import struct
import sys

import pytest

from drivers.dimm.spd5118 import Spd5118Hub
from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.transport.i2c import (
    I2C_M_RD,
    I2C_RDWR,
    BusPirateI2c,
    I2cMsg,
    I2cNack,
    I2cRdwrIoctlData,
    I2cTransport,
    LinuxI2cDev,
    build_rdwr,
    open_i2c,
)
from qualify.clock import VirtualClock
from sim_instruments.dimm import make_dimm
from tests.sim.test_dimm_faults import FakeDut

LP64_LE = ctypes.sizeof(ctypes.c_void_p) == 8 and sys.byteorder == "little"


def test_ioctl_constants_are_the_kernels() -> None:
    # include/uapi/linux/i2c-dev.h: #define I2C_RDWR 0x0707; include/uapi/linux/i2c.h: I2C_M_RD 0x0001.
    assert I2C_RDWR == 0x0707
    assert I2C_M_RD == 0x0001


@pytest.mark.skipif(not LP64_LE, reason="the literal layout below is the x86-64/aarch64 LP64 one")
def test_struct_i2c_msg_packs_byte_for_byte_like_the_kernels() -> None:
    # struct i2c_msg { __u16 addr; __u16 flags; __u16 len; __u8 *buf; }: three u16, two bytes of
    # padding to align the pointer, the pointer: 16 bytes.
    buffer = (ctypes.c_uint8 * 128)()
    pointer = ctypes.addressof(buffer)
    msg = I2cMsg(0x50, I2C_M_RD, 128, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8)))
    assert ctypes.sizeof(I2cMsg) == 16
    assert I2cMsg.buf.offset == 8  # type: ignore[attr-defined]
    assert bytes(msg) == b"\x50\x00\x01\x00\x80\x00\x00\x00" + pointer.to_bytes(8, "little")


@pytest.mark.skipif(not LP64_LE, reason="the literal layout below is the x86-64/aarch64 LP64 one")
def test_struct_i2c_rdwr_ioctl_data_packs_byte_for_byte_like_the_kernels() -> None:
    # struct i2c_rdwr_ioctl_data { struct i2c_msg *msgs; __u32 nmsgs; }: pointer, u32, tail padding.
    out = (ctypes.c_uint8 * 1).from_buffer_copy(b"\x31")
    into = (ctypes.c_uint8 * 2)()
    data, array = build_rdwr([(0x50, 0, out), (0x50, I2C_M_RD, into)])
    assert ctypes.sizeof(I2cRdwrIoctlData) == 16
    assert bytes(data) == ctypes.addressof(array).to_bytes(8, "little") + b"\x02\x00\x00\x00" + bytes(4)
    assert bytes(array) == (
        b"\x50\x00\x00\x00\x01\x00\x00\x00"
        + ctypes.addressof(out).to_bytes(8, "little")
        + b"\x50\x00\x01\x00\x02\x00\x00\x00"
        + ctypes.addressof(into).to_bytes(8, "little")
    )


def test_build_rdwr_refuses_more_messages_than_the_kernel_takes() -> None:
    buffer = (ctypes.c_uint8 * 1)()
    with pytest.raises(ValueError, match="1 to 42 messages"):
        build_rdwr([(0x50, 0, buffer)] * 43)


class FakeKernel:
    """Stands in for i2c-dev: decodes I2C_RDWR the way the kernel does, runs it on a simulated bus.

    It reads the argument's raw memory with struct (native layout), not through the driver's
    ctypes classes, so a layout mistake in the driver shows up here.
    """

    MSG = struct.Struct("@HHHP")
    RDWR = struct.Struct("@PI")

    def __init__(self, bus: I2cTransport) -> None:
        self.bus = bus
        self.calls: list[tuple[int, int, list[tuple[int, int, bytes]]]] = []
        self.fail_with: int | None = None

    def __call__(self, fd: int, request: int, arg: ctypes.Structure) -> int:
        raw = ctypes.string_at(ctypes.addressof(arg), ctypes.sizeof(arg))
        msgs_ptr, nmsgs = self.RDWR.unpack_from(raw)
        size = self.MSG.size
        messages = [self.MSG.unpack_from(ctypes.string_at(msgs_ptr + i * size, size)) for i in range(nmsgs)]
        seen = [(addr, flags, ctypes.string_at(buf, length)) for addr, flags, length, buf in messages]
        self.calls.append((fd, request, seen))
        if self.fail_with is not None:
            raise OSError(self.fail_with, "fake")
        if nmsgs == 1 and not messages[0][1] & I2C_M_RD:
            self.bus.write(messages[0][0], seen[0][2])
            return 1
        addr, _, length, buf = messages[-1]
        written = seen[0][2] if nmsgs == 2 else b""
        ctypes.memmove(buf, self.bus.write_read(addr, written, length), length)
        return nmsgs


def test_linux_i2c_dev_reads_the_spd_through_i2c_rdwr() -> None:
    dimm = make_dimm(FakeDut(), VirtualClock(), 1, "rdimm_healthy")
    kernel = FakeKernel(dimm.bus)
    transport = LinuxI2cDev("/dev/i2c-7", ioctl=kernel, fd=3)
    assert isinstance(transport, I2cTransport)
    assert Spd5118Hub(transport).read_spd() == bytes(dimm.hub.nvm)
    assert {(fd, request) for fd, request, _ in kernel.calls} == {(3, I2C_RDWR)}
    # Page select: one write message; page read: write 0x80 then read 128, one ioctl, repeated START.
    assert kernel.calls[0][2] == [(0x50, 0, b"\x0b\x00")]
    assert [(a, f, len(b)) for a, f, b in kernel.calls[1][2]] == [(0x50, 0, 1), (0x50, I2C_M_RD, 128)]
    assert kernel.calls[1][2][0][2] == b"\x80"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENXIO, I2cNack),
        (errno.EREMOTEIO, I2cNack),
        (errno.ETIMEDOUT, InstrumentTimeout),
        (errno.EIO, InstrumentError),
    ],
)
def test_linux_i2c_dev_maps_errno_to_transport_errors(code: int, error: type[Exception]) -> None:
    kernel = FakeKernel(make_dimm(FakeDut(), VirtualClock(), 1, "rdimm_healthy").bus)
    kernel.fail_with = code
    transport = LinuxI2cDev("/dev/i2c-7", ioctl=kernel, fd=3)
    with pytest.raises(error, match="/dev/i2c-7"):
        transport.write_read(0x50, b"\x00", 2)


def test_linux_i2c_dev_checks_arguments_and_its_state() -> None:
    transport = LinuxI2cDev("/dev/i2c-7", ioctl=lambda *a: 0, fd=3)
    with pytest.raises(ValueError, match="not a 7-bit target address"):
        transport.write(0x05, b"\x00")
    with pytest.raises(ValueError, match="read length"):
        transport.write_read(0x50, b"", 0)
    transport.close()
    with pytest.raises(InstrumentError, match="closed"):
        transport.write(0x50, b"\x00")
    with pytest.raises(InstrumentError, match="cannot open I2C adapter"):
        LinuxI2cDev("/dev/i2c-qualify-none")


class ScriptedPort:
    """A serial port that expects exact bytes from the driver and answers scripted bytes."""

    def __init__(self, script: list[tuple[bytes, bytes]]) -> None:
        self.script = list(script)
        self.pending = b""
        self.closed = False
        self.written = b""

    def write(self, data: bytes) -> int:
        self.written += data
        expected, reply = self.script.pop(0)
        assert data == expected, f"driver sent {data.hex()}, script expects {expected.hex()}"
        self.pending += reply
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def reset_input_buffer(self) -> None:
        self.pending = b""

    def close(self) -> None:
        self.closed = True


OPEN = [(b"\x00", b"BBIO1"), (b"\x02", b"I2C1"), (b"\x4c", b"\x01"), (b"\x63", b"\x01")]


def test_bus_pirate_enters_binary_i2c_and_frames_a_write_then_read() -> None:
    port = ScriptedPort(
        [
            *OPEN,
            (b"\x02", b"\x01"),  # START
            (b"\x11\xa0\x31", b"\x01\x00\x00"),  # bulk write: address+W, register; both ACKed
            (b"\x02", b"\x01"),  # repeated START
            (b"\x10\xa1", b"\x01\x00"),  # address+R
            (b"\x04", b"\x90"),  # read byte
            (b"\x06", b"\x01"),  # ACK it
            (b"\x04", b"\x01"),
            (b"\x07", b"\x01"),  # NACK the last
            (b"\x03", b"\x01"),  # STOP
        ]
    )
    transport = BusPirateI2c("/dev/ttyUSB0", port=port)
    assert transport.write_read(0x50, b"\x31", 2) == b"\x90\x01"
    assert port.script == []


def test_bus_pirate_splits_long_writes_into_16_byte_bulk_transfers() -> None:
    data = bytes(range(20))
    frame = b"\xa0" + data  # 21 bytes: 16 + 5
    port = ScriptedPort(
        [
            *OPEN,
            (b"\x02", b"\x01"),
            (b"\x1f" + frame[:16], b"\x01" + bytes(16)),
            (b"\x14" + frame[16:], b"\x01" + bytes(5)),
            (b"\x03", b"\x01"),
        ]
    )
    BusPirateI2c("/dev/ttyUSB0", port=port).write(0x50, data)
    assert port.script == []


def test_bus_pirate_reports_a_nack_and_still_sends_stop() -> None:
    port = ScriptedPort([*OPEN, (b"\x02", b"\x01"), (b"\x11\x90\x00", b"\x01\x01\x01"), (b"\x03", b"\x01")])
    with pytest.raises(I2cNack, match="target 0x48 did not acknowledge its address"):
        BusPirateI2c("/dev/ttyUSB0", port=port).write(0x48, b"\x00")
    assert port.script == []


def test_something_that_never_says_bbio1_is_not_a_bus_pirate() -> None:
    port = ScriptedPort([(b"\x00", b"?")] * 20 + [(b"\x00", b"")])
    with pytest.raises(ProtocolError, match="not a Bus Pirate"):
        BusPirateI2c("/dev/ttyUSB0", port=port)
    assert port.closed


def test_a_silent_bus_pirate_times_out() -> None:
    port = ScriptedPort([*OPEN, (b"\x02", b""), (b"\x03", b"")])
    transport = BusPirateI2c("/dev/ttyUSB0", port=port, timeout_s=0.1)
    with pytest.raises(InstrumentTimeout, match="0 of 1 bytes"):
        transport.write(0x50, b"\x00")


def test_bus_pirate_speeds_are_the_firmwares_four() -> None:
    with pytest.raises(ValueError, match="5, 50, 100, 400"):
        BusPirateI2c("/dev/ttyUSB0", speed_khz=1000, port=ScriptedPort([]))


def test_open_i2c_picks_the_transport_from_the_address() -> None:
    bus = make_dimm(FakeDut(), VirtualClock(), 1, "rdimm_healthy").bus
    assert open_i2c("sim-i2c://slot1", endpoints={"sim-i2c://slot1": bus}) is bus
    with pytest.raises(InstrumentError, match="cannot open I2C adapter"):
        open_i2c("/dev/i2c-999")
    with pytest.raises(InstrumentError, match="cannot open Bus Pirate port"):
        open_i2c("buspirate:/dev/qualify-no-such-tty")
    with pytest.raises(InstrumentError, match="not an I2C address"):
        open_i2c("COM3")
