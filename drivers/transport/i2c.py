"""I2C transports: the contract DIMM sideband drivers receive, and its Linux and USB-bridge implementations.

A transaction is bytes: `write(addr, data)` is START, address+W, data, STOP; `write_read(addr,
data, n)` is START, address+W, data, repeated START, address+R, n bytes read (the last one
NACKed), STOP. Addresses are 7-bit. A target that does not acknowledge raises `I2cNack`.

Implementations:
- `LinuxI2cDev`: `/dev/i2c-N` through the I2C_RDWR ioctl, with the kernel's `struct i2c_msg` and
  `struct i2c_rdwr_ioctl_data` (include/uapi/linux/i2c.h, include/uapi/linux/i2c-dev.h) built with
  ctypes so the layout follows the platform's C ABI.
- `BusPirateI2c`: a Bus Pirate v3/v4 in its binary I2C mode over a USB serial port (pyserial), as
  documented by Dangerous Prototypes, "I2C (binary)" and "Bitbang (binary)", firmware v2.6+.
- The simulated lab's `SimI2cBus` (sim_instruments.dimm) implements the same protocol in process.
fcntl and pyserial are imported only when those transports are opened.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError

# <linux/i2c-dev.h> and <linux/i2c.h>.
I2C_RDWR = 0x0707
I2C_M_RD = 0x0001
# The kernel rejects a combined transfer of more messages than this (I2C_RDWR_IOCTL_MAX_MSGS).
I2C_RDWR_IOCTL_MAX_MSGS = 42
_MAX_MESSAGE_BYTES = 0xFFFF  # __u16 len


class I2cNack(InstrumentError):
    """Signal a target that did not acknowledge its address or a data byte."""


@runtime_checkable
class I2cTransport(Protocol):
    """Define a link to one I2C bus; every call is one complete transaction to one 7-bit address."""

    address: str

    def write(self, addr: int, data: bytes) -> None:
        """Write `data` to target `addr` in one transaction."""
        ...

    def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        """Write `data`, then after a repeated START read `n` bytes from target `addr`."""
        ...

    def close(self) -> None:
        """Release the link."""
        ...


def check_target(addr: int) -> None:
    """Raise ValueError unless `addr` is a 7-bit address outside the reserved groups."""
    if not 0x08 <= addr <= 0x77:
        raise ValueError(f"I2C address 0x{addr:02X} is not a 7-bit target address (0x08 to 0x77)")


class I2cMsg(ctypes.Structure):
    """Mirror the kernel's `struct i2c_msg { __u16 addr; __u16 flags; __u16 len; __u8 *buf; }`."""

    _fields_ = (
        ("addr", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("len", ctypes.c_uint16),
        ("buf", ctypes.POINTER(ctypes.c_uint8)),
    )


class I2cRdwrIoctlData(ctypes.Structure):
    """Mirror `struct i2c_rdwr_ioctl_data { struct i2c_msg *msgs; __u32 nmsgs; }`."""

    _fields_ = (
        ("msgs", ctypes.POINTER(I2cMsg)),
        ("nmsgs", ctypes.c_uint32),
    )


IoctlFn = Callable[[int, int, Any], Any]


def build_rdwr(messages: list[tuple[int, int, ctypes.Array[ctypes.c_uint8]]]) -> tuple[I2cRdwrIoctlData, Any]:
    """Return the ioctl argument for messages of (addr, flags, buffer), and the array it points to.

    The caller keeps both alive until the ioctl returns: the kernel reads the pointers.
    """
    if not 1 <= len(messages) <= I2C_RDWR_IOCTL_MAX_MSGS:
        raise ValueError(f"an I2C_RDWR transfer holds 1 to {I2C_RDWR_IOCTL_MAX_MSGS} messages")
    array = (I2cMsg * len(messages))()
    for slot, (addr, flags, buffer) in zip(array, messages, strict=True):
        if len(buffer) > _MAX_MESSAGE_BYTES:
            raise ValueError(f"an I2C message carries at most {_MAX_MESSAGE_BYTES} bytes")
        slot.addr = addr
        slot.flags = flags
        slot.len = len(buffer)
        slot.buf = ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8))
    data = I2cRdwrIoctlData(ctypes.cast(array, ctypes.POINTER(I2cMsg)), len(messages))
    return data, array


