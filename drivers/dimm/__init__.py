"""Read and write what DDR5 DIMMs say about themselves: SPD images and JEP-106 makers."""

from drivers.dimm.spd import (
    Ddr5Spd,
    JedecId,
    ModuleDevice,
    ModuleType,
    SdramInfo,
    SpdError,
    cas_latency_at,
    crc16_spd,
    decode_spd,
    time_to_clocks,
    to_rdimm,
    with_crc,
)

__all__ = [
    "Ddr5Spd",
    "JedecId",
    "ModuleDevice",
    "ModuleType",
    "SdramInfo",
    "SpdError",
    "cas_latency_at",
    "crc16_spd",
    "decode_spd",
    "time_to_clocks",
    "to_rdimm",
    "with_crc",
]
