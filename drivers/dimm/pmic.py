"""DDR5 server PMIC driver (PMIC5000 class, JESD301-1): rail telemetry and output margining over I2C.

Register use, from JESD301 as ZenStates-Core's Ddr5PmicReader decodes it (see the simulator's
sim_instruments/dimm/pmic.py for the full table and what is still to be checked against JESD301-1):
R30 selects and enables the ADC, R31 reads it (15 mV per LSB for rails, 70 mV for VIN_Bulk);
R0C..R0F give SWA..SWD current (125 mA per LSB) or power (125 mW per LSB when R1B bit 6 is set);
R21/R23/R25 program SWA/SWB/SWC as 800 mV + 5 mV × bits 7:1 and R27 programs SWD as 1500 mV +
5 mV × bits 7:1, accepted only in programmable mode (R2F bit 2). Functional rails: VDD is SWA and
SWB in parallel, VDDQ is SWC, VPP is SWD.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.errors import InstrumentError
from drivers.transport.i2c import I2cTransport

PMIC_BASE_ADDR = 0x48
REG_TELEMETRY = 0x0C
REG_POWER_SELECT = 0x1B
REG_PROGRAMMABLE = 0x2F
REG_ADC_SELECT = 0x30
REG_ADC_VALUE = 0x31
REG_VR_ENABLE = 0x32
REG_VENDOR = 0x3C
PROGRAMMABLE_MODE = 0x04
ADC_ENABLE = 0x80
POWER_MODE = 0x40
TELEMETRY_LSB = 0.125
ADC_RAIL_LSB_V = 0.015
ADC_VIN_LSB_V = 0.070
ADC_VIN_CODE = 5
VID_STEP_V = 0.005
# JESD301 asks the host to wait for a fresh conversion after changing the ADC select
# (ZenStates-Core waits 9 ms); the simulator converts at once, so tests pass 0.
ADC_SETTLE_S = 0.010

# Regulator: (setting register, VID base in volts, ADC select code, telemetry offset).
REGULATORS: dict[str, tuple[int, float, int, int]] = {
    "SWA": (0x21, 0.800, 0, 0),
    "SWB": (0x23, 0.800, 1, 1),
    "SWC": (0x25, 0.800, 2, 2),
    "SWD": (0x27, 1.500, 3, 3),
}
RAILS: dict[str, tuple[str, ...]] = {"VDD": ("SWA", "SWB"), "VDDQ": ("SWC",), "VPP": ("SWD",)}


def vid_for(rail_base_v: float, volts: float) -> int:
    """Return the 7-bit VID for `volts`; raise ValueError off the 5 mV grid or the 128-step range."""
    steps = (volts - rail_base_v) / VID_STEP_V
    code = round(steps)
    if abs(steps - code) > 1e-6 or not 0 <= code <= 0x7F:
        top = rail_base_v + 0x7F * VID_STEP_V
        raise ValueError(f"{volts:.4f} V is not on the 5 mV grid of {rail_base_v:.3f}..{top:.3f} V")
    return code


class Pmic5000:
    """Drive one module's PMIC at 0x48 + hid over an I2cTransport; implements Pmic."""

    def __init__(
        self,
        transport: I2cTransport,
        hid: int = 0,
        *,
        adc_settle_s: float = ADC_SETTLE_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= hid <= 7:
            raise ValueError(f"a DDR5 sideband HID is 0..7, got {hid}")
        self._transport = transport
        self.addr = PMIC_BASE_ADDR + hid
        self.address = f"{transport.address}@0x{self.addr:02X}"
        self._settle_s = adc_settle_s
        self._sleep = sleep

    def identify(self) -> str:
        """Return `PMIC vendor BANK:CODE` from R3C:R3D."""
        raw = self._read(REG_VENDOR, 2)
        return f"PMIC vendor {raw[0] & 0x7F:02X}:{raw[1] & 0x7F:02X}"

    def read_rails(self) -> dict[str, tuple[float, float]]:
        """Measure VDD, VDDQ and VPP as {rail: (volts, amps)}; VDD's current is SWA plus SWB."""
        regulators = self.read_regulators()
        return {
            rail: (regulators[parts[0]][0], sum(regulators[p][1] for p in parts))
            for rail, parts in RAILS.items()
        }

    def read_regulators(self) -> dict[str, tuple[float, float]]:
        """Measure each buck as {SWx: (volts, amps)}, restoring the ADC select it found."""
        telemetry = self._read(REG_TELEMETRY, 4)
        power_mode = bool(self._read(REG_POWER_SELECT, 1)[0] & POWER_MODE)
        previous = self._read(REG_ADC_SELECT, 1)[0]
        out: dict[str, tuple[float, float]] = {}
        try:
            for name, (_, _, adc_code, offset) in REGULATORS.items():
                volts = self._adc(adc_code) * ADC_RAIL_LSB_V
                value = (telemetry[offset] & 0x3F) * TELEMETRY_LSB
                amps = (value / volts if volts > 0 else 0.0) if power_mode else value
                out[name] = (volts, amps)
        finally:
            self._write(REG_ADC_SELECT, previous)
        return out

    def read_input_voltage(self) -> float:
        """Measure VIN_Bulk (the slot's 12 V) in volts."""
        previous = self._read(REG_ADC_SELECT, 1)[0]
        try:
            return self._adc(ADC_VIN_CODE) * ADC_VIN_LSB_V
        finally:
            self._write(REG_ADC_SELECT, previous)

    def rail_setpoint(self, rail: str) -> float:
        """Return the programmed voltage of a rail (VDD, VDDQ, VPP) or a buck (SWA..SWD)."""
        register, base_v, _, _ = REGULATORS[self._regulators(rail)[0]]
        return base_v + (self._read(register, 1)[0] >> 1) * VID_STEP_V

    def set_rail_voltage(self, rail: str, volts: float) -> None:
        """Program a rail (VDD sets SWA and SWB) or a buck on the 5 mV grid, then verify it.

        Enters programmable mode (R2F bit 2) for the write and restores the mode found, keeping
        each register's power-good threshold bit 0.
        """
        names = self._regulators(rail)
        codes = {name: vid_for(REGULATORS[name][1], volts) for name in names}
        mode = self._read(REG_PROGRAMMABLE, 1)[0]
        try:
            if not mode & PROGRAMMABLE_MODE:
                self._write(REG_PROGRAMMABLE, mode | PROGRAMMABLE_MODE)
            for name, code in codes.items():
                register = REGULATORS[name][0]
                keep = self._read(register, 1)[0] & 0x01
                self._write(register, code << 1 | keep)
                if self._read(register, 1)[0] >> 1 != code:
                    raise InstrumentError(self.address, f"{name} did not take {volts:.3f} V (secure mode?)")
        finally:
            if not mode & PROGRAMMABLE_MODE:
                self._write(REG_PROGRAMMABLE, mode)

    def regulators_enabled(self) -> bool:
        """Return whether R32's VR enable bit is set."""
        return bool(self._read(REG_VR_ENABLE, 1)[0] & 0x80)

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _regulators(self, rail: str) -> tuple[str, ...]:
        key = rail.upper()
        if key in RAILS:
            return RAILS[key]
        if key in REGULATORS:
            return (key,)
        raise ValueError(f"unknown rail {rail!r}: use VDD, VDDQ, VPP or SWA..SWD")

    def _adc(self, code: int) -> int:
        self._write(REG_ADC_SELECT, ADC_ENABLE | code << 3)
        if self._settle_s > 0:
            self._sleep(self._settle_s)
        return self._read(REG_ADC_VALUE, 1)[0]

    def _read(self, register: int, n: int) -> bytes:
        return self._transport.write_read(self.addr, bytes((register,)), n)

    def _write(self, register: int, value: int) -> None:
        self._transport.write(self.addr, bytes((register, value)))
