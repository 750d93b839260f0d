"""The simulated NVMe SSD: drive model files, NAND/ECC/FTL physics, the device and its workloads.

`make_ssd(sim_dut, clock, seed, model_name)` returns (device, transport) for a lab DUT;
`SimBlockWorkload(device)` runs fio-style jobs on it analytically.
"""

from sim_instruments.ssd.device import BenchDut, SimSsd, SimSsdTransport, make_ssd
from sim_instruments.ssd.model import SsdModel, SsdModelError, load_ssd_model
from sim_instruments.ssd.workload import SimBlockWorkload

__all__ = [
    "BenchDut",
    "SimBlockWorkload",
    "SimSsd",
    "SimSsdTransport",
    "SsdModel",
    "SsdModelError",
    "load_ssd_model",
    "make_ssd",
]