class LinuxI2cDev:
    """Drive a Linux i2c-dev node (`/dev/i2c-3`) as an I2cTransport, one I2C_RDWR ioctl per transaction.

    One ioctl carries the write and the read of `write_read` as two messages, so the adapter puts
    a repeated START between them and no other bus master can interleave (the SPD5118 page
    register must not change between setting the pointer and reading).
    """

    def __init__(self, path: str, *, ioctl: IoctlFn | None = None, fd: int | None = None) -> None:
        self.address = path
        self._lock = threading.Lock()
        if ioctl is None:
            import fcntl

            ioctl = fcntl.ioctl
        self._ioctl = ioctl
        if fd is None:
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError as exc:
                raise InstrumentError(path, f"cannot open I2C adapter: {exc}") from exc
            self._owns_fd = True
        else:
            self._owns_fd = False
        self._fd: int | None = fd

    def write(self, addr: int, data: bytes) -> None:
        """Write `data` to `addr` in one message."""
        check_target(addr)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self._transfer([(addr, 0, buffer)], f"write 0x{addr:02X} {data.hex()}")

    def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        """Write `data` then read `n` bytes from `addr`: two messages in one ioctl."""
        check_target(addr)
        if n < 1:
            raise ValueError(f"read length must be at least 1, got {n}")
        out = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        into = (ctypes.c_uint8 * n)()
        messages = [(addr, 0, out), (addr, I2C_M_RD, into)] if data else [(addr, I2C_M_RD, into)]
        self._transfer(messages, f"write_read 0x{addr:02X} {data.hex()} +{n}")
        return bytes(into)

    def close(self) -> None:
        """Close the device node (if this transport opened it); closing twice is harmless."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None and self._owns_fd:
            os.close(fd)

    def _transfer(self, messages: list[tuple[int, int, ctypes.Array[ctypes.c_uint8]]], what: str) -> None:
        data, _keepalive = build_rdwr(messages)
        with self._lock:
            if self._fd is None:
                raise InstrumentError(self.address, "transport is closed")
            try:
                self._ioctl(self._fd, I2C_RDWR, data)
            except OSError as exc:
                # i2c-dev reports an unacknowledged address as ENXIO or EREMOTEIO, depending on the
                # adapter driver (Documentation/i2c/fault-codes.rst).
                if exc.errno in (errno.ENXIO, errno.EREMOTEIO):
                    raise I2cNack(self.address, f"{what}: no acknowledge ({exc})") from exc
                if exc.errno == errno.ETIMEDOUT:
                    raise InstrumentTimeout(self.address, f"{what}: bus timeout ({exc})") from exc
                raise InstrumentError(self.address, f"{what}: {exc}") from exc


# Bus Pirate binary mode bytes (Dangerous Prototypes, "Bitbang (binary)" and "I2C (binary)").
BP_RESET = 0x00  # in bitbang mode: answer "BBIO1"; in I2C mode: back to bitbang
BP_ENTER_I2C = 0x02  # in bitbang mode: enter binary I2C, answer "I2C1"
BP_START = 0x02
BP_STOP = 0x03
BP_READ_BYTE = 0x04
BP_ACK = 0x06
BP_NACK = 0x07
BP_BULK_WRITE = 0x10  # low nibble = byte count - 1, so 1 to 16 bytes
BP_PERIPHERALS = 0x40  # 0100wxyz: w power, x pull-ups, y AUX, z CS
BP_SPEED = 0x60  # 011000xx: 0 ~5 kHz, 1 ~50 kHz, 2 ~100 kHz, 3 ~400 kHz
BP_OK = 0x01
_BP_BULK_MAX = 16
_BP_RESET_TRIES = 20  # the documented number of 0x00 bytes that always reaches bitbang mode
BP_SPEEDS_KHZ = {5: 0, 50: 1, 100: 2, 400: 3}


class _BytePort(Protocol):
    """Name the part of a pyserial port the Bus Pirate transport uses (tests pass their own)."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class BusPirateI2c:
    """Drive a Bus Pirate (v3/v4) in binary I2C mode over a USB serial port as an I2cTransport.

    Opening resets the Pirate to bitbang mode (0x00 until `BBIO1`), enters I2C (0x02, `I2C1`),
    powers the target and its pull-ups (0x4C) and sets the speed (0x63 is ~400 kHz). A
    transaction is built from the documented primitives: START 0x02, bulk write 0x1n (the reply
    is 0x01 and then one ACK status per byte, 0x00 for ACK), read 0x04 followed by ACK 0x06 or
    NACK 0x07, STOP 0x03. A STOP is always sent, even after a NACK, so the bus is left idle.
    """

    def __init__(
        self,
        url: str,
        *,
        speed_khz: int = 400,
        timeout_s: float = 1.0,
        power: bool = True,
        pullups: bool = True,
        port: _BytePort | None = None,
    ) -> None:
        if speed_khz not in BP_SPEEDS_KHZ:
            raise ValueError(f"Bus Pirate I2C speeds are {sorted(BP_SPEEDS_KHZ)} kHz, not {speed_khz}")
        self.address = url
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        if port is None:
            import serial

            try:
                port = serial.serial_for_url(url, baudrate=115200, timeout=timeout_s, write_timeout=timeout_s)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise InstrumentError(url, f"cannot open Bus Pirate port: {exc}") from exc
        self._port: _BytePort | None = port
        try:
            self._enter_i2c(speed_khz, power, pullups)
        except BaseException:
            self.close()
            raise

    def write(self, addr: int, data: bytes) -> None:
        """Write `data` to `addr`: START, address+W and data, STOP."""
        check_target(addr)
        with self._lock, self._stop_after():
            self._command(BP_START)
            self._bulk_write(bytes([addr << 1]) + data, addr)

    def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        """Write `data`, repeated START, read `n` bytes (ACK all but the last), STOP."""
        check_target(addr)
        if n < 1:
            raise ValueError(f"read length must be at least 1, got {n}")
        with self._lock, self._stop_after():
            if data:
                self._command(BP_START)
                self._bulk_write(bytes([addr << 1]) + data, addr)
            self._command(BP_START)
            self._bulk_write(bytes([(addr << 1) | 1]), addr)
            out = bytearray()
            for index in range(n):
                self._send(bytes([BP_READ_BYTE]))
                out += self._receive(1, "read byte")
                self._command(BP_ACK if index < n - 1 else BP_NACK)
            return bytes(out)

    def close(self) -> None:
        """Return the Pirate to bitbang mode and close the port; closing twice is harmless."""
        port, self._port = self._port, None
        if port is None:
            return
        with contextlib.suppress(OSError):
            port.write(bytes([BP_RESET]))
        port.close()

    @contextlib.contextmanager
    def _stop_after(self) -> Iterator[None]:
        """Send STOP when the transaction ends; after a failure try it but keep the first error."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(InstrumentError):
                self._command(BP_STOP)
            raise
        self._command(BP_STOP)

    def _enter_i2c(self, speed_khz: int, power: bool, pullups: bool) -> None:
        port = self._open_port()
        port.reset_input_buffer()
        for _ in range(_BP_RESET_TRIES):
            self._send(bytes([BP_RESET]))
            if port.read(5) == b"BBIO1":
                break
        else:
            raise ProtocolError(self.address, "no BBIO1 after 20 resets: not a Bus Pirate in binary mode")
        self._send(bytes([BP_ENTER_I2C]))
        reply = self._receive(4, "enter I2C mode")
        if reply != b"I2C1":
            raise ProtocolError(self.address, f"expected I2C1 entering I2C mode, got {reply!r}")
        self._command(BP_PERIPHERALS | (0x08 if power else 0) | (0x04 if pullups else 0))
        self._command(BP_SPEED | BP_SPEEDS_KHZ[speed_khz])

    def _bulk_write(self, data: bytes, addr: int) -> None:
        """Send `data` in bulk writes of up to 16 bytes; raise I2cNack at the first NACKed byte."""
        for start in range(0, len(data), _BP_BULK_MAX):
            chunk = data[start : start + _BP_BULK_MAX]
            self._send(bytes([BP_BULK_WRITE | (len(chunk) - 1)]) + chunk)
            reply = self._receive(1 + len(chunk), "bulk write")
            if reply[0] != BP_OK:
                raise ProtocolError(self.address, f"bulk write refused: {reply!r}")
            for offset, status in enumerate(reply[1:]):
                if status != 0x00:
                    where = "its address" if start + offset == 0 else f"data byte {start + offset - 1}"
                    raise I2cNack(self.address, f"target 0x{addr:02X} did not acknowledge {where}")

    def _command(self, byte: int) -> None:
        self._send(bytes([byte]))
        reply = self._receive(1, f"command 0x{byte:02X}")
        if reply[0] != BP_OK:
            raise ProtocolError(self.address, f"command 0x{byte:02X} answered 0x{reply[0]:02X}, not 0x01")

    def _open_port(self) -> _BytePort:
        if self._port is None:
            raise InstrumentError(self.address, "transport is closed")
        return self._port

    def _send(self, data: bytes) -> None:
        try:
            self._open_port().write(data)
        except OSError as exc:
            raise InstrumentError(self.address, f"write failed: {exc}") from exc

    def _receive(self, n: int, what: str) -> bytes:
        try:
            data = self._open_port().read(n)
        except OSError as exc:
            raise InstrumentError(self.address, f"{what}: read failed: {exc}") from exc
        if len(data) != n:
            raise InstrumentTimeout(
                self.address, f"{what}: {len(data)} of {n} bytes within {self.timeout_s} s"
            )
        return bytes(data)


def open_i2c(address: str, *, timeout_ms: int = 1000, endpoints: dict[str, Any] | None = None) -> Any:
    """Return an I2cTransport for a station address.

    `/dev/i2c-N` opens the Linux adapter; `buspirate:URL` opens a Bus Pirate at a pyserial URL
    (`buspirate:/dev/ttyUSB0`); any address found in `endpoints` (the simulated lab's
    `sim-i2c://slotN` buses) is returned as it is.
    """
    if endpoints and address in endpoints:
        return endpoints[address]
    if address.startswith("/dev/i2c-"):
        return LinuxI2cDev(address)
    if address.startswith("buspirate:"):
        return BusPirateI2c(address.removeprefix("buspirate:"), timeout_s=timeout_ms / 1000.0)
    raise InstrumentError(address, "not an I2C address: expected /dev/i2c-N or buspirate:PORT")
