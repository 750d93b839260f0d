"""SPD5118 hub driver (JESD300-5): read the SPD through page selects, the thermal sensor, write protection.

Register use as Linux's spd5118 driver (drivers/hwmon/spd5118.c) and the Bus Pirate 5's DDR5
command do it, in one-byte (legacy) addressing: MR11 bits 2:0 select the 128-byte NVM page that
addresses 0x80..0xFF show; MR12:MR13 hold one protection bit per 64-byte block; MR48 bit 2
reports write-protect override and bit 3 a write in progress; MR49:MR50 are the temperature,
11-bit two's complement in bits 12:2, 0.25 °C per LSB. The driver leaves page 0 selected after
every NVM access and selects it again before reading a volatile register, because hubs that
follow the standard literally hide those registers (temperature included) while another page is
selected, and firmware or another bus master may have left one (the case Linux's driver handles).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.dimm.spd import SPD_SIZE_BYTES, Ddr5Spd, decode_spd
from drivers.errors import InstrumentError, InstrumentTimeout
from drivers.transport.i2c import I2cTransport

HUB_BASE_ADDR = 0x50
PAGE_BYTES = 128
PAGES = SPD_SIZE_BYTES // PAGE_BYTES
BLOCK_BYTES = 64
BLOCKS = SPD_SIZE_BYTES // BLOCK_BYTES
WRITE_ROW_BYTES = 16
END_USER_START = 0x280
END_USER_END = SPD_SIZE_BYTES  # exclusive
NVM_SELECT = 0x80

MR_DEVICE_TYPE = 0x00
MR_LEGACY_MODE = 0x0B
MR_WRITE_PROTECT = 0x0C
MR_DEVICE_STATUS = 0x30
MR_TEMPERATURE = 0x31
STATUS_WP_OVERRIDE = 0x04
STATUS_BUSY = 0x08
DEVICE_TYPE = 0x5118
# JESD300-5 gives the NVM write time as MR6's capability; 5 ms rows poll well within 50 ms.
WRITE_POLL_LIMIT_S = 0.05


class WriteProtectedError(InstrumentError):
    """Signal a write into protected NVM blocks, refused before anything was sent."""


def decode_temperature(word: int) -> float:
    """Return °C from the MR50:MR49 word: bits 12:2 as 11-bit two's complement, 0.25 °C per LSB."""
    raw = (word >> 2) & 0x7FF
    if raw & 0x400:
        raw -= 0x800
    return raw * 0.25


def encode_temperature(temp_c: float) -> int:
    """Return the register word for `temp_c`, clamped to the -256..255.75 °C the format holds."""
    clamped = min(255.75, max(-256.0, temp_c))
    return (round(clamped * 4) & 0x7FF) << 2


