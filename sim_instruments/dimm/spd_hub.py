"""A simulated SPD5118 hub: the DDR5 module's 1024-byte SPD NVM, its write protection and thermal sensor.

Register map as JESD300-5 defines it and Linux's spd5118 hwmon driver (drivers/hwmon/spd5118.c)
and the Bus Pirate 5 firmware's DDR5 command (src/commands/i2c/ddr5.c) use it:
MR0:MR1 device type 0x51 0x18; MR2 revision; MR3:MR4 vendor (JEP-106, odd parity); MR5
capability (hub + temperature sensor); MR11 legacy-mode pointer (bits 2:0 NVM page, bit 3
two-byte addressing); MR12:MR13 write protection, one bit per 64-byte block (16 blocks), writable
only in write-protect override (HSA strapped to ground, reported in MR48 bit 2); MR19/MR20
clear MR51/MR52; MR26 sensor disable; MR28..MR35 high, low, critical-high and critical-low
limits; MR49:MR50 temperature, 11-bit two's complement in bits 12:2 at 0.25 °C per LSB; MR51
temperature status. In one-byte addressing an address byte with bit 7 set selects NVM byte
(page × 128 + bits 6:0); with a page other than 0 selected the hub answers 0 for every volatile
register but MR11, as Linux observed of hubs that take the standard literally.

Modelled with a stated choice where the sources leave it open *(check against JESD300-5)*:
an NVM write carries at most 16 bytes and wraps within its 16-byte row; a write into a protected
block is not acknowledged and leaves the NVM unchanged; reads wrap within the selected page;
the two-byte addressing mode is refused (the write setting MR11 bit 3 is not acknowledged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from drivers.dimm.spd import SPD_SIZE_BYTES, decode_spd
from drivers.transport.i2c import I2cNack

DEVICE_TYPE = (0x51, 0x18)
PAGE_BYTES = 128
BLOCK_BYTES = 64
WRITE_ROW_BYTES = 16
END_USER_START = 0x280

MR_LEGACY_MODE = 0x0B
MR_WP_LOW = 0x0C
MR_WP_HIGH = 0x0D
MR_CLEAR_TEMP_STATUS = 0x13
MR_CLEAR_ERROR_STATUS = 0x14
MR_TS_CONFIG = 0x1A
MR_LIMITS = 0x1C  # MR28..MR35: high, low, critical high, critical low, two bytes each
MR_DEVICE_STATUS = 0x30
MR_TEMP = 0x31
MR_TEMP_STATUS = 0x33
MR_ERROR_STATUS = 0x34

STATUS_WP_OVERRIDE = 0x04  # MR48 bit 2
STATUS_HIGH, STATUS_LOW, STATUS_CRIT, STATUS_LCRIT = 0x01, 0x02, 0x04, 0x08
CAPABILITY_HUB_AND_TS = 0x03
WRITE_RECOVERY_CAPABILITY = 0x52  # MR6 as the Bus Pirate's table lists it: 5 ms

# Limits after power-on: high 55 °C, critical high 85 °C (Bus Pirate's table of MR28..MR35).
DEFAULT_LIMITS_C = (55.0, 0.0, 85.0, 0.0)
# Factory protection: blocks 0..9 (JEDEC and manufacturer areas) locked, 10..15 (0x280..0x3FF,
# the end-user area) open, as shipped modules are.
FACTORY_PROTECTION = 0x03FF

_WRITABLE = {MR_LEGACY_MODE, 0x0E, 0x12, MR_TS_CONFIG, 0x1B, *range(MR_LIMITS, MR_LIMITS + 8)}
_TEMP_LSB_C = 0.25
_TEMP_MIN_C = -256.0
_TEMP_MAX_C = 255.75


def encode_temperature(temp_c: float) -> int:
    """Return the 16-bit register word for `temp_c`: 11-bit two's complement in bits 12:2."""
    clamped = min(_TEMP_MAX_C, max(_TEMP_MIN_C, temp_c))
    return (round(clamped / _TEMP_LSB_C) & 0x7FF) << 2


