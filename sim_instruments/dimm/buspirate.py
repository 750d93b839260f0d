"""A Bus Pirate in binary I2C mode, emulated on a pty in front of a simulated I2C bus.

Speaks the byte protocol drivers.transport.i2c.BusPirateI2c uses (Dangerous Prototypes, "Bitbang
(binary)" and "I2C (binary)"): 0x00 answers `BBIO1`, 0x02 from bitbang enters I2C and answers
`I2C1`; in I2C mode START 0x02, STOP 0x03, ACK 0x06, NACK 0x07, peripherals 0x4x and speed 0x6x
answer 0x01, read 0x04 answers the byte, and bulk write 0x1n takes n+1 bytes and answers 0x01 and
then 0x00 (ACK) or 0x01 (NACK) per byte. A write phase reaches the target at the repeated START
or STOP that ends it, so a target refusing data bytes shows up in the read-back, not the ACKs.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import tty

from drivers.transport.i2c import I2cNack
from sim_instruments.dimm.i2c_bus import I2cTarget, SimI2cBus

_CHUNK_BYTES = 4096


class BusPirateEmulator:
    """Emulate the Bus Pirate's byte protocol as a function of input bytes, over one SimI2cBus."""

    def __init__(self, bus: SimI2cBus) -> None:
        self.bus = bus
        self.mode = "bitbang"
        self._pending = bytearray()
        self._addr: int | None = None
        self._reading = False
        self._target: I2cTarget | None = None
        self._write_phase = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Consume input bytes; return every reply byte they produce."""
        self._pending += data
        out = bytearray()
        while self._pending:
            consumed, reply = self._step()
            if not consumed:
                break
            del self._pending[:consumed]
            out += reply
        return bytes(out)

    def _step(self) -> tuple[int, bytes]:
        command = self._pending[0]
        if self.mode == "bitbang":
            if command == 0x00:
                return 1, b"BBIO1"
            if command == 0x02:
                self.mode = "i2c"
                return 1, b"I2C1"
            return 1, b""
        if command == 0x00:
            self._finish()
            self.mode = "bitbang"
            return 1, b"BBIO1"
        if command == 0x01:
            return 1, b"I2C1"
        if command == 0x02:
            self._finish()
            return 1, b"\x01"
        if command == 0x03:
            self._finish()
            self._addr = None
            return 1, b"\x01"
        if command == 0x04:
            return 1, self._read_byte()
        if command in (0x06, 0x07) or command & 0xF0 in (0x40, 0x60):
            return 1, b"\x01"
        if command & 0xF0 == 0x10:
            count = (command & 0x0F) + 1
            if len(self._pending) < 1 + count:
                return 0, b""
            data = bytes(self._pending[1 : 1 + count])
            return 1 + count, b"\x01" + bytes(self._write(byte) for byte in data)
        return 1, b"\x00"

    def _write(self, byte: int) -> int:
        """Return the ACK status (0 = ACK) of one byte on the wire."""
        if self._addr is None:
            self._addr = byte >> 1
            self._reading = bool(byte & 1)
            self.bus.prepare()
            try:
                with self.bus.lock:
                    self._target = self.bus.target(self._addr)
            except I2cNack:
                self._target = None
                return 0x01
            return 0x00
        if self._target is None or self._reading:
            return 0x01
        self._write_phase.append(byte)
        return 0x00

    def _read_byte(self) -> bytes:
        if self._target is None or not self._reading:
            return b"\xff"
        with self.bus.lock:
            return self._target.i2c_read(1)

    def _finish(self) -> None:
        """End the current phase: deliver a pending write, and expect a new address byte."""
        if self._target is not None and self._write_phase:
            with contextlib.suppress(I2cNack), self.bus.lock:
                self._target.i2c_write(bytes(self._write_phase))
        self._write_phase.clear()
        self._addr = None
        self._reading = False
        self._target = None


class BusPiratePty:
    """Serve a BusPirateEmulator on a pseudo-terminal; `address` is the path a client opens."""

    def __init__(self, bus: SimI2cBus) -> None:
        self.emulator = BusPirateEmulator(bus)
        self._master_fd = -1
        self._slave_fd = -1
        self._wake_r = -1
        self._wake_w = -1
        self._thread: threading.Thread | None = None
        self.address = ""

    def start(self) -> None:
        """Open the pty (raw, so no byte is translated) and serve it in a thread."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        self.address = os.ttyname(self._slave_fd)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"BusPiratePty-{self.address}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every descriptor; stopping twice is harmless."""
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._master_fd, self._slave_fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._master_fd, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                events = selector.select()
                if any(key.fd == self._wake_r for key, _ in events):
                    return
                try:
                    data = os.read(self._master_fd, _CHUNK_BYTES)
                except OSError:
                    return
                reply = self.emulator.feed(data)
                if reply:
                    os.write(self._master_fd, reply)
