"""The drivers that ship with qualify, by the names station files use."""

from __future__ import annotations

from typing import Any

from drivers.chamber.espec import EspecChamber
from drivers.dimm.pmic import Pmic5000
from drivers.dimm.spd5118 import Spd5118Hub
from drivers.dimm.tester import DimmTester
from drivers.dmm.keysight_34465a import MODELS as TRUEVOLT_MODELS
from drivers.dmm.keysight_34465a import KeysightTruevolt
from drivers.nvme.controller import NvmeDriver
from drivers.protocols import (
    MemoryTester,
    Multimeter,
    NvmeController,
    Pmic,
    PowerSupply,
    SlotPower,
    SpdHub,
    ThermalChamber,
)
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.registry import DriverSpec
from drivers.slotpower.quarch_array import QuarchArray


def _keysight(model: str) -> DriverSpec:
    def build(transport: Any, options: dict[str, Any]) -> KeysightE36300:
        return KeysightE36300(transport, model=model)

    return DriverSpec(
        name=f"keysight.{model.lower()}",
        transport="visa",
        factory=build,
        doc=f"Keysight {model} programmable DC supply (SCPI over VISA)",
        provides=(PowerSupply,),
    )


def _truevolt(model: str) -> DriverSpec:
    def build(transport: Any, options: dict[str, Any]) -> KeysightTruevolt:
        return KeysightTruevolt(transport, model=model)

    return DriverSpec(
        name=f"keysight.{model.lower()}",
        transport="visa",
        factory=build,
        doc=f"Keysight {model} Truevolt DMM (SCPI over VISA)",
        provides=(Multimeter,),
    )


def _quarch_array(transport: Any, options: dict[str, Any]) -> QuarchArray:
    return QuarchArray(
        transport,
        model=str(options.get("model", "QTL1461")),
        ports=int(options.get("ports", 4)),
        port_map={int(s): int(p) for s, p in options.get("port_map", {}).items()},
    )


BUILTIN_DRIVERS: list[DriverSpec] = [
    _keysight("E36311A"),
    _keysight("E36312A"),
    _keysight("E36313A"),
    DriverSpec(
        name="espec.chamber",
        transport="serial",
        factory=lambda transport, options: EspecChamber(transport, controller=options.get("controller")),
        doc="ESPEC temperature chamber controller (ESPEC serial command dialect)",
        provides=(ThermalChamber,),
    ),
    DriverSpec(
        name="nvme",
        transport="nvme",
        factory=lambda transport, options: NvmeDriver(transport),
        doc="NVMe controller through a passthrough transport (admin commands as bytes)",
        provides=(NvmeController,),
    ),
    DriverSpec(
        name="jedec.spd5118",
        transport="i2c",
        factory=lambda transport, options: Spd5118Hub(transport, hid=int(options.get("hid", 0))),
        doc="DDR5 SPD5118 hub (JESD300-5): SPD pages, write protection, temperature, over I2C",
        provides=(SpdHub,),
    ),
    DriverSpec(
        name="jedec.pmic5000",
        transport="i2c",
        factory=lambda transport, options: Pmic5000(
            transport,
            hid=int(options.get("hid", 0)),
            adc_settle_s=float(options.get("adc_settle_ms", 10)) / 1000.0,
        ),
        doc="DDR5 server PMIC (JESD301): rail telemetry and margining, over I2C",
        provides=(Pmic,),
    ),
    DriverSpec(
        name="qualify.dimm_tester",
        transport="visa",
        factory=lambda transport, options: DimmTester(transport, slots=int(options.get("slots", 8))),
        doc="DIMM slot tester in qualify's documented dialect (docs/dimm_tester_dialect.md)",
        provides=(MemoryTester,),
    ),
    *(_truevolt(m) for m in TRUEVOLT_MODELS),
    DriverSpec(
        name="quarch.array",
        transport="serial",
        factory=_quarch_array,
        doc="Quarch Torridon array controller switching DUT slots (serial console, 19200 8N1)",
        provides=(SlotPower,),
    ),
]
