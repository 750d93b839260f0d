"""Decode and encode DDR5 SPD images (JESD400-5): fields, CRC, CAS latency and RDIMM derivation.

Byte offsets follow JESD400-5 (DDR5 SPD contents, release 1.1 and later) as transcribed in the
illumos libjedec headers (spd_ddr5.h) and checked field by field against three real modules'
images and a commercial reader's reports (fixtures/golden/spd/). Standard library only, so
the SPD hub driver, the simulated lab and the tools can all import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from drivers.dimm.jep106 import manufacturer_name

SPD_SIZE_BYTES = 1024
DDR5_DRAM_TYPE = 0x12
CRC_COVERED_BYTES = 510

# JESD400-5 rounding: scale the timing by 99.7 % (a 0.3 % guard band for tCK values truncated
# to whole picoseconds), then round up; done in integer math so every host gets the same clocks.
_ROUNDING_FACTOR_PERMILLE = 997

# Base configuration (block 0).
_OFF_SIZE = 0x000
_OFF_REVISION = 0x001
_OFF_DRAM_TYPE = 0x002
_OFF_MODULE_TYPE = 0x003
_OFF_FIRST_SDRAM = 0x004  # density/package, addressing, I/O width, banks: 4 bytes
_OFF_SECOND_SDRAM = 0x008
_OFF_VDD = 0x010
_OFF_VDDQ = 0x011
_OFF_VPP = 0x012
_OFF_TIMING_MODE = 0x013
_OFF_TCK_MIN = 0x014
_OFF_TCK_MAX = 0x016
_OFF_CAS_MASK = 0x018  # 5 bytes, bit 0 of the first byte = CL20, then every even CL
_OFF_TAA = 0x01E
_OFF_TRCD = 0x020
_OFF_TRP = 0x022
_OFF_TRAS = 0x024
_OFF_TRC = 0x026
_OFF_TWR = 0x028
_OFF_TRFC1_NS = 0x02A
_OFF_TRFC2_NS = 0x02C
_OFF_TRFCSB_NS = 0x02E

# Common module parameters (annex A.0).
_OFF_MODULE_SPD_REVISION = 0x0C0
_OFF_SPD_HUB_INFO = 0x0C2
_OFF_PMIC0_INFO = 0x0C6
_OFF_TEMP_SENSOR_INFO = 0x0D2
_OFF_HEIGHT = 0x0E6
_OFF_THICKNESS = 0x0E7
_OFF_RAW_CARD = 0x0E8
_OFF_ATTRIBUTES = 0x0E9
_OFF_ORGANISATION = 0x0EA
_OFF_BUS_WIDTH = 0x0EB

# Module-specific parameters: for RDIMM/LRDIMM (annex A.3) the RCD, the data buffer and the
# RCD control words; for UDIMM/SODIMM (annex A.2) the clock driver in the same first 4 bytes.
_OFF_RCD_INFO = 0x0F0
_OFF_DATA_BUFFER_INFO = 0x0F4
_OFF_RCD_CONTROL_WORDS = 0x0F8  # RW08..RW0E
_OFF_LRDIMM_ONLY = 0x0FF  # 0xFF and 0x100: data buffer slew and DQS park, LRDIMM only

_OFF_CRC = 0x1FE

# Manufacturing information (not covered by the CRC).
_OFF_MODULE_MFR = 0x200
_OFF_LOCATION = 0x202
_OFF_YEAR = 0x203
_OFF_WEEK = 0x204
_OFF_SERIAL = 0x205
_SERIAL_LEN = 4
_OFF_PART_NUMBER = 0x209
PART_NUMBER_LEN = 30
_OFF_MODULE_REVISION = 0x227
_OFF_DRAM_MFR = 0x228
_OFF_DRAM_STEPPING = 0x22A

_DENSITY_GBIT = {1: 4, 2: 8, 3: 12, 4: 16, 5: 24, 6: 32, 7: 48, 8: 64}
_PACKAGES = {  # code -> (die per package, name)
    0: (1, "Monolithic"),
    1: (2, "DDP"),
    2: (2, "3DS 2H"),
    3: (4, "3DS 4H"),
    4: (8, "3DS 8H"),
    5: (16, "3DS 16H"),
}
_IO_WIDTH_BITS = {0: 4, 1: 8, 2: 16, 3: 32}
_VDD_V = {0: 1.1}
_VDDQ_V = {0: 1.1}
_VPP_V = {0: 1.8}
_PRIMARY_BUS_BITS = {0: 8, 1: 16, 2: 32, 3: 64}
_ECC_BUS_BITS = {0: 0, 1: 4, 2: 8}
_TEMPERATURE_RANGES = {
    0: "A1T",
    1: "A2T",
    2: "A3T",
    3: "IT",
    4: "ST",
    5: "ET",
    6: "RT",
    7: "NT",
    8: "XT",
}

SPD_HUB_TYPES = {0: "SPD5118", 1: "ESPD5216"}
PMIC_TYPES = {0: "PMIC5000", 1: "PMIC5010", 2: "PMIC5100"}
TEMP_SENSOR_TYPES = {0: "TS5111", 1: "TS5110"}
RCD_TYPES = {0: "DDR5RCD01", 1: "DDR5RCD02", 2: "DDR5RCD03"}

# JEDEC DDR5 data rates sit on a 400 MT/s grid; tCKAVGmin is truncated to whole ps, so the rate
# it implies is a little above the grade and flooring to the grid recovers the grade.
_DATA_RATE_STEP_MTS = 400


class SpdError(ValueError):
    """Signal an image that is not a decodable DDR5 SPD: wrong size, DRAM type, reserved code."""


class ModuleType(enum.IntEnum):
    """Name the base module types of SPD byte 3, bits 3:0."""

    RDIMM = 1
    UDIMM = 2
    SODIMM = 3
    LRDIMM = 4
    MRDIMM = 7
    DDIMM = 10
    SOLDER_DOWN = 11


# Module types whose bytes 0xF0–0xF3 list a registering clock driver (annex A.3).
_REGISTERED_TYPES = (ModuleType.RDIMM, ModuleType.LRDIMM)


@dataclass(frozen=True)
class JedecId:
    """Identify a JEP-106 manufacturer: bank (from 1) and 7-bit code without the parity bit."""

    bank: int
    code: int

    @classmethod
    def from_spd(cls, continuation: int, code: int) -> JedecId:
        """Build an ID from SPD's two bytes: continuation count, then code (parity ignored)."""
        return cls(bank=(continuation & 0x7F) + 1, code=code & 0x7F)

    @property
    def name(self) -> str | None:
        """Get the manufacturer's name, or None when the code is not in our table."""
        return manufacturer_name(self.bank, self.code)

    def to_spd(self) -> bytes:
        """Encode as SPD's two bytes, each with the odd-parity bit JEP-106 puts in bit 7."""
        return bytes((_with_odd_parity(self.bank - 1), _with_odd_parity(self.code)))

    def __str__(self) -> str:
        return self.name or f"JEP-106 bank {self.bank} code 0x{self.code:02X}"


