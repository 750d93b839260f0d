"""A simulated server DDR5 PMIC (PMIC5000 class, JESD301-1): 12 V in, four bucks and two LDOs.

Rails: SWA and SWB (dual-phase VDD, 1.1 V), SWC (VDDQ, 1.1 V), SWD (VPP, 1.8 V), LDOs VOUT_1.8V and
VOUT_1.0V. Register map from JESD301 as ZenStates-Core (irusanov, Ddr5PmicReader.cs and
JedecPmicRegisters.cs) decodes the client PMIC5100 (JESD301-2), with the server part's extra buck
placed where those sources place it: the PMIC5100 keeps VDDQ at R25 and VPP at R27, the PMIC5000's
SWC and SWD registers, and leaves R23 (the PMIC5000's SWB) at 0, which is how ZenStates tells the
two apart *(check the PMIC5000 rows against JESD301-1 itself)*:

- R0C..R0F: SWA, SWB, SWC, SWD output current (bits 5:0, 125 mA per LSB), or power (125 mW per
  LSB) when R1B bit 6 is set; with R1A bit 1 also set R0C holds the total power.
- R21/R23/R25: SWA/SWB/SWC setting, 800 mV + 5 mV × bits 7:1 (0.800..1.435 V); R27: SWD setting,
  1500 mV + 5 mV × bits 7:1 (1.500..2.135 V); bit 0 is the power-good threshold and is kept.
  The host may change them only in programmable mode, R2F bit 2; in secure mode writes are
  acknowledged and ignored.
- R30: ADC enable (bit 7), select (bits 6:3: 0 SWA, 1 SWB, 2 SWC, 3 SWD, 5 VIN_Bulk, 8 VOUT_1.8V,
  9 VOUT_1.0V), update rate (bits 1:0); R31: the reading, 15 mV per LSB (70 mV for VIN_Bulk).
- R32 bit 7: VR enable. R33 bits 7:5: temperature code (<85, 85, 95 ... 135, >140 °C).
- R3B: revision; R3C:R3D: vendor (JEP-106 with parity), here taken from the SPD's PMIC0 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REG_TELEMETRY = 0x0C  # R0C..R0F
REG_POWER_TOTAL = 0x1A
REG_POWER_SELECT = 0x1B
REG_PROGRAMMABLE = 0x2F
REG_ADC_SELECT = 0x30
REG_ADC_VALUE = 0x31
REG_VR_ENABLE = 0x32
REG_TEMPERATURE = 0x33
REG_REVISION = 0x3B
REG_VENDOR = 0x3C

PROGRAMMABLE_MODE = 0x04
ADC_ENABLE = 0x80
VR_ENABLE = 0x80
POWER_MODE = 0x40
TOTAL_POWER = 0x02
TELEMETRY_LSB = 0.125  # A or W per LSB
ADC_RAIL_LSB_V = 0.015
ADC_VIN_LSB_V = 0.070
VID_STEP_V = 0.005


@dataclass(frozen=True)
class Regulator:
    """Describe one buck: register, VID base, ADC select code and its share of the input power."""

    name: str
    register: int
    base_v: float
    adc_code: int
    power_share: float


REGULATORS = (
    Regulator("SWA", 0x21, 0.800, 0, 0.31),
    Regulator("SWB", 0x23, 0.800, 1, 0.31),
    Regulator("SWC", 0x25, 0.800, 2, 0.22),
    Regulator("SWD", 0x27, 1.500, 3, 0.06),
)
BY_NAME = {reg.name: reg for reg in REGULATORS}
# Conversion efficiency of the bucks at light load *(check: vendor curves put it near 85-90 %)*.
EFFICIENCY = 0.88
LDO_VOLTS = {8: 1.8, 9: 1.0}
ADC_VIN_CODE = 5
_TEMP_CODES_C = (85.0, 95.0, 105.0, 115.0, 125.0, 135.0, 140.0)
# The PMIC sits a few degrees above the module's hub sensor: it dissipates the conversion loss.
PMIC_SELF_HEATING_C = 5.0
_GUARDED = {reg.register for reg in REGULATORS} | {reg.register + 1 for reg in REGULATORS}


def vid_code(base_v: float, volts: float) -> int:
    """Return the 7-bit VID for `volts` on a rail whose code 0 is `base_v`; raise if off range or grid."""
    steps = (volts - base_v) / VID_STEP_V
    code = round(steps)
    if abs(steps - code) > 1e-6 or not 0 <= code <= 127:
        top = base_v + 127 * VID_STEP_V
        raise ValueError(f"{volts:.4f} V is not on the 5 mV grid from {base_v:.3f} V to {top:.3f} V")
    return code


class SimPmic5000:
    """Simulate one PMIC answering as an I2cTarget; `vin_v()` and `input_w()` come from the lab."""

    def __init__(
        self,
        vin_v: Callable[[], float],
        input_w: Callable[[], float],
        temperature_c: Callable[[], float],
        *,
        vendor: bytes = bytes((0x80, 0xB3)),
        revision: int = 0x40,
        setpoints_v: Mapping[str, float] | None = None,
    ) -> None:
        self._vin_v = vin_v
        self._input_w = input_w
        self._temperature_c = temperature_c
        self.registers = bytearray(256)
        defaults = {"SWA": 1.1, "SWB": 1.1, "SWC": 1.1, "SWD": 1.8, **(setpoints_v or {})}
        for reg in REGULATORS:
            self.registers[reg.register] = vid_code(reg.base_v, defaults[reg.name]) << 1
        self.registers[REG_VR_ENABLE] = VR_ENABLE
        self.registers[REG_ADC_SELECT] = ADC_ENABLE
        self.registers[REG_REVISION] = revision
        self.registers[REG_VENDOR : REG_VENDOR + 2] = vendor
        self._pointer = 0

    def setpoint_v(self, rail: str) -> float:
        """Return the voltage a buck is programmed to."""
        reg = BY_NAME[rail]
        return reg.base_v + (self.registers[reg.register] >> 1) * VID_STEP_V

    def enabled(self) -> bool:
        """Return whether the regulators run: VR enable set and 12 V present."""
        return bool(self.registers[REG_VR_ENABLE] & VR_ENABLE) and self._vin_v() > 0

    def output_v(self, rail: str) -> float:
        """Return a buck's output now: its setpoint while enabled, else 0."""
        return self.setpoint_v(rail) if self.enabled() else 0.0

    def output_a(self, rail: str) -> float:
        """Return a buck's load current now, from its share of the module's input power."""
        volts = self.output_v(rail)
        if volts <= 0:
            return 0.0
        return self._input_w() * EFFICIENCY * BY_NAME[rail].power_share / volts

    def i2c_write(self, data: bytes) -> None:
        """Take a register pointer and data, auto-incrementing."""
        if not data:
            return
        self._pointer = data[0]
        for byte in data[1:]:
            self._write_register(self._pointer, byte)
            self._pointer = (self._pointer + 1) & 0xFF

    def i2c_read(self, n: int) -> bytes:
        """Return `n` registers from the pointer, auto-incrementing."""
        out = bytearray()
        for _ in range(n):
            out.append(self._read_register(self._pointer))
            self._pointer = (self._pointer + 1) & 0xFF
        return bytes(out)

    def snapshot(self) -> dict[str, Any]:
        """Return the register file as JSON-ready data."""
        return {"registers": self.registers.hex()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.registers = bytearray.fromhex(state["registers"])
        self._pointer = 0

    def _write_register(self, register: int, value: int) -> None:
        if register in (REG_ADC_VALUE, REG_TEMPERATURE, REG_REVISION, REG_VENDOR, REG_VENDOR + 1):
            return
        if REG_TELEMETRY <= register < REG_TELEMETRY + 4:
            return
        if register in _GUARDED and not self.registers[REG_PROGRAMMABLE] & PROGRAMMABLE_MODE:
            return
        self.registers[register] = value

    def _read_register(self, register: int) -> int:
        if REG_TELEMETRY <= register < REG_TELEMETRY + 4:
            return self._telemetry(REGULATORS[register - REG_TELEMETRY])
        if register == REG_ADC_VALUE:
            return self._adc()
        if register == REG_TEMPERATURE:
            return self._temperature_code() << 5
        return self.registers[register]

    def _telemetry(self, reg: Regulator) -> int:
        power_mode = bool(self.registers[REG_POWER_SELECT] & POWER_MODE)
        if power_mode and reg.name == "SWA" and self.registers[REG_POWER_TOTAL] & TOTAL_POWER:
            value = sum(self.output_a(r.name) * self.output_v(r.name) for r in REGULATORS)
        elif power_mode:
            value = self.output_a(reg.name) * self.output_v(reg.name)
        else:
            value = self.output_a(reg.name)
        return min(0x3F, round(value / TELEMETRY_LSB))

    def _adc(self) -> int:
        select = self.registers[REG_ADC_SELECT]
        if not select & ADC_ENABLE:
            return 0
        code = (select >> 3) & 0x0F
        if code == ADC_VIN_CODE:
            return min(0xFF, round(self._vin_v() / ADC_VIN_LSB_V))
        volts = next((self.output_v(r.name) for r in REGULATORS if r.adc_code == code), None)
        if volts is None:
            volts = LDO_VOLTS.get(code, 0.0) if self._vin_v() > 0 else 0.0
        return min(0xFF, round(volts / ADC_RAIL_LSB_V))

    def _temperature_code(self) -> int:
        temp_c = self._temperature_c() + PMIC_SELF_HEATING_C
        return sum(1 for threshold in _TEMP_CODES_C if temp_c >= threshold)
