"""Check SPD decoding rules the golden modules do not exercise: rounding, capacity, codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.dimm.spd import (
    ModuleType,
    SpdError,
    cas_latency_at,
    decode_spd,
    time_to_clocks,
    with_crc,
)

KINGSTON = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "spd" / "kingston_KF552C40-16.bin"


def _edited(**bytes_at: int) -> bytes:
    """Return the Kingston image with bytes replaced (keys like b0x0EA) and its CRC fixed."""
    image = bytearray(KINGSTON.read_bytes())
    for key, value in bytes_at.items():
        image[int(key.removeprefix("b"), 16)] = value
    return with_crc(bytes(image))


@pytest.mark.parametrize(
    ("time_ps", "tck_ps", "clocks"),
    [
        (16000, 416, 39),  # 38.46 clocks round up
        (16000, 500, 32),  # an exact multiple stays put
        (30000, 416, 72),  # 72.1 clocks: the 0.3 % guard band absorbs tCK truncation
        (32000, 416, 77),
        (48000, 416, 116),
    ],
)
def test_time_to_clocks_uses_jedec_rounding(time_ps: int, tck_ps: int, clocks: int) -> None:
    assert time_to_clocks(time_ps, tck_ps) == clocks


def test_time_to_clocks_rejects_a_zero_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        time_to_clocks(16000, 0)


def test_cas_latency_skips_unsupported_latencies() -> None:
    spd = decode_spd(KINGSTON.read_bytes())
    # tAA 16 ns at 1000 ps needs 16 clocks; the module's lowest CL is 22.
    assert cas_latency_at(spd, 1000) == min(spd.cas_latencies)
    # At 555 ps tAA needs 29 clocks; CLs are even, so 30.
    assert cas_latency_at(spd, 555) == 30


@pytest.mark.parametrize("tck_ps", [300, 415, 1011])
def test_cas_latency_outside_tck_range_raises(tck_ps: int) -> None:
    spd = decode_spd(KINGSTON.read_bytes())
    with pytest.raises(ValueError, match="outside the module's tCKAVG range"):
        cas_latency_at(spd, tck_ps)


def test_cas_latency_with_no_high_enough_latency_raises() -> None:
    # Keep only CL22 (bit 1 of byte 0x18): tAA at 416 ps needs 39 clocks.
    spd = decode_spd(_edited(b0x018=0x02, b0x019=0, b0x01A=0, b0x01B=0, b0x01C=0))
    assert spd.cas_latencies == (22,)
    with pytest.raises(SpdError, match="no supported CAS latency reaches 39 clocks"):
        cas_latency_at(spd, 416)


@pytest.mark.parametrize(
    ("tck_ps", "grade"),
    [(625, "DDR5-3200"), (416, "DDR5-4800"), (384, "DDR5-5200"), (357, "DDR5-5600"),
     (333, "DDR5-6000"), (312, "DDR5-6400"), (250, "DDR5-8000")],
)  # fmt: skip
def test_speed_grade_from_tck_min(tck_ps: int, grade: str) -> None:
    spd = decode_spd(_edited(b0x014=tck_ps & 0xFF, b0x015=tck_ps >> 8))
    assert spd.speed_grade == grade


def test_two_symmetric_ranks_double_capacity() -> None:
    one_rank = decode_spd(KINGSTON.read_bytes())
    two_ranks = decode_spd(_edited(b0x0EA=0x08))
    assert two_ranks.ranks == 2
    assert not two_ranks.asymmetric
    assert two_ranks.capacity_bytes == 2 * one_rank.capacity_bytes
    assert two_ranks.dram_package_count == 16


def test_asymmetric_ranks_use_the_second_sdram_for_odd_ranks() -> None:
    # Rank 0: 16 Gb x8 dies (bytes 4-7); rank 1: 8 Gb x8 dies (bytes 8-11).
    spd = decode_spd(_edited(b0x0EA=0x48, b0x008=0x02, b0x009=0x00, b0x00A=0x20, b0x00B=0x62))
    assert spd.asymmetric
    assert spd.second_sdram is not None
    assert spd.second_sdram.density_per_die_gbit == 8
    assert spd.capacity_bytes == (16 + 8) * 2**30


def test_three_ds_package_multiplies_dies() -> None:
    # 4H 3DS (package code 3) of 16 Gb x4 dies, 2 package ranks.
    spd = decode_spd(_edited(b0x004=0x64, b0x006=0x00, b0x0EA=0x08))
    assert spd.sdram.package_type == "3DS 4H"
    assert spd.sdram.die_per_package == 4
    # 2 channels x 32/4 devices x 4 dies x 16 Gb / 8 x 2 ranks = 256 GiB.
    assert spd.capacity_bytes == 256 * 2**30


def test_ecc_width_counts_in_packages_not_capacity() -> None:
    plain = decode_spd(KINGSTON.read_bytes())
    ecc = decode_spd(_edited(b0x0EB=0x32))
    assert ecc.ecc_bus_width_bits == 8
    assert ecc.capacity_bytes == plain.capacity_bytes
    assert ecc.dram_package_count == 10


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"b0x003": 0x05}, "module type 5 is reserved"),
        ({"b0x004": 0x0F}, "first SDRAM density code 15 is reserved"),
        ({"b0x004": 0xE4}, "first SDRAM package code 7 is reserved"),
        ({"b0x006": 0x80}, "first SDRAM I/O width code 4 is reserved"),
        ({"b0x010": 0x10}, "VDD nominal voltage code 1 is reserved"),
        ({"b0x012": 0x20}, "VPP nominal voltage code 2 is reserved"),
        ({"b0x0EB": 0x1A}, "bus width extension code 3 is reserved"),
        ({"b0x000": 0x70}, "SPD size code 7"),
        ({"b0x014": 0x00, "b0x015": 0x00}, "tCKAVGmin is 0 ps"),
    ],
)
def test_reserved_codes_raise(edits: dict[str, int], message: str) -> None:
    with pytest.raises(SpdError, match=message):
        decode_spd(_edited(**edits))


def test_module_types_decode() -> None:
    assert decode_spd(_edited(b0x003=0x01)).module_type is ModuleType.RDIMM
    assert decode_spd(_edited(b0x003=0x04)).module_type is ModuleType.LRDIMM
    assert decode_spd(_edited(b0x003=0x07)).module_type is ModuleType.MRDIMM
    assert decode_spd(_edited(b0x003=0x81)).hybrid


def test_invalid_bcd_date_decodes_as_unknown() -> None:
    spd = decode_spd(_edited(b0x203=0xAF, b0x204=0x82))
    assert spd.manufacture_year is None
    assert spd.manufacture_week is None


def test_spd_size_from_byte_0() -> None:
    image = KINGSTON.read_bytes()
    assert decode_spd(image).spd_size_bytes == len(image) == 1024
    assert decode_spd(_edited(b0x000=0x20)).spd_size_bytes == 512


def test_non_standard_timings_flag() -> None:
    assert decode_spd(KINGSTON.read_bytes()).standard_timings
    assert not decode_spd(_edited(b0x013=0x01)).standard_timings
