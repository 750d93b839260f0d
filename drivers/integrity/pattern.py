"""An LBA-stamped data pattern whose expected content is regenerated, never stored.

Every block carries a header naming where and when it was written, and a crc32c:

    offset  size  field (little-endian)
         0     4  magic, the bytes b"QBLK"
         4     4  crc32c of bytes 8 .. block_bytes (the rest of the header and the payload)
         8     2  layout version (1)
        10     2  header bytes (40)
        12     4  block bytes
        16     8  LBA (block number in units of block_bytes)
        24     8  write generation
        32     8  seed
        40     …  payload: 64-bit words of a counter hash of (seed, LBA, generation, word index)

So the data expected after a months-long bake is computed again from (seed, generation); a
verify compares whole blocks against it and classifies only the blocks that differ, as fio
does: unwritten (zeros, erased or no magic: never written or trimmed), misdirected (a sound
block of another LBA), stale (a sound block of another generation or seed: a lost write),
corrupted (crc mismatch, or any other difference), with the bits in error for UBER.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import crc32c
import numpy as np
import numpy.typing as npt

MAGIC = int.from_bytes(b"QBLK", "little")
VERSION = 1
HEADER_BYTES = 40
MIN_BLOCK_BYTES = 512
_U64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LBA_MUL = np.uint64(0xD6E8FEB86659FD93)
_GEN_MUL = np.uint64(0xA0761D6478BD642F)

FindingKind = Literal["unwritten", "misdirected", "stale", "corrupted"]
Words = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class Finding:
    """One block that did not read back as expected, what it looks like, and where it is."""

    lba: int
    kind: FindingKind
    block_bytes: int
    detail: str
    found_lba: int | None = None
    found_generation: int | None = None
    found_seed: int | None = None
    bit_errors: int | None = None  # bits that differ from the expected block (corrupted only)

    @property
    def offset_bytes(self) -> int:
        """Return the block's byte offset on the target."""
        return self.lba * self.block_bytes


@dataclass(frozen=True)
class BlockHeader:
    """A block's header fields as read, whether or not they are sound."""

    magic: int
    crc: int
    version: int
    header_bytes: int
    block_bytes: int
    lba: int
    generation: int
    seed: int


def _check(lba_start: int, count: int, generation: int, seed: int, block_bytes: int) -> None:
    if block_bytes < MIN_BLOCK_BYTES or block_bytes % MIN_BLOCK_BYTES:
        raise ValueError(f"block_bytes must be a positive multiple of 512 (got {block_bytes})")
    if count < 0 or lba_start < 0 or lba_start + count > _U64:
        raise ValueError(f"LBA range {lba_start}+{count} is outside 0 .. 2**64")
    for name, value in (("generation", generation), ("seed", seed)):
        if not 0 <= value <= _U64:
            raise ValueError(f"{name} must fit in 64 bits (got {value})")


