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
verify compares whole blocks against it (or, with check="crc", trusts a sound header and
crc32c as fio's verify does) and classifies only the blocks that differ, as fio does:
unwritten (zeros, erased or no magic: never written or trimmed), misdirected (a sound
block of another LBA), stale (a sound block of another generation or seed: a lost write),
corrupted (crc mismatch, or any other difference), with the bits in error for UBER.

Generate and verify work on cache-sized chunks (1 MiB) in place, several chunks at once on
worker threads for large buffers: numpy's ufuncs and the hardware crc32c release the GIL.
check="crc" takes one crc32c per 1 MiB run of blocks, checked against the crc the run must
have given the crcs its blocks store (`crc_combine`), rather than one per block.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import crc32c
import numpy as np
import numpy.typing as npt

from drivers.integrity.crc_combine import run_plan

MAGIC = int.from_bytes(b"QBLK", "little")
VERSION = 1
HEADER_BYTES = 40
MIN_BLOCK_BYTES = 512
_U64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LBA_MUL = np.uint64(0xD6E8FEB86659FD93)
_GEN_MUL = np.uint64(0xA0761D6478BD642F)

_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
HEADER_WORDS = HEADER_BYTES // 8
CHUNK_BYTES = 1 << 20  # one worker's unit: a chunk and its scratch stay in the core's L2
# check="crc" takes a span at a time: numpy's per-call cost is paid per span, not per chunk.
SPAN_BYTES = 16 << 20
CRC_RUN_MAX_BLOCKS = 256  # keeps a run's crc tables (4 KiB a block) in the core's L2
PARALLEL_MIN_BYTES = 4 << 20  # below this, threads cost more than they save
_SMALL_BLOCKS = 8  # up to this many blocks, keys are cheaper on Python ints than in numpy
_HEADER = struct.Struct("<IIQQQQ")  # magic, crc, version|header|block bytes, LBA, generation, seed

FindingKind = Literal["unwritten", "misdirected", "stale", "corrupted"]
Check = Literal["full", "crc"]
CHECKS: tuple[Check, ...] = ("full", "crc")
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


def _mix_int(z: int) -> int:
    """Return `_mix` of one word, on Python ints (cheaper than numpy for a handful of blocks)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def _keys(lba_first: int, count: int, generation: int, seed: int) -> Words:
    """Return each block's payload key: a hash of (seed, LBA, generation)."""
    if count <= _SMALL_BLOCKS:
        gen = (generation * int(_GEN_MUL)) & _U64
        return np.array(
            [
                _mix_int(seed ^ _mix_int(((lba * int(_LBA_MUL)) & _U64) ^ gen))
                for lba in range(lba_first, lba_first + count)
            ],
            dtype=np.uint64,
        )
    lbas = np.arange(lba_first, lba_first + count, dtype=np.uint64)
    gen_term = np.uint64((generation * int(_GEN_MUL)) & _U64)
    return _mix(np.uint64(seed) ^ _mix(lbas * _LBA_MUL ^ gen_term))


@functools.lru_cache(maxsize=16)
def _index_hash(payload_words: int) -> Words:
    """Return word index × the golden ratio for one payload length (the same for every block)."""
    out = np.arange(payload_words, dtype=np.uint64) * _GOLDEN
    out.flags.writeable = False
    return out


class _Scratch(threading.local):
    """Per-thread work arrays, reused from chunk to chunk so a verify allocates nothing per block."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, int, int], Words] = {}

    def get(self, name: str, rows: int, cols: int) -> Words:
        key = (name, rows, cols)
        arr = self.arrays.get(key)
        if arr is None:
            if len(self.arrays) > 32:
                self.arrays.clear()
            arr = self.arrays[key] = np.empty((rows, cols), dtype=np.uint64)
        return arr


_scratch = _Scratch()


def _payload(keys: Words, payload_words: int) -> Words:
    """Return the payload words of blocks with these keys, in a per-thread scratch array.

    The same splitmix64 counter hash as `_mix(key + index × golden)`, computed in place on a
    chunk that stays in the core's cache: one pass per operation, no temporaries.
    """
    rows = keys.shape[0]
    out = _scratch.get("payload", rows, payload_words)
    tmp = _scratch.get("tmp", rows, payload_words)
    np.add(keys.reshape(rows, 1), _index_hash(payload_words), out=out)
    for shift, mul in ((_S30, _M1), (_S27, _M2)):
        np.right_shift(out, shift, out=tmp)
        np.bitwise_xor(out, tmp, out=out)
        np.multiply(out, mul, out=out)
    np.right_shift(out, _S31, out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    return out


def _bytes_of(buf: bytes | bytearray | memoryview | Words) -> memoryview:
    """Return a flat byte view of a buffer or a C-contiguous word array."""
    return buf.data.cast("B") if isinstance(buf, np.ndarray) else memoryview(buf).cast("B")


def _block_crcs(rows: Words, block_bytes: int) -> list[int]:
    """Return crc32c of bytes 8 .. block_bytes of every row (a hardware crc per block)."""
    raw = _bytes_of(rows)
    return list(map(crc32c.crc32c, [raw[i + 8 : i + block_bytes] for i in range(0, len(raw), block_bytes)]))


def _chunk_rows(block_bytes: int) -> int:
    """Return the blocks in one cache-sized chunk (at least one)."""
    return max(1, CHUNK_BYTES // block_bytes)


def _crc_run_rows(block_bytes: int) -> int:
    """Return the blocks that one crc32c call covers in check="crc": a chunk, at most 256 blocks."""
    return min(_chunk_rows(block_bytes), CRC_RUN_MAX_BLOCKS)


def _header_word1(block_bytes: int) -> int:
    return VERSION | (HEADER_BYTES << 16) | (block_bytes << 32)


def default_threads() -> int:
    """Return the worker threads generate and verify use on large buffers (the host's cores, ≤ 4)."""
    return max(1, min(4, os.cpu_count() or 1))


def _spans(count: int, rows_per_chunk: int, threads: int) -> list[list[tuple[int, int]]]:
    """Split rows 0..count into chunks, and the chunks into `threads` contiguous runs."""
    chunks = [(lo, min(lo + rows_per_chunk, count)) for lo in range(0, count, rows_per_chunk)]
    if threads <= 1 or len(chunks) < 2:
        return [chunks]
    per = -(-len(chunks) // threads)
    return [chunks[i : i + per] for i in range(0, len(chunks), per)]


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=default_threads(), thread_name_prefix="integrity")
        return _POOL


def _run_chunked(
    work: Callable[[int, int], None], count: int, rows: int, block_bytes: int, threads: int | None
) -> None:
    """Call `work(lo, hi)` over rows 0..count, `rows` at a time, on worker threads if it pays."""
    wanted = default_threads() if threads is None else max(1, threads)
    if count * block_bytes < PARALLEL_MIN_BYTES:
        wanted = 1
    runs = _spans(count, rows, wanted)

    def run(chunks: list[tuple[int, int]]) -> None:
        for lo, hi in chunks:
            work(lo, hi)

    if len(runs) == 1:
        run(runs[0])
        return
    # numpy and crc32c release the GIL on chunk-sized work, so the threads overlap.
    for future in [_pool().submit(run, chunks) for chunks in runs]:
        future.result()


def _fill_rows(words: Words, lba_first: int, generation: int, seed: int, block_bytes: int) -> None:
    """Write pattern blocks for LBAs lba_first.. into the rows of `words` (C-contiguous)."""
    count = words.shape[0]
    keys = _keys(lba_first, count, generation, seed)
    words[:, HEADER_WORDS:] = _payload(keys, words.shape[1] - HEADER_WORDS)
    words[:, 1] = _header_word1(block_bytes)
    words[:, 2] = np.arange(lba_first, lba_first + count, dtype=np.uint64)
    words[:, 3] = generation
    words[:, 4] = seed
    words[:, 0] = MAGIC  # the crc goes into the high half once the rest of the block is known
    crcs = np.array(_block_crcs(words, block_bytes), dtype=np.uint64)
    words[:, 0] |= crcs << _S32


def generate_into(
    out: bytearray | memoryview | Words,
    lba_start: int,
    generation: int,
    seed: int,
    block_bytes: int,
    *,
    threads: int | None = None,
) -> int:
    """Fill the writable buffer `out` with pattern blocks from `lba_start`; return the block count.

    Work goes in cache-sized chunks, over `threads` worker threads on large buffers (default:
    `default_threads()`), so an O_DIRECT write buffer is filled in place at memory speed.
    """
    size = len(_bytes_of(out))
    if size % block_bytes:
        raise ValueError(f"buffer of {size} bytes is not a whole number of {block_bytes}-byte blocks")
    count = size // block_bytes
    _check(lba_start, count, generation, seed, block_bytes)
    words = np.frombuffer(out, dtype="<u8").reshape(count, block_bytes // 8)
    if not words.flags.writeable:
        raise ValueError("generate_into needs a writable buffer")
    _run_chunked(
        lambda lo, hi: _fill_rows(words[lo:hi], lba_start + lo, generation, seed, block_bytes),
        count,
        _chunk_rows(block_bytes),
        block_bytes,
        threads,
    )
    return count


def expected_words(lba_start: int, count: int, generation: int, seed: int, block_bytes: int) -> Words:
    """Return the expected blocks as a (count, block_bytes / 8) array of little-endian words."""
    _check(lba_start, count, generation, seed, block_bytes)
    out = np.empty((count, block_bytes // 8), dtype="<u8")
    if count:
        generate_into(out, lba_start, generation, seed, block_bytes)
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


def bad_blocks(
    buf: bytes | bytearray | memoryview | Words,
    lba_start: int,
    generation: int,
    seed: int,
    block_bytes: int,
    *,
    check: Check = "full",
    threads: int | None = None,
) -> list[int]:
    """Return the indices of the blocks of `buf` that are not exactly as written, ascending.

    Every block's header fields and crc32c are checked; with `check="full"` its payload is also
    regenerated and compared, so a block is good only if every byte equals the expected block.
    `check="crc"` trusts a sound header and crc for the payload, as fio's crc32c verify does: a
    payload that differs from the expected one yet carries a matching crc32c (a crafted block,
    or a 2**-32 collision) passes. It checks the stored crcs a run of blocks (up to 1 MiB) at a
    time, with one crc32c over the run, and block by block only in a run that fails. Damage
    escapes the run's check only where it would escape one crc32c over the whole run, as over
    one of fio's 1 MiB blocks: never in a single block, about once in 2**32 across several.
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)} (got {check!r})")
    size = len(_bytes_of(buf))
    if size % block_bytes:
        raise ValueError(f"buffer of {size} bytes is not a whole number of {block_bytes}-byte blocks")
    count = size // block_bytes
    _check(lba_start, count, generation, seed, block_bytes)
    if count <= _SMALL_BLOCKS:
        return _bad_small(buf, count, lba_start, generation, seed, block_bytes, check)
    actual = np.frombuffer(buf, dtype="<u8").reshape(count, block_bytes // 8)
    found: list[list[int]] = []
    lock = threading.Lock()

    def work(lo: int, hi: int) -> None:
        if check == "crc":
            rows = _bad_rows_crc(actual[lo:hi], lba_start + lo, generation, seed, block_bytes)
        else:
            rows = _bad_rows(actual[lo:hi], lba_start + lo, generation, seed, block_bytes, check)
        if rows.size:
            with lock:
                found.append([lo + int(i) for i in rows])

    if check == "crc":
        run_rows = _crc_run_rows(block_bytes)
        rows = run_rows * max(1, SPAN_BYTES // (run_rows * block_bytes))
    else:
        rows = _chunk_rows(block_bytes)
    _run_chunked(work, count, rows, block_bytes, threads)
    return sorted(i for part in found for i in part)


def _bad_small(
    buf: bytes | bytearray | memoryview | Words,
    count: int,
    lba_first: int,
    generation: int,
    seed: int,
    block_bytes: int,
    check: Check,
) -> list[int]:
    """Return the bad blocks of a few-block buffer: headers with struct, one crc per block."""
    raw = _bytes_of(buf)
    word1 = _header_word1(block_bytes)
    bad = []
    for i in range(count):
        off = i * block_bytes
        magic, crc, w1, lba, gen, sd = _HEADER.unpack_from(raw, off)
        if (
            magic != MAGIC
            or (w1, lba, gen, sd) != (word1, lba_first + i, generation, seed)
            or crc != crc32c.crc32c(raw[off + 8 : off + block_bytes])
        ):
            bad.append(i)
    if check == "full" and len(bad) < count:
        actual = np.frombuffer(buf, dtype="<u8").reshape(count, block_bytes // 8)
        diff = _payload(_keys(lba_first, count, generation, seed), actual.shape[1] - HEADER_WORDS)
        np.bitwise_xor(diff, actual[:, HEADER_WORDS:], out=diff)
        bad = sorted({*bad, *(int(i) for i in np.flatnonzero(diff.any(axis=1)))})
    return bad


def _expected_headers(count: int, lba_first: int, generation: int, seed: int, block_bytes: int) -> Words:
    """Return the headers blocks lba_first.. should carry, their crc field zero (thread scratch)."""
    expected = _scratch.get("header", count, HEADER_WORDS)
    expected[:, 0] = MAGIC
    expected[:, 1] = _header_word1(block_bytes)
    expected[:, 2] = np.arange(lba_first, lba_first + count, dtype=np.uint64)
    expected[:, 3] = generation
    expected[:, 4] = seed
    return expected


def _bad_rows(
    actual: Words, lba_first: int, generation: int, seed: int, block_bytes: int, check: Check
) -> npt.NDArray[np.intp]:
    """Return the rows of one cache-sized chunk that differ from the expected blocks."""
    count = actual.shape[0]
    expected = _expected_headers(count, lba_first, generation, seed, block_bytes)
    # The stored crc must match the block as read; the rest of the header must be as written.
    crcs = np.array(_block_crcs(actual, block_bytes), dtype=np.uint64)
    expected[:, 0] |= crcs << _S32
    bad = (actual[:, :HEADER_WORDS] != expected).any(axis=1)
    if check == "full":
        diff = _payload(_keys(lba_first, count, generation, seed), actual.shape[1] - HEADER_WORDS)
        np.bitwise_xor(diff, actual[:, HEADER_WORDS:], out=diff)
        bad |= diff.any(axis=1)
    return np.flatnonzero(bad)


def _bad_rows_crc(
    actual: Words, lba_first: int, generation: int, seed: int, block_bytes: int
) -> npt.NDArray[np.intp]:
    """Return the rows of a span whose header is not as written or whose stored crc32c is wrong.

    The header fields of the whole span are compared at once; the stored crcs are checked one
    run of blocks at a time, against one crc32c over the run (`crc_combine.RunPlan`), and block
    by block only in a run whose crc32c is not the one its stored crcs predict.
    """
    count = actual.shape[0]
    # A contiguous copy of the headers (40 of every block_bytes) makes the compares cheap; a
    # copy always, as the stored crcs are zeroed in it (ascontiguousarray may return a view).
    header = actual[:, :HEADER_WORDS].copy()
    halves = header.view("<u4")  # column 0 is the magic, column 1 the stored crc
    stored = halves[:, 1].copy()
    halves[:, 1] = 0
    expected = _expected_headers(count, lba_first, generation, seed, block_bytes)
    same = header == expected
    bad = np.zeros(count, dtype=bool) if same.all() else ~same.all(axis=1)
    plan = run_plan(MAGIC.to_bytes(4, "little"), block_bytes, _crc_run_rows(block_bytes))
    run_bytes = plan.rows * block_bytes
    raw = _bytes_of(actual)
    got = np.array(
        [crc32c.crc32c(raw[at : at + run_bytes]) for at in range(0, len(raw), run_bytes)], np.uint32
    )
    whole = count // plan.rows * plan.rows
    want = [plan.predict(stored[:whole].reshape(-1, plan.rows))] if whole else []
    if whole < count:
        want.append(plan.predict(stored[whole:].reshape(1, -1)))
    for run in np.flatnonzero(got != np.concatenate(want)):
        lo, hi = run * plan.rows, min(count, (run + 1) * plan.rows)
        bad[lo:hi] |= np.array(_block_crcs(actual[lo:hi], block_bytes), np.uint32) != stored[lo:hi]
    return np.flatnonzero(bad)


def verify(
    buf: bytes | bytearray | memoryview,
    lba_start: int,
    generation: int,
    seed: int,
    block_bytes: int,
    *,
    check: Check = "full",
    threads: int | None = None,
) -> list[Finding]:
    """Return a Finding for every block of `buf` that differs from the expected pattern.

    `check` is "full" (every byte compared with the regenerated block) or "crc" (header and
    crc32c only, fio's verify); see `bad_blocks`. Only the blocks that differ are classified.
    """
    rows = bad_blocks(buf, lba_start, generation, seed, block_bytes, check=check, threads=threads)
    if not rows:
        return []
    actual = np.frombuffer(buf, dtype="<u8").reshape(-1, block_bytes // 8)
    raw = memoryview(buf).cast("B")
    return [
        _classify(
            raw[i * block_bytes : (i + 1) * block_bytes],
            actual[i],
            expected_words(lba_start + i, 1, generation, seed, block_bytes)[0],
            lba_start + i,
            generation,
            seed,
            block_bytes,
        )
        for i in rows
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
