"""The drivers that ship with qualify, by the names station files use."""

from __future__ import annotations

from typing import Any

from drivers.chamber.espec import EspecChamber
from drivers.nvme.controller import NvmeDriver
from drivers.protocols import NvmeController, PowerSupply, ThermalChamber
from drivers.psu.keysight_e36300 import KeysightE36300
from drivers.registry import DriverSpec


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


BUILTIN_DRIVERS: list[DriverSpec] = [
    _keysight("E36311A"),
    _keysight("E36312A"),
    _keysight("E36313A"),
    DriverSpec(
        name="espec.chamber",
        transport="serial",
        factory=lambda transport, options: EspecChamber(transport),
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
]
