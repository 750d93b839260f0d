"""The host memory-test engine: every test finds the faults it should, no pass is dropped."""

from __future__ import annotations

import ctypes
from pathlib import Path
from types import SimpleNamespace

import pytest

from drivers.memtest.host_engine import (
    MEMTESTER_TESTS,
    AliasFault,
    FaultyBuffer,
    HostMemoryEngine,
    Inverted,
    StuckAt,
    TransitionFault,
    default_chunk_bytes,
)
from qualify.actions.base import ActionContext
from qualify.actions.hostmem import HostMarchParams, _host_march
from qualify.march import ALGORITHMS, MarchMemory, run_march

SIZE = 64 * 1024  # 8192 words: several 4 KiB chunks
CHUNK = 4096
WORDS = SIZE // 8


def _engine(faults: list, **kw: object) -> HostMemoryEngine:
    return HostMemoryEngine(buffer=FaultyBuffer(SIZE, faults), chunk_bytes=CHUNK, **kw)  # type: ignore[arg-type]


def _failing(result) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted({f.offset_bytes // 8 for f in result.failures})


class _WordModel(MarchMemory):
    """The same faults on a word-level model, for qualify.march's reference executor."""

    def __init__(self, faults: list) -> None:
        self.cells = [0] * WORDS
        self.faults = faults

    def read(self, address: int) -> int:
        return self.cells[address]

    def write(self, address: int, value: int) -> None:
        old, self.cells[address] = self.cells[address], value
        for f in self.faults:
            if f.word != address:
                continue
            v = self.cells[address]
            if isinstance(f, StuckAt):
                v = (v & ~f.mask) | (f.value & f.mask)
            elif isinstance(f, TransitionFault):
                v = v & ~(~old & v & f.mask) if f.rising else v | (old & ~v & f.mask)
            self.cells[address] = v

    def delay(self, ms: float) -> None:
        pass


FAULTS = [
    StuckAt(100, 1 << 3, 0),
    StuckAt(2000, 1 << 60, 1 << 60),
    TransitionFault(5000, 1 << 7, rising=False),
    TransitionFault(7000, 1 << 9, rising=True),
]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_march_finds_what_the_reference_executor_finds(name: str) -> None:
    with _engine(FAULTS) as engine:
        ours = engine.run_march(name)
    reference = run_march(ALGORITHMS[name], _WordModel(FAULTS), WORDS, width_bits=64)
    assert _failing(ours) == reference.failing_addresses
    assert ours.failing_words == len(reference.failing_addresses)


def test_mats_plus_misses_a_falling_transition_fault_that_march_c_minus_finds() -> None:
    fault = [TransitionFault(4321, 1 << 5, rising=False)]
    with _engine(fault) as engine:
        assert engine.run_march("MATS+").passed
        assert _failing(engine.run_march("March C-")) == [4321]


def test_march_finds_an_address_alias_and_counts_its_bytes() -> None:
    with _engine([AliasFault(300, 4100)]) as engine:
        result = engine.run_march("March C-")
    assert _failing(result) == [300, 4100]  # either address reads the other one's writes
    assert result.bytes_read + result.bytes_written == 10 * SIZE
    assert result.failures[0].address == result.failures[0].offset_bytes + engine.buffer.base_address


def test_memtester_list_makes_every_pass_and_passes_on_good_memory() -> None:
    with HostMemoryEngine(SIZE, chunk_bytes=CHUNK, threads=2, lock=False) as engine:
        result = engine.run_memtester()
    assert {t.name: t.passes for t in result.tests} == MEMTESTER_TESTS
    assert result.passed and result.failing_words == 0


@pytest.mark.parametrize("name", list(MEMTESTER_TESTS))
def test_each_memtester_test_finds_stuck_bits(name: str) -> None:
    # Eight bits stuck low in one word, eight stuck high in another: every test writes some
    # value that disagrees with one of them. (Compare OR only ever expects all ones on
    # memtester's 0xFF-cleared buffer, so it can only see the stuck-low bits.)
    faults = [StuckAt(1234, 0xFF << 16, 0), StuckAt(WORDS - 3, 0xFF << 40, 0xFF << 40)]
    with _engine(faults) as engine:
        found = _failing(engine.run_memtester([name]))
    assert found and set(found) <= {1234, WORDS - 3}


@pytest.mark.parametrize("name", [n for n in MEMTESTER_TESTS if not n.startswith("Compare")])
def test_each_test_that_writes_fresh_values_finds_an_inverted_bit(name: str) -> None:
    # A read-modify-write (the Compare tests) inverts twice and hides such a cell, in
    # memtester as here; every test that writes values it did not read finds it.
    with _engine([Inverted(1234, 1 << 17), Inverted(WORDS - 3, 1 << 63)]) as engine:
        assert _failing(engine.run_memtester([name])) == [1234, WORDS - 3]


@pytest.mark.parametrize(
    "name",
    [
        "Solid Bits",
        "Block Sequential",
        "Checkerboard",
        "Bit Spread",
        "Bit Flip",
        "Walking Ones",
        "Walking Zeroes",
    ],
)
def test_pattern_tests_find_stuck_bits_of_both_polarities(name: str) -> None:
    faults = [StuckAt(10, 1 << 2, 0), StuckAt(6000, 1 << 40, 1 << 40)]
    with _engine(faults, threads=2) as engine:
        assert _failing(engine.run_memtester([name])) == [10, 6000]


def test_stuck_address_finds_an_address_line_fault() -> None:
    with _engine([AliasFault(64, 64 + 4096)]) as engine:
        result = engine.run_memtester(["Stuck Address"])
    assert set(_failing(result)) == {64, 64 + 4096}


def test_random_halves_name_the_failing_half_only() -> None:
    with _engine([StuckAt(WORDS // 2 + 7, (1 << 64) - 1, 0)]) as engine:
        result = engine.run_memtester(["Random Value"])
    assert _failing(result) == [WORDS // 2 + 7]


def test_copy_and_check_finds_a_bad_cell_and_counts_copies() -> None:
    with _engine([Inverted(WORDS // 2 + 100, 1)], threads=2) as engine:
        result = engine.copy_and_check(rounds=3)
    assert WORDS // 2 + 100 in _failing(result)
    assert result.bytes_copied == 3 * SIZE // 2


def test_copy_and_check_fast_path_names_the_word_that_read_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    from drivers.memtest import kernel

    if not kernel.has_libc():
        pytest.skip("the fast path needs the C library")
    real = kernel.copy_equal_at
    flipped: list[int] = []

    def flip_once(dst: int, src: int, expected: int, nbytes: int) -> bool:
        if not flipped:  # a bit of the 6th source word flips in memory before the copy reads it
            word = ctypes.c_uint64.from_address(src + 5 * 8)
            word.value ^= 1 << 17
            flipped.append(src + 5 * 8)
        return real(dst, src, expected, nbytes)

    monkeypatch.setattr(kernel, "copy_equal_at", flip_once)
    with HostMemoryEngine(SIZE, threads=1, chunk_bytes=4096, lock=False) as engine:
        base = kernel.address_of(engine.words)
        result = engine.copy_and_check(rounds=2)
    first = result.failures[0]
    assert (first.offset_bytes, first.mask) == (flipped[0] - base, 1 << 17)
    # The copy carried the flip on: the next round read it back from the other half, and the
    # final check found it where round 1 copied it back.
    at = flipped[0] - base
    assert sorted((f.step, f.offset_bytes) for f in result.failures) == [
        ("final", at),
        ("round 0", at),
        ("round 1", at + SIZE // 2),
    ]
    assert result.bytes_copied == 2 * SIZE // 2


def test_memtester_fast_path_finds_a_word_that_did_not_take_its_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from drivers.memtest import kernel

    if not kernel.has_libc():
        pytest.skip("the fast path needs the C library")
    real = kernel.copy_at
    missed: list[int] = []

    def copy_missing_one_word(dst: int, src: int, nbytes: int) -> None:
        real(dst, src, nbytes)
        if not missed:  # the 10th word keeps its old value: a write that did not take
            word = ctypes.c_uint64.from_address(dst + 9 * 8)
            word.value = ~word.value & ((1 << 64) - 1)
            missed.append(dst + 9 * 8)

    monkeypatch.setattr(kernel, "copy_at", copy_missing_one_word)
    with HostMemoryEngine(SIZE, threads=1, chunk_bytes=4096, lock=False) as engine:
        base = kernel.address_of(engine.words)
        result = engine.run_memtester(["Solid Bits"])
    assert result.test("Solid Bits").passes == 64
    assert [(f.step, f.offset_bytes, f.mask) for f in result.failures] == [
        ("pass 1", missed[0] - base, (1 << 64) - 1)
    ]


@pytest.mark.parametrize(
    ("caches", "chunk"),
    [
        ({"index0": ("1", "Data", "48K"), "index2": ("2", "Unified", "1024K")}, 512 << 10),
        ({"index2": ("2", "Unified", "2048K")}, 1 << 20),  # capped at 1 MiB
        ({"index2": ("2", "Unified", "64K")}, 64 << 10),  # at least 64 KiB
        ({"index1": ("1", "Instruction", "32K")}, 256 << 10),  # no L2 known: the fallback
    ],
)
def test_default_chunk_is_half_the_l2(
    tmp_path: Path, caches: dict[str, tuple[str, str, str]], chunk: int
) -> None:
    for name, (level, kind, size) in caches.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "type").write_text(kind + "\n")
        (folder / "size").write_text(size + "\n")
    assert default_chunk_bytes(tmp_path) == chunk


def test_host_march_action_reports_failing_words_and_bandwidth() -> None:
    ctx = ActionContext(station=None, dut=SimpleNamespace(), now_s=lambda: 0.0, seed=1)  # type: ignore[arg-type]
    result = _host_march(ctx, HostMarchParams(algorithm="march c-", size_mb=1))
    readings = {r.name: r.value for r in result.readings}
    assert readings["failing_words"] == 0 and readings["bytes_per_s"] > 0
    memtester = _host_march(ctx, HostMarchParams(algorithm="memtester", size_mb=1))
    assert {r.name: r.value for r in memtester.readings}["tests_failed"] == 0
    with pytest.raises((KeyError, ValueError)):
        HostMarchParams(algorithm="March Z")
