"""The fast integrity engine: same bytes as the reference, threads change nothing, both checks."""

from __future__ import annotations

from pathlib import Path

import crc32c
import numpy as np
import pytest

from drivers.integrity import bad_blocks, generate, generate_into, verify
from drivers.integrity.blockio import verify_pattern, write_pattern
from drivers.integrity.pattern import CHUNK_BYTES, HEADER_BYTES, MAGIC, VERSION

SEED, GEN = 0xFEED, 3
U64 = (1 << 64) - 1


def _reference(lba_start: int, count: int, generation: int, seed: int, block_bytes: int) -> bytes:
    """Build blocks word by word from the documented layout (the definition the engine must match)."""

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        return z ^ (z >> 31)

    out = bytearray()
    for lba in range(lba_start, lba_start + count):
        key = mix(seed ^ mix(((lba * 0xD6E8FEB86659FD93) & U64) ^ ((generation * 0xA0761D6478BD642F) & U64)))
        words = [VERSION | (HEADER_BYTES << 16) | (block_bytes << 32), lba, generation, seed]
        words += [mix((key + j * 0x9E3779B97F4A7C15) & U64) for j in range(block_bytes // 8 - 5)]
        body = b"".join(w.to_bytes(8, "little") for w in words)
        out += MAGIC.to_bytes(4, "little") + crc32c.crc32c(body).to_bytes(4, "little") + body
    return bytes(out)


@pytest.mark.parametrize(("lba", "count", "block_bytes"), [(0, 1, 512), (77, 3, 4096), (2**40, 9, 4096)])
def test_generate_matches_the_documented_layout(lba: int, count: int, block_bytes: int) -> None:
    assert generate(lba, count, GEN, SEED, block_bytes) == _reference(lba, count, GEN, SEED, block_bytes)


def test_threads_and_chunks_do_not_change_the_bytes() -> None:
    count = 3 * CHUNK_BYTES // 4096 + 5  # several chunks and a ragged tail
    one, two = bytearray(count * 4096), bytearray(count * 4096)
    generate_into(one, 10, GEN, SEED, 4096, threads=1)
    generate_into(two, 10, GEN, SEED, 4096, threads=4)
    assert one == two == generate(10, count, GEN, SEED, 4096)
    assert one[-4096:] == _reference(10 + count - 1, 1, GEN, SEED, 4096)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("count", [4, 1500])  # the few-block path and the chunked path
def test_bad_blocks_names_every_damaged_block_in_both_modes(threads: int, count: int) -> None:
    buf = bytearray(generate(0, count, GEN, SEED, 4096))
    damaged = sorted({1, count // 2, count - 1})
    for i in damaged:
        buf[i * 4096 + 1000] ^= 0x10
    for check in ("full", "crc"):
        assert bad_blocks(buf, 0, GEN, SEED, 4096, check=check, threads=threads) == damaged  # type: ignore[arg-type]
    assert [f.lba for f in verify(buf, 0, GEN, SEED, 4096, threads=threads)] == damaged


def test_crc_mode_trusts_a_sound_crc_and_full_mode_does_not() -> None:
    original = generate(5, 1, GEN, SEED, 4096)
    block = bytearray(original)
    block[200] ^= 0x01
    block[4:8] = crc32c.crc32c(bytes(block[8:])).to_bytes(4, "little")
    assert verify(block, 5, GEN, SEED, 4096, check="crc") == []
    [finding] = verify(block, 5, GEN, SEED, 4096, check="full")
    flipped = sum((a ^ b).bit_count() for a, b in zip(block, original, strict=True))
    assert finding.kind == "corrupted" and finding.bit_errors == flipped


def test_header_fields_are_checked_even_in_crc_mode() -> None:
    buf = bytearray(generate(0, 600, GEN, SEED, 4096))
    buf[300 * 4096 : 301 * 4096] = generate(300, 1, GEN + 1, SEED, 4096)  # a sound block of another write
    buf[400 * 4096 : 401 * 4096] = generate(7, 1, GEN, SEED, 4096)  # a sound block of another LBA
    findings = verify(buf, 0, GEN, SEED, 4096, check="crc")
    assert [(f.lba, f.kind) for f in findings] == [(300, "stale"), (400, "misdirected")]


def test_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="check must be"):
        bad_blocks(generate(0, 1, GEN, SEED, 4096), 0, GEN, SEED, 4096, check="quick")  # type: ignore[arg-type]


def test_generate_into_needs_a_writable_whole_block_buffer() -> None:
    with pytest.raises(ValueError, match="whole number"):
        generate_into(bytearray(4000), 0, GEN, SEED, 4096)
    with pytest.raises(ValueError, match="writable"):
        readonly = np.zeros(512, dtype=np.uint64)
        readonly.flags.writeable = False
        generate_into(readonly, 0, GEN, SEED, 4096)


@pytest.mark.parametrize("threads", [1, 2])
def test_file_verify_with_threads_and_a_short_file(tmp_path: Path, threads: int) -> None:
    target = tmp_path / "dut.img"
    chunk = 16 * 4096
    write_pattern(target, 0, 100, GEN, SEED, 4096, chunk_bytes=chunk, threads=threads)
    assert verify_pattern(target, 0, 100, GEN, SEED, 4096, chunk_bytes=chunk, threads=threads) == []
    # Blocks 100.. are past the end of the file: a reused buffer must not make them look written.
    findings = verify_pattern(
        target, 90, 30, GEN, SEED, 4096, chunk_bytes=chunk, threads=threads, check="crc"
    )
    assert [(f.lba, f.kind) for f in findings] == [(lba, "unwritten") for lba in range(100, 120)]
