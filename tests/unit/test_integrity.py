"""The LBA-stamped pattern engine: round trip, regeneration, each finding class, file helpers."""

from __future__ import annotations

from pathlib import Path

import crc32c
import pytest

from drivers.integrity import HEADER_BYTES, MAGIC, decode_header, generate, verify
from drivers.integrity.blockio import read_range, verify_pattern, write_pattern, write_range

BLOCK = 4096
SEED = 0x5EED
GEN = 7


def _block(buf: bytes | bytearray, index: int) -> bytes:
    return bytes(buf[index * BLOCK : (index + 1) * BLOCK])


def test_round_trip_verifies_clean() -> None:
    data = generate(100, 64, GEN, SEED, BLOCK)
    assert len(data) == 64 * BLOCK
    assert verify(data, 100, GEN, SEED, BLOCK) == []


def test_header_layout_is_as_documented() -> None:
    block = generate(42, 1, GEN, SEED, BLOCK)
    header = decode_header(block)
    assert block[:4] == b"QBLK" and header.magic == MAGIC
    assert (header.version, header.header_bytes, header.block_bytes) == (1, HEADER_BYTES, BLOCK)
    assert (header.lba, header.generation, header.seed) == (42, GEN, SEED)
    assert header.crc == crc32c.crc32c(block[8:])


def test_expected_data_is_regenerated_from_seed_and_generation_alone() -> None:
    written = generate(0, 16, GEN, SEED, BLOCK)
    # Months later nothing of the write is kept but (seed, generation): the same bytes come back.
    assert generate(0, 16, GEN, SEED, BLOCK) == written
    assert generate(8, 8, GEN, SEED, BLOCK) == written[8 * BLOCK :]
    assert generate(0, 16, GEN, SEED + 1, BLOCK) != written
    assert generate(0, 16, GEN + 1, SEED, BLOCK) != written
    # Payloads differ from block to block, so a misplaced block cannot pass as another.
    assert written[HEADER_BYTES:BLOCK] != written[BLOCK + HEADER_BYTES : 2 * BLOCK]


def test_flipped_bit_is_corrupted_with_its_bit_count() -> None:
    buf = bytearray(generate(0, 8, GEN, SEED, BLOCK))
    buf[3 * BLOCK + 1000] ^= 0x81
    [finding] = verify(buf, 0, GEN, SEED, BLOCK)
    assert (finding.lba, finding.kind, finding.bit_errors) == (3, "corrupted", 2)
    assert finding.offset_bytes == 3 * BLOCK
    assert "crc32c" in finding.detail


def test_zeroed_and_erased_blocks_are_unwritten() -> None:
    buf = bytearray(generate(0, 8, GEN, SEED, BLOCK))
    buf[2 * BLOCK : 3 * BLOCK] = bytes(BLOCK)
    buf[5 * BLOCK : 6 * BLOCK] = b"\xff" * BLOCK
    findings = verify(buf, 0, GEN, SEED, BLOCK)
    assert [(f.lba, f.kind) for f in findings] == [(2, "unwritten"), (5, "unwritten")]


