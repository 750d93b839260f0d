"""Start a simulated lab for a station and hand out its addresses and in-process endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qualify.clock import Clock
from sim_instruments.dimm.station import DimmStation, start_dimm_station
from sim_instruments.lab import Lab, SimDut
from sim_instruments.ssd import SimBlockWorkload, make_ssd

DIMM_TESTER = "dimmtester"


class SimLab:
    """The running simulated lab of a station: the world, its servers and its DIMM tester."""

    def __init__(self, lab: Lab, dimms: DimmStation) -> None:
        self.lab = lab
        self.dimms = dimms

    def snapshot(self) -> dict[str, Any]:
        """Return the lab's state (device models included) for a checkpoint."""
        return self.lab.snapshot()

    def restore(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpointed state."""
        self.lab.restore(state)

    def stop(self) -> None:
        """Stop every server."""
        self.dimms.stop()
        self.lab.stop()

    def duts(self) -> list[SimDut]:
        """Return the lab's DUTs."""
        return self.lab.duts()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lab, name)


def start_lab(
    lab_config: Mapping[str, Any], clock: Clock, seed: int
) -> tuple[SimLab, dict[str, str], dict[str, Any]]:
    """Start the lab's servers; return the lab, its instrument addresses and its endpoints."""
    lab = Lab(clock, seed, lab_config)
    served = lab.start()
    try:
        dimms = start_dimm_station(lab, clock, seed)
    except BaseException:
        lab.stop()
        raise
    if dimms.server is not None:
        served[DIMM_TESTER] = dimms.address
    endpoints: dict[str, Any] = dict(dimms.endpoints)
    for dut in lab.duts():
        if dut.kind != "ssd":
            continue
        device, transport = make_ssd(dut, clock, seed, dut.model)
        lab.attach_device(dut.slot, device)
        endpoints[transport.address] = transport
        # Workloads on a simulated drive drive its model; a station binds them to the slot.
        endpoints[f"providers://slot{dut.slot}"] = [SimBlockWorkload(device)]
    return SimLab(lab, dimms), served, endpoints