class Spd5118Hub:
    """Drive one module's SPD5118 hub at 0x50 + hid over an I2cTransport; implements SpdHub."""

    def __init__(
        self,
        transport: I2cTransport,
        hid: int = 0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= hid <= 7:
            raise ValueError(f"a DDR5 sideband HID is 0..7, got {hid}")
        self._transport = transport
        self.addr = HUB_BASE_ADDR + hid
        self.address = f"{transport.address}@0x{self.addr:02X}"
        self._sleep = sleep
        self._clock = clock

    def identify(self) -> str:
        """Return `SPD5118 vendor BANK:CODE rev X.Y` after checking MR0:MR1 read 0x5118."""
        self._select_page(0)
        raw = self._transport.write_read(self.addr, bytes((MR_DEVICE_TYPE,)), 5)
        device_type = raw[0] << 8 | raw[1]
        if device_type != DEVICE_TYPE:
            raise InstrumentError(self.address, f"MR0:MR1 read 0x{device_type:04X}, not an SPD5118 (0x5118)")
        major, minor = ((raw[2] >> 4) & 0x03) + 1, (raw[2] >> 1) & 0x07
        return f"SPD5118 vendor {raw[3] & 0x7F:02X}:{raw[4] & 0x7F:02X} rev {major}.{minor}"

    def read_spd(self) -> bytes:
        """Read the whole 1024-byte NVM, page by page, and leave page 0 selected."""
        image = bytearray()
        try:
            for page in range(PAGES):
                self._select_page(page)
                image += self._transport.write_read(self.addr, bytes((NVM_SELECT,)), PAGE_BYTES)
        finally:
            self._select_page(0)
        return bytes(image)

    def read_decoded(self) -> Ddr5Spd:
        """Read the SPD and decode it; check `crc_valid` on the result."""
        return decode_spd(self.read_spd())

    def read_temperature(self) -> float:
        """Measure the hub's thermal sensor in °C (selecting page 0 first, whoever left another)."""
        self._select_page(0)
        raw = self._transport.write_read(self.addr, bytes((MR_TEMPERATURE,)), 2)
        return decode_temperature(raw[0] | raw[1] << 8)

    def write_protection(self) -> int:
        """Return the protected blocks as a 16-bit mask (bit n protects bytes 64n..64n+63)."""
        self._select_page(0)
        raw = self._transport.write_read(self.addr, bytes((MR_WRITE_PROTECT,)), 2)
        return raw[0] | raw[1] << 8

    def write_protect_override(self) -> bool:
        """Return whether the hub is in write-protect override (HSA strapped to ground at power-on)."""
        return bool(self._status() & STATUS_WP_OVERRIDE)

    def set_write_protection(self, blocks_mask: int) -> None:
        """Set the protected blocks; raise InstrumentError if the hub did not take the new bits.

        Hubs accept MR12:MR13 only in write-protect override, and otherwise acknowledge the write
        and ignore it, so the driver reads the bits back.
        """
        if not 0 <= blocks_mask <= 0xFFFF:
            raise ValueError(f"blocks_mask must be a 16-bit mask, got 0x{blocks_mask:X}")
        self._transport.write(self.addr, bytes((MR_WRITE_PROTECT, blocks_mask & 0xFF, blocks_mask >> 8)))
        now = self.write_protection()
        if now != blocks_mask:
            hint = (
                "" if self.write_protect_override() else " (write-protect override is off: HSA not grounded)"
            )
            raise InstrumentError(
                self.address, f"write protection reads 0x{now:04X} after writing 0x{blocks_mask:04X}{hint}"
            )

    def write_end_user(self, offset: int, data: bytes) -> None:
        """Write `data` at NVM `offset` inside the end-user area (0x280..0x3FF), then verify it.

        Refuses (WriteProtectedError) before sending if any block touched is protected. Writes go
        in 16-byte rows, each followed by polling MR48's busy bit; the data is read back.
        """
        end = offset + len(data)
        if not data or offset < END_USER_START or end > END_USER_END:
            raise ValueError(
                f"end-user writes lie in 0x{END_USER_START:03X}..0x{END_USER_END - 1:03X}; "
                f"got 0x{offset:03X}..0x{end - 1:03X}"
            )
        protection = self.write_protection()
        locked = [
            b for b in range(offset // BLOCK_BYTES, (end - 1) // BLOCK_BYTES + 1) if protection >> b & 1
        ]
        if locked:
            raise WriteProtectedError(
                self.address, f"blocks {locked} are write-protected (MR12:MR13 0x{protection:04X})"
            )
        position = offset
        try:
            while position < end:
                row_end = min(end, (position // WRITE_ROW_BYTES + 1) * WRITE_ROW_BYTES)
                self._select_page(position // PAGE_BYTES)
                payload = (
                    bytes((NVM_SELECT | (position % PAGE_BYTES),))
                    + data[position - offset : row_end - offset]
                )
                self._transport.write(self.addr, payload)
                self._select_page(0)
                self._wait_idle()
                position = row_end
            written = self._read_nvm(offset, len(data))
        finally:
            self._select_page(0)
        if written != data:
            raise InstrumentError(
                self.address, f"NVM at 0x{offset:03X} reads back {written.hex()} after writing {data.hex()}"
            )

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _read_nvm(self, offset: int, length: int) -> bytes:
        out = bytearray()
        position = offset
        while position < offset + length:
            page_end = min(offset + length, (position // PAGE_BYTES + 1) * PAGE_BYTES)
            self._select_page(position // PAGE_BYTES)
            select = bytes((NVM_SELECT | (position % PAGE_BYTES),))
            out += self._transport.write_read(self.addr, select, page_end - position)
            position = page_end
        return bytes(out)

    def _select_page(self, page: int) -> None:
        self._transport.write(self.addr, bytes((MR_LEGACY_MODE, page)))

    def _status(self) -> int:
        return self._transport.write_read(self.addr, bytes((MR_DEVICE_STATUS,)), 1)[0]

    def _wait_idle(self) -> None:
        deadline = self._clock() + WRITE_POLL_LIMIT_S
        while self._status() & STATUS_BUSY:
            if self._clock() > deadline:
                raise InstrumentTimeout(self.address, f"NVM write still busy after {WRITE_POLL_LIMIT_S} s")
            self._sleep(0.001)