def decode_temperature(word: int) -> float:
    """Return °C from a 16-bit register word (bits 12:2, sign in bit 12)."""
    raw = (word >> 2) & 0x7FF
    if raw & 0x400:
        raw -= 0x800
    return raw * _TEMP_LSB_C


class SimSpd5118:
    """Simulate one SPD5118 hub with its NVM image, answering as an I2cTarget."""

    def __init__(
        self,
        image: bytes,
        temperature_c: Callable[[], float],
        *,
        write_protect_override: bool = False,
    ) -> None:
        if len(image) != SPD_SIZE_BYTES:
            raise ValueError(f"an SPD5118 holds {SPD_SIZE_BYTES} bytes, got {len(image)}")
        spd = decode_spd(image)
        self._temperature_c = temperature_c
        self.nvm = bytearray(image)
        hub = spd.spd_hub
        vendor = hub.manufacturer.to_spd() if hub is not None else bytes((0x80, 0xB3))
        revision = hub.revision if hub is not None else 0x10
        # MR2 packs the revision as major-1 in bits 5:4 and minor in bits 3:1 (Linux spd5118.c).
        mr2 = ((max(1, revision >> 4) - 1) & 0x03) << 4 | ((revision & 0x0F) & 0x07) << 1
        self._identity = {0: DEVICE_TYPE[0], 1: DEVICE_TYPE[1], 2: mr2, 3: vendor[0], 4: vendor[1]}
        self.write_protect_override = write_protect_override
        self.mode = 0
        self.protection = FACTORY_PROTECTION
        self.registers = bytearray(128)
        for index, limit_c in enumerate(DEFAULT_LIMITS_C):
            self._store_word(MR_LIMITS + 2 * index, encode_temperature(limit_c))
        self.latched_status = 0
        self.error_status = 0
        self._pointer = 0
        self._frozen_temp_word = encode_temperature(temperature_c())

    @property
    def page(self) -> int:
        """Get the NVM page MR11 selects."""
        return self.mode & 0x07

    def i2c_write(self, data: bytes) -> None:
        """Take an address byte, then data for a register or the NVM."""
        if not data:
            return
        self._pointer = data[0]
        payload = data[1:]
        if self._pointer & 0x80:
            self._write_nvm(payload)
            return
        for byte in payload:
            self._write_register(self._pointer, byte)
            self._pointer = (self._pointer + 1) & 0x7F

    def i2c_read(self, n: int) -> bytes:
        """Return `n` bytes from the pointer; NVM reads wrap in the page, registers in 0..0x7F."""
        out = bytearray()
        for _ in range(n):
            if self._pointer & 0x80:
                out.append(self.nvm[self.page * PAGE_BYTES + (self._pointer & 0x7F)])
                self._pointer = 0x80 | ((self._pointer + 1) & 0x7F)
            else:
                out.append(self._read_register(self._pointer))
                self._pointer = (self._pointer + 1) & 0x7F
        return bytes(out)

    def temperature_word(self) -> int:
        """Return the MR50:MR49 word the sensor shows now (frozen while the sensor is disabled)."""
        if not self.registers[MR_TS_CONFIG] & 0x01:
            self._frozen_temp_word = encode_temperature(self._temperature_c())
        return self._frozen_temp_word

    def is_protected(self, offset: int) -> bool:
        """Return whether the 64-byte block holding NVM byte `offset` is write-protected."""
        return bool(self.protection >> (offset // BLOCK_BYTES) & 1)

    def snapshot(self) -> dict[str, Any]:
        """Return the hub's mutable state as JSON-ready data."""
        return {
            "nvm": self.nvm.hex(),
            "mode": self.mode,
            "protection": self.protection,
            "registers": self.registers.hex(),
            "latched_status": self.latched_status,
            "error_status": self.error_status,
            "write_protect_override": self.write_protect_override,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.nvm = bytearray.fromhex(state["nvm"])
        self.mode = int(state["mode"])
        self.protection = int(state["protection"])
        self.registers = bytearray.fromhex(state["registers"])
        self.latched_status = int(state["latched_status"])
        self.error_status = int(state["error_status"])
        self.write_protect_override = bool(state["write_protect_override"])
        self._pointer = 0

    def _write_nvm(self, payload: bytes) -> None:
        if not payload:
            return
        offset = self.page * PAGE_BYTES + (self._pointer & 0x7F)
        if len(payload) > WRITE_ROW_BYTES:
            raise I2cNack("spd5118", f"NVM write of {len(payload)} bytes: the hub takes at most 16 at once")
        if self.is_protected(offset):
            raise I2cNack("spd5118", f"NVM byte 0x{offset:03X} lies in write-protected block {offset // 64}")
        row = offset - offset % WRITE_ROW_BYTES
        for index, byte in enumerate(payload):
            self.nvm[row + (offset - row + index) % WRITE_ROW_BYTES] = byte

    def _write_register(self, register: int, value: int) -> None:
        if register == MR_LEGACY_MODE:
            if value & 0x08:
                raise I2cNack("spd5118", "two-byte addressing (MR11 bit 3) is not modelled")
            self.mode = value & 0x07
            return
        if self.page:
            return
        if register in (MR_WP_LOW, MR_WP_HIGH):
            # The block-protection bits change only in write-protect override (HSA to ground);
            # otherwise the write is acknowledged and ignored, which is why drivers read back.
            if self.write_protect_override:
                shift = 0 if register == MR_WP_LOW else 8
                self.protection = (self.protection & ~(0xFF << shift)) | (value << shift)
            return
        if register == MR_CLEAR_TEMP_STATUS:
            self.latched_status &= ~value & 0x0F
            return
        if register == MR_CLEAR_ERROR_STATUS:
            self.error_status &= ~value & 0xFF
            return
        if register in _WRITABLE:
            if MR_LIMITS <= register < MR_LIMITS + 8:
                value &= 0xFC if register % 2 == 0 else 0x1F
            self.registers[register] = value

    def _read_register(self, register: int) -> int:
        if register == MR_LEGACY_MODE:
            return self.mode
        if self.page:
            return 0
        if register in self._identity:
            return self._identity[register]
        if register == 5:
            return CAPABILITY_HUB_AND_TS
        if register == 6:
            return WRITE_RECOVERY_CAPABILITY
        if register == MR_WP_LOW:
            return self.protection & 0xFF
        if register == MR_WP_HIGH:
            return self.protection >> 8
        if register == MR_DEVICE_STATUS:
            return STATUS_WP_OVERRIDE if self.write_protect_override else 0
        if register in (MR_TEMP, MR_TEMP + 1):
            word = self.temperature_word()
            return word & 0xFF if register == MR_TEMP else word >> 8
        if register == MR_TEMP_STATUS:
            return self._temperature_status()
        if register == MR_ERROR_STATUS:
            return self.error_status
        return self.registers[register]

    def _temperature_status(self) -> int:
        temp_c = decode_temperature(self.temperature_word())
        high, low, crit, lcrit = (self._limit_c(i) for i in range(4))
        now = (
            (STATUS_HIGH if temp_c > high else 0)
            | (STATUS_LOW if temp_c < low else 0)
            | (STATUS_CRIT if temp_c > crit else 0)
            | (STATUS_LCRIT if temp_c < lcrit else 0)
        )
        # Alarms latch until MR19 clears them, and re-assert while the condition holds.
        self.latched_status |= now
        return self.latched_status

    def _limit_c(self, index: int) -> float:
        register = MR_LIMITS + 2 * index
        return decode_temperature(self.registers[register] | self.registers[register + 1] << 8)

    def _store_word(self, register: int, word: int) -> None:
        self.registers[register] = word & 0xFF
        self.registers[register + 1] = word >> 8