def test_foreign_data_without_magic_is_unwritten() -> None:
    buf = bytearray(generate(0, 4, GEN, SEED, BLOCK))
    buf[BLOCK : 2 * BLOCK] = bytes(range(256)) * (BLOCK // 256)
    [finding] = verify(buf, 0, GEN, SEED, BLOCK)
    assert (finding.lba, finding.kind) == (1, "unwritten")


def test_flipped_magic_in_a_good_block_is_corrupted_not_unwritten() -> None:
    buf = bytearray(generate(0, 4, GEN, SEED, BLOCK))
    buf[2 * BLOCK] ^= 0x01
    [finding] = verify(buf, 0, GEN, SEED, BLOCK)
    assert (finding.lba, finding.kind, finding.bit_errors) == (2, "corrupted", 1)


def test_block_of_another_lba_is_misdirected() -> None:
    buf = bytearray(generate(0, 8, GEN, SEED, BLOCK))
    buf[4 * BLOCK : 5 * BLOCK] = _block(buf, 6)
    [finding] = verify(buf, 0, GEN, SEED, BLOCK)
    assert (finding.lba, finding.kind, finding.found_lba) == (4, "misdirected", 6)


def test_older_generation_is_stale() -> None:
    buf = bytearray(generate(0, 8, GEN, SEED, BLOCK))
    buf[1 * BLOCK : 2 * BLOCK] = generate(1, 1, GEN - 1, SEED, BLOCK)
    [finding] = verify(buf, 0, GEN, SEED, BLOCK)
    assert (finding.lba, finding.kind, finding.found_generation) == (1, "stale", GEN - 1)
    assert "older" in finding.detail


def test_newer_generation_and_other_seed_are_stale_too() -> None:
    buf = bytearray(generate(0, 4, GEN, SEED, BLOCK))
    buf[0:BLOCK] = generate(0, 1, GEN + 1, SEED, BLOCK)
    buf[3 * BLOCK : 4 * BLOCK] = generate(3, 1, GEN, SEED + 9, BLOCK)
    findings = verify(buf, 0, GEN, SEED, BLOCK)
    assert [(f.lba, f.kind) for f in findings] == [(0, "stale"), (3, "stale")]
    assert "newer" in findings[0].detail
    assert findings[1].found_seed == SEED + 9


def test_sound_crc_over_a_changed_payload_is_corrupted() -> None:
    original = generate(5, 1, GEN, SEED, BLOCK)
    block = bytearray(original)
    block[100] ^= 0xFF
    block[4:8] = crc32c.crc32c(bytes(block[8:])).to_bytes(4, "little")
    [finding] = verify(block, 5, GEN, SEED, BLOCK)
    assert finding.kind == "corrupted" and "payload" in finding.detail
    flipped = sum((a ^ b).bit_count() for a, b in zip(block, original, strict=True))
    assert finding.bit_errors == flipped


@pytest.mark.parametrize("block_bytes", [512, 4096, 16384])
def test_every_block_size_round_trips(block_bytes: int) -> None:
    data = generate(3, 5, GEN, SEED, block_bytes)
    assert verify(data, 3, GEN, SEED, block_bytes) == []
    assert [f.lba for f in verify(data, 4, GEN, SEED, block_bytes)] == [4, 5, 6, 7, 8]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 512"):
        generate(0, 1, GEN, SEED, 1000)
    with pytest.raises(ValueError, match="64 bits"):
        generate(0, 1, -1, SEED, BLOCK)
    with pytest.raises(ValueError, match="whole number"):
        verify(b"\0" * 100, 0, GEN, SEED, BLOCK)


def test_file_round_trip_and_planted_damage(tmp_path: Path) -> None:
    target = tmp_path / "dut.img"
    assert write_pattern(target, 0, 256, GEN, SEED, BLOCK, chunk_bytes=64 * BLOCK) == 256 * BLOCK
    assert verify_pattern(target, 0, 256, GEN, SEED, BLOCK, chunk_bytes=64 * BLOCK) == []
    write_range(target, 70 * BLOCK, bytes(BLOCK))
    write_range(target, 200 * BLOCK, generate(10, 1, GEN, SEED, BLOCK))
    write_range(target, 130 * BLOCK + 17, b"\x00\x01")  # unaligned: buffered write
    findings = verify_pattern(target, 0, 300, GEN, SEED, BLOCK, chunk_bytes=64 * BLOCK)
    kinds = {(f.lba, f.kind) for f in findings}
    assert {(70, "unwritten"), (130, "corrupted"), (200, "misdirected")} <= kinds
    # Past the end of the file reads as zeros: those blocks were never written.
    assert {f.lba for f in findings if f.kind == "unwritten"} == {70, *range(256, 300)}


def test_read_range_returns_what_write_range_wrote(tmp_path: Path) -> None:
    target = tmp_path / "range.img"
    payload = bytes(range(256)) * 32
    write_range(target, 8192, payload)
    assert read_range(target, 8192, len(payload)) == payload
    assert read_range(target, 8192 + 3, 5) == payload[3:8]
    assert read_range(target, 0, 4096) == bytes(4096)
