"""Instrument, NVMe, DIMM and workload drivers, and the transports they talk through."""
