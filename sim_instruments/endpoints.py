"""Start a simulated lab for a station and hand out its addresses and in-process endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from drivers.errors import InstrumentTimeout
from qualify.clock import Clock
from sim_instruments.dimm.station import DimmStation, start_dimm_station
from sim_instruments.lab import Lab, SimDut
from sim_instruments.nvme_ssd import SimHealth, SimNvmeController, SimNvmeIdentity, SimNvmeTransport

SIM_SSD_MODEL = "QSIM E3 U.2 3.84TB"
SIM_SSD_FIRMWARE = "QS010101"
SIM_SSD_CAPACITY_BYTES = 3_840_755_982_336
DIMM_TESTER = "dimmtester"


class PoweredNvmeLink:
    """An NVMe link that answers only while the DUT's slot is powered, like a real drive."""

    def __init__(self, transport: SimNvmeTransport, dut: SimDut) -> None:
        self._transport = transport
        self._dut = dut
        self.address = transport.address

    def _check_power(self) -> None:
        if not self._dut.powered():
            raise InstrumentTimeout(self.address, "no response: the drive is not powered")

    def admin(self, cmd: Any, data: bytes | None = None) -> Any:
        """Pass an admin command to the drive if it is powered."""
        self._check_power()
        return self._transport.admin(cmd, data)

    def io(self, cmd: Any, data: bytes | None = None) -> Any:
        """Pass an I/O command to the drive if it is powered."""
        self._check_power()
        return self._transport.io(cmd, data)

    def close(self) -> None:
        """Close the link."""
        self._transport.close()


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


def _health(dut: SimDut) -> SimHealth:
    return SimHealth(temperature_k=round(dut.temperature_c() + 273.15))


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
        identity = SimNvmeIdentity(
            serial=dut.serial,
            model=SIM_SSD_MODEL,
            firmware=SIM_SSD_FIRMWARE,
            capacity_bytes=SIM_SSD_CAPACITY_BYTES,
        )
        controller = SimNvmeController(identity, partial(_health, dut))
        address = f"sim-nvme://slot{dut.slot}"
        endpoints[address] = PoweredNvmeLink(SimNvmeTransport(controller, address=address), dut)
    return SimLab(lab, dimms), served, endpoints