@dataclass(frozen=True)
class ModuleDevice:
    """Describe an on-module device as the module bytes list it: SPD hub, PMIC, sensor, RCD.

    device_type is the 4-bit type code (see SPD_HUB_TYPES, PMIC_TYPES, TEMP_SENSOR_TYPES,
    RCD_TYPES); revision is the raw BCD byte (0x22 is revision 2.2); count is 2 only for a
    pair of thermal sensors.
    """

    manufacturer: JedecId
    device_type: int
    revision: int
    count: int = 1

    @property
    def revision_str(self) -> str:
        """Get the revision as 'major.minor' from its BCD nibbles."""
        return f"{self.revision >> 4:X}.{self.revision & 0x0F:X}"


@dataclass(frozen=True)
class SdramInfo:
    """Describe one SDRAM type (bytes 4–7, or 8–11 for the odd ranks of an asymmetric module)."""

    density_per_die_gbit: int
    die_per_package: int
    package_type: str
    io_width_bits: int
    bank_groups: int
    banks_per_group: int
    row_address_bits: int
    column_address_bits: int

    @property
    def banks(self) -> int:
        """Get the number of banks per die."""
        return self.bank_groups * self.banks_per_group


@dataclass(frozen=True)
class Ddr5Spd:
    """Hold a decoded DDR5 SPD image: what JESD400-5 says about the module, and its CRC check."""

    spd_size_bytes: int
    spd_revision: str
    dram_type: int
    module_type: ModuleType
    hybrid: bool
    sdram: SdramInfo
    second_sdram: SdramInfo | None
    standard_timings: bool
    vdd_v: float
    vddq_v: float
    vpp_v: float
    tck_avg_min_ps: int
    tck_avg_max_ps: int
    cas_latencies: tuple[int, ...]
    taa_min_ps: int
    trcd_min_ps: int
    trp_min_ps: int
    tras_min_ps: int
    trc_min_ps: int
    twr_min_ps: int
    trfc1_min_ps: int
    trfc2_min_ps: int
    trfcsb_min_ps: int
    module_spd_revision: str
    spd_hub: ModuleDevice | None
    pmic0: ModuleDevice | None
    temp_sensor: ModuleDevice | None
    rcd: ModuleDevice | None
    module_height_mm: int
    reference_raw_card: str
    operating_temperature_range: str
    package_ranks_per_channel: int
    asymmetric: bool
    channels: int
    primary_bus_width_bits: int
    ecc_bus_width_bits: int
    module_manufacturer: JedecId
    manufacturing_location: int
    manufacture_year: int | None
    manufacture_week: int | None
    serial_number: str
    part_number: str
    module_revision_code: int
    dram_manufacturer: JedecId
    dram_stepping: int
    crc_stored: int
    crc_computed: int

    @property
    def crc_valid(self) -> bool:
        """Get whether the CRC stored at bytes 510–511 matches bytes 0–509."""
        return self.crc_stored == self.crc_computed

    @property
    def capacity_bytes(self) -> int:
        """Get the module capacity per JESD400-5, ECC excluded.

        Per rank: channels × primary bus width / I/O width × die per package × density / 8.
        Asymmetric modules use the first SDRAM for even ranks (0, 2, ...) and the second for odd.
        """
        even_ranks = (self.package_ranks_per_channel + 1) // 2
        odd_ranks = self.package_ranks_per_channel // 2
        odd_sdram = self.second_sdram or self.sdram
        return even_ranks * self._rank_bytes(self.sdram) + odd_ranks * self._rank_bytes(odd_sdram)

    @property
    def capacity_gib(self) -> float:
        """Get the capacity in GiB (what module labels call GB)."""
        return self.capacity_bytes / 2**30

    @property
    def ranks(self) -> int:
        """Get the package ranks per channel (what labels show as the 'R' count)."""
        return self.package_ranks_per_channel

    @property
    def data_width_bits(self) -> int:
        """Get the module's data width without ECC: channels × primary bus width (64 for DDR5)."""
        return self.channels * self.primary_bus_width_bits

    @property
    def dram_package_count(self) -> int:
        """Get the number of DRAM packages on the module, ECC devices included."""
        total = 0
        for rank in range(self.package_ranks_per_channel):
            sdram = self.second_sdram if (rank % 2 and self.second_sdram) else self.sdram
            width_bits = self.primary_bus_width_bits + self.ecc_bus_width_bits
            total += self.channels * width_bits // sdram.io_width_bits
        return total

    @property
    def organisation(self) -> str:
        """Get the JEDEC label's rank/width term, e.g. '1Rx8' or '2Rx4'."""
        return f"{self.package_ranks_per_channel}Rx{self.sdram.io_width_bits}"

    @property
    def data_rate_mts(self) -> int:
        """Get the JEDEC data rate this tCKAVGmin is a grade of, in MT/s (e.g. 4800)."""
        implied_mts = 2_000_000 // self.tck_avg_min_ps
        return implied_mts // _DATA_RATE_STEP_MTS * _DATA_RATE_STEP_MTS

    @property
    def clock_mhz(self) -> int:
        """Get the clock frequency at the module's grade: half the data rate."""
        return self.data_rate_mts // 2

    @property
    def speed_grade(self) -> str:
        """Get the JEDEC speed label, e.g. 'DDR5-4800' (no bin letter: it needs JESD79-5)."""
        return f"DDR5-{self.data_rate_mts}"

    def _rank_bytes(self, sdram: SdramInfo) -> int:
        devices_per_channel = self.primary_bus_width_bits // sdram.io_width_bits
        die_bits = sdram.density_per_die_gbit * 2**30
        return self.channels * devices_per_channel * sdram.die_per_package * die_bits // 8


