"""Simulated DDR5 RDIMMs: SPD5118 hub, PMIC, cell array with faults, the slot tester and their I2C buses."""

from sim_instruments.dimm.device import SimDimm, SlotRecord, make_dimm
from sim_instruments.dimm.faults import Cell, Fault
from sim_instruments.dimm.i2c_bus import SimI2cBus
from sim_instruments.dimm.params import DimmModelParams, load_model
from sim_instruments.dimm.station import DimmStation, build_dimms, i2c_endpoint, start_dimm_station
from sim_instruments.dimm.tester import DimmTesterSim

__all__ = [
    "Cell",
    "DimmModelParams",
    "DimmStation",
    "DimmTesterSim",
    "Fault",
    "SimDimm",
    "SimI2cBus",
    "SlotRecord",
    "build_dimms",
    "i2c_endpoint",
    "load_model",
    "make_dimm",
    "start_dimm_station",
]