def _mix(z: Words) -> Words:
    """Return splitmix64's finaliser of each word (a bijective 64-bit hash)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def expected_words(lba_start: int, count: int, generation: int, seed: int, block_bytes: int) -> Words:
    """Return the expected blocks as a (count, block_bytes / 8) array of little-endian words."""
    _check(lba_start, count, generation, seed, block_bytes)
    words_per_block = block_bytes // 8
    lbas = np.arange(lba_start, lba_start + count, dtype=np.uint64).reshape(count, 1)
    gen = np.full((count, 1), generation, dtype=np.uint64)
    key = _mix(np.full((count, 1), seed, dtype=np.uint64) ^ _mix(lbas * _LBA_MUL ^ gen * _GEN_MUL))
    index = np.arange(words_per_block - HEADER_BYTES // 8, dtype=np.uint64).reshape(1, -1)
    out = np.empty((count, words_per_block), dtype="<u8")
    out[:, HEADER_BYTES // 8 :] = _mix(key + index * _GOLDEN)
    out[:, 0] = MAGIC  # the crc goes into the high half once the rest of the block is known
    out[:, 1] = VERSION | (HEADER_BYTES << 16) | (block_bytes << 32)
    out[:, 2] = lbas[:, 0]
    out[:, 3] = generation
    out[:, 4] = seed
    raw = out.data.cast("B")
    crcs = np.fromiter(
        (crc32c.crc32c(raw[i * block_bytes + 8 : (i + 1) * block_bytes]) for i in range(count)),
        dtype=np.uint64,
        count=count,
    )
    out[:, 0] |= crcs << np.uint64(32)
    return out


def generate(lba_start: int, count: int, generation: int, seed: int, block_bytes: int) -> bytes:
    """Return `count` pattern blocks for LBAs from `lba_start`, write `generation`, `seed`."""
    return expected_words(lba_start, count, generation, seed, block_bytes).tobytes()


def decode_header(block: bytes | memoryview) -> BlockHeader:
    """Return the header fields of one block as they read, sound or not."""
    if len(block) < HEADER_BYTES:
        raise ValueError(f"a block has at least {HEADER_BYTES} bytes (got {len(block)})")
    b = bytes(block[:HEADER_BYTES])
    le = int.from_bytes
    return BlockHeader(
        magic=le(b[0:4], "little"),
        crc=le(b[4:8], "little"),
        version=le(b[8:10], "little"),
        header_bytes=le(b[10:12], "little"),
        block_bytes=le(b[12:16], "little"),
        lba=le(b[16:24], "little"),
        generation=le(b[24:32], "little"),
        seed=le(b[32:40], "little"),
    )


def verify(
    buf: bytes | bytearray | memoryview, lba_start: int, generation: int, seed: int, block_bytes: int
) -> list[Finding]:
    """Return a Finding for every block of `buf` that differs from the expected pattern."""
    if len(buf) % block_bytes:
        raise ValueError(f"buffer of {len(buf)} bytes is not a whole number of {block_bytes}-byte blocks")
    count = len(buf) // block_bytes
    expected = expected_words(lba_start, count, generation, seed, block_bytes)
    actual = np.frombuffer(buf, dtype="<u8").reshape(count, block_bytes // 8)
    bad_rows = np.flatnonzero((actual != expected).any(axis=1))
    raw = memoryview(buf).cast("B")
    return [
        _classify(
            raw[int(i) * block_bytes : (int(i) + 1) * block_bytes],
            actual[i],
            expected[i],
            lba_start + int(i),
            generation,
            seed,
            block_bytes,
        )
        for i in bad_rows
    ]


def _bit_errors(actual: Words, expected: Words) -> int:
    return int(np.unpackbits((actual ^ expected).view(np.uint8)).sum())


def _classify(
    block: memoryview,
    actual: Words,
    expected: Words,
    lba: int,
    generation: int,
    seed: int,
    block_bytes: int,
) -> Finding:
    """Return what a block that differs from its expected content is."""
    if not actual.any():
        return Finding(lba, "unwritten", block_bytes, "reads as zeros (never written or trimmed)")
    if (actual == np.uint64(_U64)).all():
        return Finding(lba, "unwritten", block_bytes, "reads as 0xFF (erased or trimmed)")
    header = decode_header(block)
    sound = crc32c.crc32c(block[8:]) == header.crc
    if header.magic != MAGIC:
        # A flipped bit in the magic of a good block is corruption, not a missing write.
        if sound or (actual[1:] == expected[1:]).all():
            return Finding(
                lba,
                "corrupted",
                block_bytes,
                "bad magic in an otherwise sound block",
                bit_errors=_bit_errors(actual, expected),
            )
        return Finding(lba, "unwritten", block_bytes, f"bad magic {header.magic:#010x}: no pattern block")
    if not sound:
        return Finding(
            lba,
            "corrupted",
            block_bytes,
            "crc32c mismatch",
            found_lba=header.lba,
            found_generation=header.generation,
            found_seed=header.seed,
            bit_errors=_bit_errors(actual, expected),
        )
    found = {"found_lba": header.lba, "found_generation": header.generation, "found_seed": header.seed}
    if header.lba != lba:
        return Finding(lba, "misdirected", block_bytes, f"holds the block of LBA {header.lba}", **found)
    if header.generation != generation:
        age = "older" if header.generation < generation else "newer"
        return Finding(
            lba,
            "stale",
            block_bytes,
            f"holds generation {header.generation}, {age} than the expected {generation}",
            **found,
        )
    if header.seed != seed or header.block_bytes != block_bytes or header.version != VERSION:
        return Finding(lba, "stale", block_bytes, "a sound block written by another test or layout", **found)
    return Finding(
        lba,
        "corrupted",
        block_bytes,
        "sound header and crc, but the payload differs",
        bit_errors=_bit_errors(actual, expected),
        **found,
    )