def crc16_spd(data: bytes) -> int:
    """Compute JESD400-5's CRC-16 (polynomial 0x1021, initial value 0, no reflection)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def with_crc(image: bytes) -> bytes:
    """Return the image with the CRC of bytes 0–509 stored at 510–511, LSB first."""
    _check_image(image)
    crc = crc16_spd(image[:CRC_COVERED_BYTES])
    return image[:_OFF_CRC] + crc.to_bytes(2, "little") + image[_OFF_CRC + 2 :]


def time_to_clocks(time_ps: int, tck_ps: int) -> int:
    """Convert a minimum time to clock cycles with JESD400-5's integer rounding algorithm.

    nCK = ((time_ps × 997) // tck_ps + 1000) // 1000: the time is cut by 0.3 % (so a tCK
    truncated to whole picoseconds does not add a cycle) and the result rounded up.
    """
    if tck_ps <= 0:
        raise ValueError(f"tck_ps must be positive, got {tck_ps}")
    return (time_ps * _ROUNDING_FACTOR_PERMILLE // tck_ps + 1000) // 1000


def cas_latency_at(spd: Ddr5Spd, tck_ps: int) -> int:
    """Return the smallest CAS latency the module supports that covers tAAmin at tck_ps.

    The floor is tAAmin in clocks by time_to_clocks (JESD400-5 rounding). tck_ps is the
    application clock period in whole picoseconds, truncated the way SPD stores tCK (416 for
    2400 MHz), and must lie within tCKAVGmin..tCKAVGmax.
    """
    if not spd.tck_avg_min_ps <= tck_ps <= spd.tck_avg_max_ps:
        raise ValueError(
            f"tck_ps {tck_ps} is outside the module's tCKAVG range "
            f"{spd.tck_avg_min_ps}..{spd.tck_avg_max_ps} ps"
        )
    floor_clocks = time_to_clocks(spd.taa_min_ps, tck_ps)
    for cas_latency in spd.cas_latencies:
        if cas_latency >= floor_clocks:
            return cas_latency
    raise SpdError(
        f"no supported CAS latency reaches {floor_clocks} clocks "
        f"(tAAmin {spd.taa_min_ps} ps at tCK {tck_ps} ps); supported: {spd.cas_latencies}"
    )


def decode_spd(image: bytes) -> Ddr5Spd:
    """Decode a 1024-byte DDR5 SPD image; raise SpdError for a wrong size, type or code."""
    _check_image(image)
    if _u16(image, _OFF_TCK_MIN) == 0:
        raise SpdError("bytes 0x014–0x015: tCKAVGmin is 0 ps; no speed grade can be derived")
    asymmetric = bool(image[_OFF_ORGANISATION] & 0x40)
    module_type = _module_type(image[_OFF_MODULE_TYPE])
    bus_width = image[_OFF_BUS_WIDTH]
    return Ddr5Spd(
        spd_size_bytes=_spd_size_bytes(image[_OFF_SIZE]),
        spd_revision=_revision_str(image[_OFF_REVISION]),
        dram_type=image[_OFF_DRAM_TYPE],
        module_type=module_type,
        hybrid=bool(image[_OFF_MODULE_TYPE] & 0x80),
        sdram=_sdram(image, _OFF_FIRST_SDRAM, "first"),
        second_sdram=_sdram(image, _OFF_SECOND_SDRAM, "second") if asymmetric else None,
        standard_timings=not image[_OFF_TIMING_MODE] & 0x01,
        vdd_v=_voltage(image[_OFF_VDD], _VDD_V, "VDD"),
        vddq_v=_voltage(image[_OFF_VDDQ], _VDDQ_V, "VDDQ"),
        vpp_v=_voltage(image[_OFF_VPP], _VPP_V, "VPP"),
        tck_avg_min_ps=_u16(image, _OFF_TCK_MIN),
        tck_avg_max_ps=_u16(image, _OFF_TCK_MAX),
        cas_latencies=_cas_latencies(image[_OFF_CAS_MASK : _OFF_CAS_MASK + 5]),
        taa_min_ps=_u16(image, _OFF_TAA),
        trcd_min_ps=_u16(image, _OFF_TRCD),
        trp_min_ps=_u16(image, _OFF_TRP),
        tras_min_ps=_u16(image, _OFF_TRAS),
        trc_min_ps=_u16(image, _OFF_TRC),
        twr_min_ps=_u16(image, _OFF_TWR),
        # The refresh times are stored in nanoseconds, not picoseconds.
        trfc1_min_ps=_u16(image, _OFF_TRFC1_NS) * 1000,
        trfc2_min_ps=_u16(image, _OFF_TRFC2_NS) * 1000,
        trfcsb_min_ps=_u16(image, _OFF_TRFCSB_NS) * 1000,
        module_spd_revision=_revision_str(image[_OFF_MODULE_SPD_REVISION]),
        spd_hub=_device(image, _OFF_SPD_HUB_INFO),
        pmic0=_device(image, _OFF_PMIC0_INFO),
        temp_sensor=_device(image, _OFF_TEMP_SENSOR_INFO, pair_bit=True),
        rcd=_device(image, _OFF_RCD_INFO) if module_type in _REGISTERED_TYPES else None,
        module_height_mm=(image[_OFF_HEIGHT] & 0x1F) + 15,
        reference_raw_card=_raw_card(image[_OFF_RAW_CARD]),
        operating_temperature_range=_TEMPERATURE_RANGES.get(
            image[_OFF_ATTRIBUTES] >> 4, f"reserved {image[_OFF_ATTRIBUTES] >> 4}"
        ),
        package_ranks_per_channel=((image[_OFF_ORGANISATION] >> 3) & 0x07) + 1,
        asymmetric=asymmetric,
        channels=((bus_width >> 5) & 0x03) + 1,
        primary_bus_width_bits=_lookup(
            bus_width & 0x07, _PRIMARY_BUS_BITS, "primary bus width", _OFF_BUS_WIDTH
        ),
        ecc_bus_width_bits=_lookup(
            (bus_width >> 3) & 0x03, _ECC_BUS_BITS, "bus width extension", _OFF_BUS_WIDTH
        ),
        module_manufacturer=JedecId.from_spd(image[_OFF_MODULE_MFR], image[_OFF_MODULE_MFR + 1]),
        manufacturing_location=image[_OFF_LOCATION],
        manufacture_year=_bcd_year(image[_OFF_YEAR]),
        manufacture_week=_bcd_week(image[_OFF_WEEK]),
        serial_number=image[_OFF_SERIAL : _OFF_SERIAL + _SERIAL_LEN].hex().upper(),
        part_number=_ascii(image[_OFF_PART_NUMBER : _OFF_PART_NUMBER + PART_NUMBER_LEN]),
        module_revision_code=image[_OFF_MODULE_REVISION],
        dram_manufacturer=JedecId.from_spd(image[_OFF_DRAM_MFR], image[_OFF_DRAM_MFR + 1]),
        dram_stepping=image[_OFF_DRAM_STEPPING],
        crc_stored=int.from_bytes(image[_OFF_CRC : _OFF_CRC + 2], "little"),
        crc_computed=crc16_spd(image[:CRC_COVERED_BYTES]),
    )


# A DDR5 RDIMM's registering clock driver, PMIC, thermal sensors, RCD control words and board
# size, as a real one lists them: Micron MTC40F2046S1RC48BA1 (64 GiB 2Rx4 DDR5-4800 RDIMM,
# image published with illumos libjedec's tests). to_rdimm uses them unless told otherwise.
REFERENCE_RDIMM_RCD = ModuleDevice(JedecId(7, 0x32), device_type=0, revision=0x22)
REFERENCE_RDIMM_PMIC = ModuleDevice(JedecId(1, 0x33), device_type=0, revision=0x40)
REFERENCE_RDIMM_TEMP_SENSOR = ModuleDevice(JedecId(1, 0x33), device_type=0, revision=0x12, count=2)
REFERENCE_RDIMM_RCD_CONTROL_WORDS = bytes((0x20, 0x08, 0x55, 0x00, 0x01, 0x00, 0x28))
REFERENCE_RDIMM_HEIGHT_THICKNESS = bytes((0x11, 0x21))

_ECC_CODES = {0: 0, 4: 1, 8: 2}


def to_rdimm(
    image: bytes,
    *,
    ecc_bits_per_channel: int = 8,
    rcd: ModuleDevice = REFERENCE_RDIMM_RCD,
    pmic: ModuleDevice = REFERENCE_RDIMM_PMIC,
    temp_sensor: ModuleDevice = REFERENCE_RDIMM_TEMP_SENSOR,
    part_number: str | None = None,
) -> bytes:
    """Derive an RDIMM image from a UDIMM or SODIMM one; return it with its CRC recomputed.

    What changes, and why:
    - byte 3 bits 3:0 become 1 (RDIMM); the hybrid bits 7:4 stay;
    - byte 0xEB bits 4:3 give each sub-channel ecc_bits_per_channel ECC bits (0, 4 or 8;
      server RDIMMs carry 8, so a 1Rx8 module becomes x80 with 10 packages per rank);
    - 0xC6–0xC9 (PMIC0) and 0xD2–0xD5 (thermal sensors) describe a server RDIMM's 12 V PMIC
      and its sensor pair instead of the client module's parts;
    - 0xE6–0xE7 (height, thickness) take the reference RDIMM's board size (32 mm), since a
      SODIMM's 30 mm board is not an RDIMM's;
    - 0xF0–0xF3 list the RCD (for UDIMM/SODIMM these bytes list the clock driver);
      0xF4–0xF7 (data buffer) and 0xFF–0x100 are cleared, being LRDIMM-only;
      0xF8–0xFE take the reference RDIMM's RCD control words RW08–RW0E;
    - 0x209–0x226 take part_number when given (space padded, as vendors write it);
    - bytes 510–511 hold the new CRC.
    Unchanged: every DRAM parameter (bytes 0–0x7F, same dies), the SPD hub, the raw card
    (JEDEC RDIMM raw cards are a different set, so no faithful mapping exists), the
    temperature range, and the manufacturing data apart from the part number.
    """
    source = decode_spd(image)
    if source.module_type not in (ModuleType.UDIMM, ModuleType.SODIMM):
        raise SpdError(
            f"to_rdimm derives from a UDIMM or SODIMM image; this one is {source.module_type.name}"
        )
    if ecc_bits_per_channel not in _ECC_CODES:
        raise ValueError(f"ecc_bits_per_channel must be 0, 4 or 8, got {ecc_bits_per_channel}")
    out = bytearray(image)
    out[_OFF_MODULE_TYPE] = (out[_OFF_MODULE_TYPE] & 0xF0) | ModuleType.RDIMM
    out[_OFF_BUS_WIDTH] = (out[_OFF_BUS_WIDTH] & ~0x18 & 0xFF) | (_ECC_CODES[ecc_bits_per_channel] << 3)
    out[_OFF_PMIC0_INFO : _OFF_PMIC0_INFO + 4] = _device_bytes(pmic)
    out[_OFF_TEMP_SENSOR_INFO : _OFF_TEMP_SENSOR_INFO + 4] = _device_bytes(temp_sensor)
    out[_OFF_HEIGHT : _OFF_THICKNESS + 1] = REFERENCE_RDIMM_HEIGHT_THICKNESS
    out[_OFF_RCD_INFO : _OFF_RCD_INFO + 4] = _device_bytes(rcd)
    out[_OFF_DATA_BUFFER_INFO : _OFF_DATA_BUFFER_INFO + 4] = bytes(4)
    control_words_end = _OFF_RCD_CONTROL_WORDS + len(REFERENCE_RDIMM_RCD_CONTROL_WORDS)
    out[_OFF_RCD_CONTROL_WORDS:control_words_end] = REFERENCE_RDIMM_RCD_CONTROL_WORDS
    out[_OFF_LRDIMM_ONLY : _OFF_LRDIMM_ONLY + 2] = bytes(2)
    if part_number is not None:
        out[_OFF_PART_NUMBER : _OFF_PART_NUMBER + PART_NUMBER_LEN] = _part_number_bytes(part_number)
    return with_crc(bytes(out))


def _check_image(image: bytes) -> None:
    if len(image) != SPD_SIZE_BYTES:
        raise SpdError(f"a DDR5 SPD image is {SPD_SIZE_BYTES} bytes; got {len(image)} bytes")
    if image[_OFF_DRAM_TYPE] != DDR5_DRAM_TYPE:
        raise SpdError(
            f"byte 2 (DRAM type) is 0x{image[_OFF_DRAM_TYPE]:02X}, not 0x{DDR5_DRAM_TYPE:02X} "
            "(DDR5 SDRAM): not a DDR5 SPD image"
        )


def _with_odd_parity(value: int) -> int:
    value &= 0x7F
    return value if value.bit_count() % 2 else value | 0x80


def _u16(image: bytes, offset: int) -> int:
    return int.from_bytes(image[offset : offset + 2], "little")


def _lookup(code: int, table: dict[int, int], what: str, offset: int) -> int:
    if code not in table:
        raise SpdError(f"byte 0x{offset:03X}: {what} code {code} is reserved in JESD400-5")
    return table[code]


def _spd_size_bytes(byte: int) -> int:
    code = (byte >> 4) & 0x07
    if not 1 <= code <= 4:
        raise SpdError(f"byte 0x000: SPD size code {code} is undefined or reserved")
    return 128 << code


def _revision_str(byte: int) -> str:
    return f"{byte >> 4}.{byte & 0x0F}"


def _module_type(byte: int) -> ModuleType:
    code = byte & 0x0F
    try:
        return ModuleType(code)
    except ValueError:
        raise SpdError(f"byte 0x003: module type {code} is reserved in JESD400-5") from None


def _sdram(image: bytes, offset: int, which: str) -> SdramInfo:
    density_package, addressing, width, banks = image[offset : offset + 4]
    density_code = density_package & 0x1F
    package_code = density_package >> 5
    if density_code not in _DENSITY_GBIT:
        raise SpdError(f"byte 0x{offset:03X}: {which} SDRAM density code {density_code} is reserved")
    if package_code not in _PACKAGES:
        raise SpdError(f"byte 0x{offset:03X}: {which} SDRAM package code {package_code} is reserved")
    die_per_package, package_type = _PACKAGES[package_code]
    return SdramInfo(
        density_per_die_gbit=_DENSITY_GBIT[density_code],
        die_per_package=die_per_package,
        package_type=package_type,
        io_width_bits=_lookup(width >> 5, _IO_WIDTH_BITS, f"{which} SDRAM I/O width", offset + 2),
        bank_groups=1 << (banks >> 5),
        banks_per_group=1 << (banks & 0x07),
        row_address_bits=(addressing & 0x1F) + 16,
        column_address_bits=(addressing >> 5) + 10,
    )


def _voltage(byte: int, table: dict[int, float], rail: str) -> float:
    code = byte >> 4
    if code not in table:
        raise SpdError(f"{rail} nominal voltage code {code} is reserved in JESD400-5")
    return table[code]


def _cas_latencies(mask_bytes: bytes) -> tuple[int, ...]:
    mask = int.from_bytes(mask_bytes, "little")
    return tuple(20 + 2 * bit for bit in range(8 * len(mask_bytes)) if mask >> bit & 1)


def _device(image: bytes, offset: int, *, pair_bit: bool = False) -> ModuleDevice | None:
    mfr0, mfr1, info, revision = image[offset : offset + 4]
    if not info & 0x80:
        return None
    count = 2 if pair_bit and info & 0x40 else 1
    return ModuleDevice(JedecId.from_spd(mfr0, mfr1), info & 0x0F, revision, count)


def _device_bytes(device: ModuleDevice) -> bytes:
    info = 0x80 | (device.device_type & 0x0F)
    if device.count == 2:
        info |= 0x40
    return device.manufacturer.to_spd() + bytes((info, device.revision))


def _raw_card(byte: int) -> str:
    card = byte & 0x1F
    letter = chr(ord("A") + card) if card < 26 else f"#{card}"
    return f"{letter}{byte >> 5}"


def _bcd(byte: int) -> int | None:
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        return None
    return high * 10 + low


def _bcd_year(byte: int) -> int | None:
    year = _bcd(byte)
    return None if year is None else 2000 + year


def _bcd_week(byte: int) -> int | None:
    week = _bcd(byte)
    return week if week is not None and 1 <= week <= 53 else None


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace").rstrip(" \x00")


def _part_number_bytes(part_number: str) -> bytes:
    try:
        encoded = part_number.encode("ascii")
    except UnicodeEncodeError:
        raise SpdError(f"part number {part_number!r} is not ASCII") from None
    if len(encoded) > PART_NUMBER_LEN:
        raise SpdError(f"part number {part_number!r} is {len(encoded)} bytes; SPD holds {PART_NUMBER_LEN}")
    return encoded.ljust(PART_NUMBER_LEN, b" ")
