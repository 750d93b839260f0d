"""The station file format `qualify.station/1`: instruments, DUT slots, safe limits, simulation."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STATION_SPEC = "qualify.station/1"
SIM_REF = re.compile(r"\$\{sim:([A-Za-z0-9_.\-]+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentEntry(_Strict):
    """An instrument: its name on the station, the driver to use and where it answers."""

    name: str
    driver: str
    address: str
    timeout_ms: int = Field(default=2000, ge=10, le=600_000)
    options: dict[str, Any] = Field(default_factory=dict)


class SupplyBinding(_Strict):
    """Which supply channel feeds a DUT, at what nominal voltage and current limit."""

    instrument: str
    channel: int = Field(ge=1)
    nominal_v: float = Field(gt=0)
    current_limit_a: float = Field(default=2.0, gt=0)


class DeviceEntry(_Strict):
    """A further device of the same DUT (a DIMM's PMIC beside its SPD hub)."""

    driver: str
    address: str
    options: dict[str, Any] = Field(default_factory=dict)


class TesterBinding(_Strict):
    """Which slot of a shared tester instrument holds this DUT."""

    instrument: str
    slot: int = Field(ge=1)


class DutEntry(_Strict):
    """A DUT slot: kind, driver and address of the device, its supply, and further links."""

    slot: int = Field(ge=0)
    kind: Literal["ssd", "dimm"]
    driver: str
    address: str
    options: dict[str, Any] = Field(default_factory=dict)
    supply: SupplyBinding | None = None
    devices: list[DeviceEntry] = Field(default_factory=list)
    tester: TesterBinding | None = None
    block_device: str | None = None  # where fio runs workloads on a real SSD (e.g. /dev/nvme0n1)
    timeout_ms: int = Field(default=5000, ge=10, le=600_000)


class KindLimits(_Strict):
    """Safe operating limits of one DUT kind; the engine refuses plans that exceed them."""

    max_supply_v: float = Field(gt=0)
    max_case_temp_c: float
    min_case_temp_c: float = -40.0


class Simulation(_Strict):
    """The simulated lab this station binds to: the lab's own parameters, passed through."""

    lab: dict[str, Any]


class StationFile(_Strict):
    """A station: its instruments, DUT slots, safe limits, and optionally a simulated lab."""

    spec: Literal["qualify.station/1"]
    name: str
    description: str | None = None
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    simulation: Simulation | None = None
    instruments: list[InstrumentEntry] = Field(default_factory=list)
    duts: list[DutEntry] = Field(min_length=1)
    limits: dict[Literal["ssd", "dimm"], KindLimits] = Field(default_factory=dict)
