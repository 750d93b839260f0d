"""Check SPD encoding: CRC recompute, RDIMM derivation, and rejection of non-DDR5 images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from drivers.dimm.spd import (
    CRC_COVERED_BYTES,
    REFERENCE_RDIMM_PMIC,
    REFERENCE_RDIMM_RCD,
    REFERENCE_RDIMM_RCD_CONTROL_WORDS,
    REFERENCE_RDIMM_TEMP_SENSOR,
    JedecId,
    ModuleType,
    SpdError,
    crc16_spd,
    decode_spd,
    to_rdimm,
    with_crc,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT / "fixtures" / "golden" / "spd"
DERIVED_DIR = ROOT / "fixtures" / "spd"
GOLDEN_NAMES = sorted(path.stem for path in GOLDEN_DIR.glob("*.bin"))

# Decoded fields to_rdimm documents as changed; every other field must survive unchanged.
RDIMM_CHANGED_FIELDS = {
    "module_type",
    "ecc_bus_width_bits",
    "pmic0",
    "temp_sensor",
    "rcd",
    "module_height_mm",
    "crc_stored",
    "crc_computed",
}
# Byte ranges to_rdimm documents as rewritten (start, end exclusive).
RDIMM_CHANGED_BYTES = [
    (0x003, 0x004),
    (0x0C6, 0x0CA),
    (0x0D2, 0x0D6),
    (0x0E6, 0x0E8),
    (0x0EB, 0x0EC),
    (0x0F0, 0x101),
    (0x1FE, 0x200),
]


@pytest.fixture(params=GOLDEN_NAMES)
def golden_image(request: pytest.FixtureRequest) -> bytes:
    """Give one golden SPD image."""
    return (GOLDEN_DIR / f"{request.param}.bin").read_bytes()


def _flip(image: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(image)
    out[offset] ^= mask
    return bytes(out)


def test_crc16_known_answer() -> None:
    # CRC-16 with polynomial 0x1021, initial value 0, unreflected (XMODEM) checks "123456789"
    # as 0x31C3.
    assert crc16_spd(b"123456789") == 0x31C3
    assert crc16_spd(b"") == 0


def test_with_crc_restores_a_cleared_crc(golden_image: bytes) -> None:
    cleared = golden_image[:510] + b"\x00\x00" + golden_image[512:]
    assert not decode_spd(cleared).crc_valid
    assert with_crc(cleared) == golden_image


def test_with_crc_after_an_edit(golden_image: bytes) -> None:
    edited = _flip(golden_image, 0x0E9, 0x04)
    fixed = with_crc(edited)
    assert fixed[:510] == edited[:510]
    assert fixed[510:512] != golden_image[510:512]
    assert decode_spd(fixed).crc_valid
    assert int.from_bytes(fixed[510:512], "little") == crc16_spd(edited[:CRC_COVERED_BYTES])


@pytest.mark.parametrize("offset", [0x000, 0x003, 0x01E, 0x0EB, 0x1FD, 0x1FE, 0x1FF])
def test_corrupted_byte_fails_crc(golden_image: bytes, offset: int) -> None:
    spd = decode_spd(_flip(golden_image, offset))
    assert not spd.crc_valid


def test_manufacturing_bytes_are_outside_the_crc(golden_image: bytes) -> None:
    assert decode_spd(_flip(golden_image, 0x209, 0x02)).crc_valid


@pytest.mark.parametrize("size", [0, 256, 512, 1023, 1025, 2048])
def test_wrong_length_raises(size: int) -> None:
    image = bytearray(size)
    if size > 2:
        image[2] = 0x12
    with pytest.raises(SpdError, match=rf"1024 bytes; got {size} bytes"):
        decode_spd(bytes(image))


def test_not_ddr5_raises(golden_image: bytes) -> None:
    ddr4 = bytearray(golden_image)
    ddr4[2] = 0x0C
    with pytest.raises(SpdError, match=r"byte 2 \(DRAM type\) is 0x0C, not 0x12.*not a DDR5"):
        decode_spd(bytes(ddr4))
    with pytest.raises(SpdError, match="not a DDR5"):
        with_crc(bytes(ddr4))


def test_spd_error_is_a_value_error() -> None:
    assert issubclass(SpdError, ValueError)


@pytest.mark.parametrize(
    ("raw", "bank", "code"),
    [
        (b"\x80\xce", 1, 0x4E),
        (b"\x01\x98", 2, 0x18),
        (b"\x80\x2c", 1, 0x2C),
        (b"\x0b\x10", 12, 0x10),
    ],
)
def test_jedec_id_round_trips_with_parity(raw: bytes, bank: int, code: int) -> None:
    jedec_id = JedecId.from_spd(raw[0], raw[1])
    assert (jedec_id.bank, jedec_id.code) == (bank, code)
    assert jedec_id.to_spd() == raw


def test_to_rdimm_gives_a_valid_rdimm(golden_image: bytes) -> None:
    source = decode_spd(golden_image)
    rdimm = decode_spd(to_rdimm(golden_image))
    assert source.module_type in (ModuleType.UDIMM, ModuleType.SODIMM)
    assert rdimm.module_type is ModuleType.RDIMM
    assert rdimm.crc_valid
    assert rdimm.rcd == REFERENCE_RDIMM_RCD
    assert rdimm.pmic0 == REFERENCE_RDIMM_PMIC
    assert rdimm.temp_sensor == REFERENCE_RDIMM_TEMP_SENSOR
    assert rdimm.ecc_bus_width_bits == 8
    assert rdimm.module_height_mm == 32
    assert rdimm.capacity_bytes == source.capacity_bytes
    assert rdimm.dram_package_count == source.dram_package_count * 10 // 8


def test_to_rdimm_keeps_every_other_decoded_field(golden_image: bytes) -> None:
    source = dataclasses.asdict(decode_spd(golden_image))
    rdimm = dataclasses.asdict(decode_spd(to_rdimm(golden_image)))
    assert set(source) > RDIMM_CHANGED_FIELDS
    kept = {name: value for name, value in source.items() if name not in RDIMM_CHANGED_FIELDS}
    assert {name: rdimm[name] for name in kept} == kept


def test_to_rdimm_touches_only_documented_bytes(golden_image: bytes) -> None:
    derived = to_rdimm(golden_image)
    assert len(derived) == len(golden_image)
    changed = [offset for offset in range(len(derived)) if derived[offset] != golden_image[offset]]
    assert changed, "to_rdimm changed nothing"
    undocumented = [
        hex(offset)
        for offset in changed
        if not any(start <= offset < end for start, end in RDIMM_CHANGED_BYTES)
    ]
    assert undocumented == []
    assert derived[3] & 0xF0 == golden_image[3] & 0xF0


def test_to_rdimm_replaces_clock_driver_and_clears_lrdimm_bytes(golden_image: bytes) -> None:
    # A UDIMM with a clock driver (CUDIMM) lists it at 0xF0-0xF3; fill the whole module-specific
    # area to see which bytes to_rdimm owns.
    source = bytearray(golden_image)
    source[0xF0:0x101] = b"\xff" * (0x101 - 0xF0)
    # On a UDIMM or SODIMM those bytes are not an RCD, so none is decoded.
    assert decode_spd(with_crc(bytes(source))).rcd is None
    derived = to_rdimm(with_crc(bytes(source)))
    assert derived[0xF0:0xF4] == REFERENCE_RDIMM_RCD.manufacturer.to_spd() + bytes((0x80, 0x22))
    assert derived[0xF4:0xF8] == bytes(4)
    assert derived[0xF8:0xFF] == REFERENCE_RDIMM_RCD_CONTROL_WORDS
    assert derived[0xFF:0x101] == bytes(2)


def test_to_rdimm_without_ecc(golden_image: bytes) -> None:
    rdimm = decode_spd(to_rdimm(golden_image, ecc_bits_per_channel=0))
    assert rdimm.ecc_bus_width_bits == 0
    assert rdimm.dram_package_count == decode_spd(golden_image).dram_package_count


def test_to_rdimm_sets_part_number(golden_image: bytes) -> None:
    derived = to_rdimm(golden_image, part_number="SIM-RDIMM-16G")
    assert decode_spd(derived).part_number == "SIM-RDIMM-16G"
    assert derived[0x209 + len("SIM-RDIMM-16G")] == 0x20


def test_to_rdimm_rejects_a_bad_part_number(golden_image: bytes) -> None:
    with pytest.raises(SpdError, match="SPD holds 30"):
        to_rdimm(golden_image, part_number="X" * 31)
    with pytest.raises(SpdError, match="not ASCII"):
        to_rdimm(golden_image, part_number="Δ-module")


def test_to_rdimm_rejects_bad_ecc_width(golden_image: bytes) -> None:
    with pytest.raises(ValueError, match="0, 4 or 8"):
        to_rdimm(golden_image, ecc_bits_per_channel=16)


def test_to_rdimm_refuses_an_rdimm(golden_image: bytes) -> None:
    with pytest.raises(SpdError, match="from a UDIMM or SODIMM image; this one is RDIMM"):
        to_rdimm(to_rdimm(golden_image))


def test_derived_fixtures_match_to_rdimm() -> None:
    derived = sorted(DERIVED_DIR.glob("*.rdimm.bin"))
    assert [path.name.removesuffix(".rdimm.bin") for path in derived] == GOLDEN_NAMES
    readme = (DERIVED_DIR / "README.md").read_text(encoding="utf-8")
    for path in derived:
        image = path.read_bytes()
        source = (GOLDEN_DIR / path.name.replace(".rdimm.bin", ".bin")).read_bytes()
        assert image == to_rdimm(source), f"{path.name} drifted; regenerate it (see README)"
        spd = decode_spd(image)
        assert spd.module_type is ModuleType.RDIMM
        assert spd.crc_valid
        assert path.name in readme
