"""check="crc" with one crc32c per run of blocks: the combine algebra, and damage named as block by block."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest

from drivers.integrity import bad_blocks, generate, verify
from drivers.integrity.blockio import verify_pattern, write_pattern, write_range
from drivers.integrity.crc_combine import combine, run_plan, zeros_map
from drivers.integrity.pattern import MAGIC, VERSION

SEED, GEN = 0xC0FFEE, 4
BLOCK = 4096
RUN = 256  # 4 KiB blocks in one crc32c run (1 MiB)


def _reference_bad(buf: bytes | bytearray, lba_start: int, block_bytes: int) -> list[int]:
    """Return the blocks whose header or stored crc32c is wrong, one crc32c call per block."""
    word1 = VERSION | (40 << 16) | (block_bytes << 32)
    bad = []
    for i in range(len(buf) // block_bytes):
        block = bytes(buf[i * block_bytes : (i + 1) * block_bytes])
        magic, crc, w1, lba, gen, seed = struct.unpack_from("<IIQQQQ", block)
        header_ok = (magic, w1, lba, gen, seed) == (MAGIC, word1, lba_start + i, GEN, SEED)
        if not header_ok or crc != crc32c.crc32c(block[8:]):
            bad.append(i)
    return bad


@pytest.mark.parametrize(
    ("len_a", "len_b"), [(0, 0), (0, 5), (7, 0), (1, 1), (13, 4088), (4096, 1 << 20), (3, 65537)]
)
def test_combine_is_the_crc32c_of_the_concatenation(len_a: int, len_b: int) -> None:
    a, b = os.urandom(len_a), os.urandom(len_b)
    assert combine(crc32c.crc32c(a), crc32c.crc32c(b), len_b) == crc32c.crc32c(a + b)


def test_zeros_maps_compose_by_adding_lengths() -> None:
    value = int.from_bytes(os.urandom(4), "little")
    once = combine(combine(value, 0, 1000), 0, 24)
    assert combine(value, 0, 1024) == once
    assert zeros_map(0) == tuple(1 << bit for bit in range(32))


@pytest.mark.parametrize(("block_bytes", "rows"), [(512, 256), (4096, 256), (1536, 7), (8192, 1)])
def test_run_plan_predicts_the_crc32c_of_whole_and_short_runs(block_bytes: int, rows: int) -> None:
    plan = run_plan(MAGIC.to_bytes(4, "little"), block_bytes, rows)
    buf = generate(10, 2 * rows + 3, GEN, SEED, block_bytes)
    stored = np.frombuffer(buf, "<u4").reshape(-1, block_bytes // 4)[:, 1]
    runs = [(lo, min(lo + rows, len(stored))) for lo in range(0, len(stored), rows)]
    for lo, hi in runs:
        [want] = plan.predict(stored[lo:hi].reshape(1, -1))
        assert want == crc32c.crc32c(buf[lo * block_bytes : hi * block_bytes])


def _damaged(count: int) -> bytearray:
    return bytearray(generate(0, count, GEN, SEED, BLOCK))


def _crc_findings(buf: bytearray, threads: int = 1) -> list[tuple[int, str]]:
    return [(f.lba, f.kind) for f in verify(buf, 0, GEN, SEED, BLOCK, check="crc", threads=threads)]


@pytest.mark.parametrize("threads", [1, 2])
def test_one_corrupted_payload_byte_is_named(threads: int) -> None:
    buf = _damaged(3 * RUN + 40)
    buf[(RUN + 17) * BLOCK + 3000] ^= 0x40
    assert bad_blocks(buf, 0, GEN, SEED, BLOCK, check="crc", threads=threads) == [RUN + 17]
    assert _crc_findings(buf, threads) == [(RUN + 17, "corrupted")]


def test_a_corrupted_stored_crc_is_named() -> None:
    buf = _damaged(2 * RUN)
    buf[5 * BLOCK + 6] ^= 0x01  # inside the stored crc of block 5
    assert _crc_findings(buf) == [(5, "corrupted")]


@pytest.mark.parametrize("distance", [1, 2, 100, RUN - 1])
def test_identical_bit_flips_in_two_blocks_of_a_run_are_both_named(distance: int) -> None:
    buf = _damaged(2 * RUN)
    for block in (RUN, RUN + distance):
        buf[block * BLOCK + 1234] ^= 0x08
    assert _crc_findings(buf) == [(RUN, "corrupted"), (RUN + distance, "corrupted")]


def test_a_swapped_block_is_misdirected_and_its_neighbours_are_good() -> None:
    buf = _damaged(2 * RUN)
    buf[300 * BLOCK : 301 * BLOCK], buf[301 * BLOCK : 302 * BLOCK] = (
        buf[301 * BLOCK : 302 * BLOCK],
        buf[300 * BLOCK : 301 * BLOCK],
    )
    assert _crc_findings(buf) == [(300, "misdirected"), (301, "misdirected")]


@pytest.mark.parametrize("block_bytes", [512, 1536, 4096, 2 << 20])
def test_crc_check_names_what_a_per_block_crc_names(block_bytes: int) -> None:
    count = max(12, (3 << 20) // block_bytes + 5)  # several runs and a short last run
    buf = bytearray(generate(0, count, GEN, SEED, block_bytes))
    rng = np.random.default_rng(7)
    for i in rng.choice(count, size=6, replace=False):
        buf[int(i) * block_bytes + int(rng.integers(0, block_bytes))] ^= 1 << int(rng.integers(0, 8))
    buf[(count - 1) * block_bytes : count * block_bytes] = bytes(block_bytes)  # zeros: unwritten
    want = _reference_bad(buf, 0, block_bytes)
    assert len(want) >= 5  # a flip may land on an already damaged block
    for threads in (1, 3):
        assert bad_blocks(buf, 0, GEN, SEED, block_bytes, check="crc", threads=threads) == want


def test_a_read_only_buffer_with_a_one_block_span_is_checked_and_left_as_it_was() -> None:
    count = (16 << 20) // BLOCK + 1  # the last 16 MiB span holds one block
    buf = generate(0, count, GEN, SEED, BLOCK)
    before = crc32c.crc32c(buf)
    assert bad_blocks(buf, 0, GEN, SEED, BLOCK, check="crc", threads=1) == []
    assert crc32c.crc32c(buf) == before
    damaged = bytearray(buf)
    damaged[-100] ^= 0x01
    assert bad_blocks(damaged, 0, GEN, SEED, BLOCK, check="crc", threads=2) == [count - 1]


def test_only_a_failing_run_is_checked_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from drivers.integrity import pattern

    checked: list[int] = []
    per_block = pattern._block_crcs

    def counting(rows: np.ndarray, block_bytes: int) -> list[int]:
        checked.append(rows.shape[0])
        return per_block(rows, block_bytes)

    buf = _damaged(3 * RUN + 9)
    monkeypatch.setattr(pattern, "_block_crcs", counting)
    assert bad_blocks(buf, 0, GEN, SEED, BLOCK, check="crc") == []
    assert checked == []
    buf[(2 * RUN + 5) * BLOCK + 20] ^= 0x02  # the LBA field, which the stored crc covers
    assert bad_blocks(buf, 0, GEN, SEED, BLOCK, check="crc") == [2 * RUN + 5]
    assert checked == [RUN]


def test_file_verify_names_the_same_blocks_in_both_checks(tmp_path: Path) -> None:
    target = tmp_path / "dut.img"  # tmp_path is usually on a disk file system: O_DIRECT on
    count = 2 * (4 << 20) // BLOCK + 300  # more than one default crc chunk per worker
    write_pattern(target, 0, count, GEN, SEED, BLOCK)
    write_range(target, 700 * BLOCK, generate(9, 1, GEN, SEED, BLOCK))
    write_range(target, 1800 * BLOCK, bytes(BLOCK))
    write_range(target, 2100 * BLOCK + 999, b"\xff")  # unaligned: a buffered write
    want = [(700, "misdirected"), (1800, "unwritten"), (2100, "corrupted")]
    for check in ("crc", "full"):
        findings = verify_pattern(target, 0, count, GEN, SEED, BLOCK, check=check, threads=2)
        assert [(f.lba, f.kind) for f in findings] == want
    assert verify_pattern(target, 5, 0, GEN, SEED, BLOCK, check="crc") == []
