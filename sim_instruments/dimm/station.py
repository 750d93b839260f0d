"""Wire the simulated DIMMs into a lab: one model per DIMM DUT, its I2C bus endpoint, one slot tester."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qualify.clock import Clock
from sim_instruments.dimm.device import SimDimm, make_dimm
from sim_instruments.dimm.i2c_bus import SimI2cBus
from sim_instruments.dimm.tester import DimmTesterSim
from sim_instruments.servers import TcpLineServer

DEFAULT_MODEL = "rdimm_healthy"
TESTER_NAME = "dimmtester"


class DimmLab(Protocol):
    """Name what wiring needs of sim_instruments.lab.Lab."""

    def duts(self) -> list[Any]:
        """Return every DUT, by slot."""
        ...

    def attach_device(self, slot: int, device: Any) -> None:
        """Attach a device model to a slot."""
        ...


def i2c_endpoint(slot: int) -> str:
    """Return the station address of a slot's simulated I2C bus: `sim-i2c://slotN`."""
    return f"sim-i2c://slot{slot}"


@dataclass
class DimmStation:
    """Hold the DIMMs of a lab, their I2C endpoints and the tester serving them on loopback TCP."""

    dimms: dict[int, SimDimm]
    tester: DimmTesterSim
    endpoints: dict[str, SimI2cBus] = field(default_factory=dict)
    server: TcpLineServer | None = None

    @property
    def address(self) -> str:
        """Get the tester's VISA address (`TCPIP::127.0.0.1::PORT::SOCKET`)."""
        if self.server is None:
            raise RuntimeError("the tester is not served")
        return self.server.address

    def stop(self) -> None:
        """Stop the tester's server; stopping twice is harmless."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def build_dimms(
    lab: DimmLab, clock: Clock, seed: int, models: Mapping[int, str] | None = None
) -> dict[int, SimDimm]:
    """Build and attach a SimDimm for every DIMM DUT; `models` overrides the model per slot."""
    dimms: dict[int, SimDimm] = {}
    for dut in lab.duts():
        if dut.kind != "dimm":
            continue
        name = (models or {}).get(dut.slot) or getattr(dut, "model", None) or DEFAULT_MODEL
        dimm = make_dimm(dut, clock, seed, name)
        lab.attach_device(dut.slot, dimm)
        dimms[dut.slot] = dimm
    return dimms


def start_dimm_station(
    lab: DimmLab,
    clock: Clock,
    seed: int,
    *,
    models: Mapping[int, str] | None = None,
    handler_wrapper: Callable[[Callable[[str], str | None]], Callable[[str], str | None]] | None = None,
    serve: bool = True,
) -> DimmStation:
    """Build the DIMMs, attach them to the lab and serve one tester for all their slots.

    `handler_wrapper` lets the lab put its fault injection (no reply, garbled) in front of the
    tester's handler, as it does for its other instruments.
    """
    dimms = build_dimms(lab, clock, seed, models)
    slot_count = max([8, *dimms])
    tester = DimmTesterSim(dimms, clock, serial=f"QDT5R8-{seed % 10000:04d}", slot_count=slot_count)
    station = DimmStation(dimms, tester, {i2c_endpoint(slot): d.bus for slot, d in dimms.items()})
    if serve and dimms:
        handler = tester.handle if handler_wrapper is None else handler_wrapper(tester.handle)
        server = TcpLineServer(handler)
        server.start()
        station.server = server
    return station
