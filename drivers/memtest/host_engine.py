"""Host memory-test engine: March tests, memtester's test list and copy-and-check over a host buffer.

Runs on a host that holds the DUT modules, next to the stressapptest and memtester drivers, at
close to memory bandwidth: the buffer (locked in RAM, as memtester locks it) is worked in
cache-sized chunks by the C library's memset/memcpy/memcmp (`kernel`), and a failing chunk is
searched word by word only when its compare fails. Every failing read is reported with its
offset in the buffer and its virtual address.

How the work maps to DRAM. The buffer is far larger than the caches, so each chunk's lines
are read from DRAM when first touched and written back when evicted. Within a chunk that fits
in the core's cache, the order of word operations is invisible to the DRAM (a per-word loop
issues the same line reads and write-backs), so a March element applies its operations chunk
by chunk: for ⇑(r0,w1), compare the chunk with the 0-background, then write the 1-background
over it, chunks in ascending (⇑) or descending (⇓) order. The one March definition is
`qualify.march`; `qualify.march.run_march` is the word-level reference.

memtester's tests (memtester 4.6.0, 64-bit words; the names it prints) keep their patterns,
their pass counts and their order, with the buffer cleared to 0xFF after each test as
memtester does. Each pattern is written over the whole buffer and then read back over the
whole buffer; the engine fuses "check pass j" and "write pass j+1" per chunk, which keeps
that order for every word (pass j+1 is written everywhere before any of it is read) and saves
the read-for-ownership a separate write pass costs. No pass is dropped: `MEMTESTER_TESTS`
states each test's passes and the result counts the passes run.

`FaultyBuffer` injects faults (stuck-at, inverted, transition, address aliasing) so tests can
prove each test finds the faults it should.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drivers.memtest import kernel
from drivers.memtest.kernel import PageBuffer, Words
from qualify.march import Delay, Direction, MarchElement, MarchTest
from qualify.march import algorithm as march_algorithm

U64 = (1 << 64) - 1
ONES = U64
CHECKER = 0x5555555555555555
FALLBACK_CHUNK_BYTES = 256 * 1024  # where the L2's size is not known
DEFAULT_MAX_FAILURES = 1000  # failing reads kept in detail; all are counted

# memtester 4.6.0's tests in its order, with the passes each makes over the buffer (64-bit).
MEMTESTER_TESTS: dict[str, int] = {
    "Stuck Address": 16,
    "Random Value": 1,
    "Compare XOR": 1,
    "Compare SUB": 1,
    "Compare MUL": 1,
    "Compare DIV": 1,
    "Compare OR": 1,
    "Compare AND": 1,
    "Sequential Increment": 1,
    "Solid Bits": 64,
    "Block Sequential": 256,
    "Checkerboard": 64,
    "Bit Spread": 128,
    "Bit Flip": 512,
    "Walking Ones": 128,
    "Walking Zeroes": 128,
    "8-bit Writes": 2,
    "16-bit Writes": 2,
}


# -- faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StuckAt:
    """Bits of one word that always read as the same bits of `value` (stuck-at faults)."""

    word: int
    mask: int
    value: int


@dataclass(frozen=True)
class Inverted:
    """Bits of one word that store the complement of what is written."""

    word: int
    mask: int


@dataclass(frozen=True)
class TransitionFault:
    """Bits of one word that cannot rise (0→1, `rising`) or cannot fall (1→0)."""

    word: int
    mask: int
    rising: bool


@dataclass(frozen=True)
class AliasFault:
    """Two word addresses that decode to one cell (an address-line fault): the last write wins."""

    word: int
    other: int


Fault = StuckAt | Inverted | TransitionFault | AliasFault


class HostBuffer(PageBuffer):
    """The engine's test buffer: page-aligned words in RAM, with hooks around every write."""

    faulty = False

    def before_write(self, lo: int, hi: int) -> None:
        """Note the state of words lo..hi before the engine writes them (no-op here)."""

    def after_write(self, lo: int, hi: int, descending: bool = False) -> None:
        """Let words lo..hi settle after the engine wrote them (no-op here)."""


class FaultyBuffer(HostBuffer):
    """A HostBuffer whose chosen words misbehave after every write: fault injection for tests."""

    faulty = True

    def __init__(self, size_bytes: int, faults: Sequence[Fault], *, lock: bool = False) -> None:
        """Map the buffer and arm `faults` (word indices within it)."""
        super().__init__(size_bytes, lock=lock)
        n = len(self.words)
        for fault in faults:
            for index in (fault.word, getattr(fault, "other", fault.word)):
                if not 0 <= index < n:
                    raise ValueError(f"fault {fault} is outside the buffer's {n} words")
        self.faults = tuple(faults)
        self._cells = sorted({f.word for f in faults if not isinstance(f, AliasFault)})
        self._before: dict[int, int] = {}

    def _cells_in(self, lo: int, hi: int) -> list[int]:
        return self._cells[bisect.bisect_left(self._cells, lo) : bisect.bisect_left(self._cells, hi)]

    def before_write(self, lo: int, hi: int) -> None:
        """Remember the old values of faulty words about to be written (for transition faults)."""
        self._before = {w: int(self.words[w]) for w in self._cells_in(lo, hi)}

    def after_write(self, lo: int, hi: int, descending: bool = False) -> None:
        """Apply every fault on a word that was just written."""
        words = self.words
        for fault in self.faults:
            if isinstance(fault, AliasFault):
                hit = [w for w in (fault.word, fault.other) if lo <= w < hi]
                if not hit:
                    continue
                # One cell behind both addresses: it holds whichever was written last.
                last = (min(hit) if descending else max(hit)) if len(hit) == 2 else hit[0]
                words[fault.word] = words[fault.other] = words[last]
                continue
            if not lo <= fault.word < hi:
                continue
            value = int(words[fault.word])
            if isinstance(fault, StuckAt):
                value = (value & ~fault.mask) | (fault.value & fault.mask)
            elif isinstance(fault, Inverted):
                value ^= fault.mask
            else:
                old = self._before.get(fault.word, value)
                if fault.rising:
                    value &= ~(~old & value & fault.mask)
                else:
                    value |= old & ~value & fault.mask
            words[fault.word] = value & U64


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordFailure:
    """One read that did not return what was written."""

    test: str
    step: str  # the pass or March operation, e.g. "pass 3" or "M2 r1"
    offset_bytes: int
    address: int  # virtual address of the word
    expected: int
    actual: int

    @property
    def mask(self) -> int:
        """Get the failing bits: expected XOR actual."""
        return self.expected ^ self.actual


@dataclass
class TestOutcome:
    """One test of a run: the passes it made over the buffer and the failing reads it saw."""

    name: str
    passes: int = 0
    failed_reads: int = 0

    @property
    def passed(self) -> bool:
        """Get whether every read of the test matched."""
        return self.failed_reads == 0


@dataclass
class HostResult:
    """What one engine run did and found."""

    name: str
    size_bytes: int
    duration_s: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    bytes_copied: int = 0
    tests: list[TestOutcome] = field(default_factory=list)
    failures: list[WordFailure] = field(default_factory=list)  # the first max_failures, in order
    failed_reads: int = 0
    failing_words: int = 0  # distinct failing word offsets

    @property
    def passed(self) -> bool:
        """Get whether every read matched."""
        return self.failed_reads == 0

    @property
    def bytes_per_s(self) -> float:
        """Get bytes read plus bytes written per second."""
        return (self.bytes_read + self.bytes_written) / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def copied_bytes_per_s(self) -> float:
        """Get bytes copied and checked per second (copy-and-check runs)."""
        return self.bytes_copied / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failing_offsets(self) -> list[int]:
        """Get the failing word offsets (bytes) among the detailed failures, ascending, once each."""
        return sorted({f.offset_bytes for f in self.failures})

    def test(self, name: str) -> TestOutcome:
        """Return the outcome of the test called `name`."""
        for outcome in self.tests:
            if outcome.name == name:
                return outcome
        raise KeyError(name)


class _Recorder:
    """Collects failing reads from worker threads: counts all, keeps the first in detail."""

    def __init__(self, result: HostResult, base_address: int, words: int, max_failures: int) -> None:
        self.result = result
        self.base = base_address
        self.max = max_failures
        self.words = words
        self.lock = threading.Lock()
        self.bitmap: np.ndarray[Any, np.dtype[np.bool_]] | None = None

    def mismatch(self, outcome: TestOutcome, step: str, lo: int, actual: Words, expected: Words) -> None:
        idx = kernel.mismatches(actual, expected)
        with self.lock:
            outcome.failed_reads += len(idx)
            self.result.failed_reads += len(idx)
            if self.bitmap is None:
                self.bitmap = np.zeros(self.words, dtype=bool)
            self.bitmap[lo + idx] = True
            room = self.max - len(self.result.failures)
            for i in idx[: max(0, room)]:
                offset = (lo + int(i)) * 8
                self.result.failures.append(
                    WordFailure(
                        outcome.name, step, offset, self.base + offset, int(expected[i]), int(actual[i])
                    )
                )

    def finish(self) -> None:
        self.result.failing_words = int(self.bitmap.sum()) if self.bitmap is not None else 0


# -- patterns -------------------------------------------------------------------------------


class _Pattern:
    """One pass's content: what every word of a chunk should hold."""

    byte: int | None = None  # set when every byte is the same: written with memset
    address: int | None = None  # of a template every chunk shares, once prepared

    def prepare(self, chunk_words: int) -> None:
        """Build what expected() needs for chunks of up to `chunk_words` words."""

    def expected(self, lo: int, hi: int, scratch: Words) -> Words:
        """Return the expected words lo..hi (a template slice or `scratch` filled)."""
        raise NotImplementedError


class _Repeat(_Pattern):
    """A word pattern that repeats every one or two words: a template reused for every chunk."""

    def __init__(self, even: int, odd: int | None = None) -> None:
        self.even = even & U64
        self.odd = self.even if odd is None else odd & U64
        low = self.even & 0xFF
        if self.even == self.odd and self.even == low * 0x0101010101010101:
            self.byte = low
        self.template: Words = np.empty(0, dtype=np.uint64)

    def prepare(self, chunk_words: int) -> None:
        self.template = np.empty(chunk_words, dtype=np.uint64)
        self.template[0::2] = self.even
        self.template[1::2] = self.odd
        self.address = kernel.address_of(self.template)

    def expected(self, lo: int, hi: int, scratch: Words) -> Words:
        return self.template[: hi - lo]  # chunks start on even words, so the phase holds


class _Address(_Pattern):
    """Stuck Address: word i holds its own address, or its complement when (j + i) is odd."""

    def __init__(self, base_address: int, j: int) -> None:
        self.base = base_address
        self.j = j
        self.steps: Words = np.empty(0, dtype=np.uint64)

    def prepare(self, chunk_words: int) -> None:
        self.steps = np.arange(chunk_words, dtype=np.uint64) * np.uint64(8)

    def expected(self, lo: int, hi: int, scratch: Words) -> Words:
        out = scratch[: hi - lo]
        np.add(self.steps[: hi - lo], np.uint64((self.base + 8 * lo) & U64), out=out)
        odd = (self.j + lo + 1) % 2  # the first word with (j + i) odd
        np.invert(out[odd::2], out=out[odd::2])
        return out


class _Sequential(_Pattern):
    """Sequential Increment: word i holds i + q."""

    def __init__(self, q: int) -> None:
        self.q = q & U64
        self.index: Words = np.empty(0, dtype=np.uint64)

    def prepare(self, chunk_words: int) -> None:
        self.index = np.arange(chunk_words, dtype=np.uint64)

    def expected(self, lo: int, hi: int, scratch: Words) -> Words:
        out = scratch[: hi - lo]
        np.add(self.index[: hi - lo], np.uint64((lo + self.q) & U64), out=out)
        return out


def default_chunk_bytes(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """Return half a core's L2 (64 KiB .. 1 MiB): a chunk and its pattern fit in the L2 together.

    Measured here (1 MiB L2) over memtester's list on 1 GiB: 256 KiB chunks 66 s, 512 KiB 55 s.
    """
    for index in sorted(cache_dir.glob("index*")):
        try:
            level, kind = ((index / name).read_text().strip() for name in ("level", "type"))
            if level != "2" or kind == "Instruction":
                continue
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        digits = text.rstrip("KMB")
        if digits.isdigit():
            return max(64 << 10, min(1 << 20, int(digits) * scale // 2))
    return FALLBACK_CHUNK_BYTES


def _bit(shift: int) -> int:
    # memtester shifts a long by up to 65; x86 masks the count to 6 bits, so 1 << 64 is 1.
    return 1 << (shift % 64)


def _solid_bits() -> list[_Pattern]:
    return [_Repeat(q, ~q) for q in (ONES if j % 2 == 0 else 0 for j in range(64))]


def _checkerboard() -> list[_Pattern]:
    return [_Repeat(q, ~q) for q in (CHECKER if j % 2 == 0 else ~CHECKER & U64 for j in range(64))]


def _block_sequential() -> list[_Pattern]:
    return [_Repeat(j * 0x0101010101010101) for j in range(256)]


def _bit_spread() -> list[_Pattern]:
    out: list[_Pattern] = []
    for j in range(128):
        q = _bit(j) | _bit(j + 2) if j < 64 else _bit(127 - j) | _bit(129 - j)
        out.append(_Repeat(q, ~q))
    return out


def _bit_flip() -> list[_Pattern]:
    out: list[_Pattern] = []
    for k in range(64):
        q = 1 << k
        for _ in range(8):
            q = ~q & U64
            out.append(_Repeat(q, ~q))
    return out


def _walking(ones: bool) -> list[_Pattern]:
    bits = [1 << (j if j < 64 else 127 - j) for j in range(128)]
    # memtester's "Walking Ones" walks a zero through ones (walkbits1), "Walking Zeroes" a one.
    return [_Repeat(ONES ^ b if ones else b) for b in bits]


# -- the engine -----------------------------------------------------------------------------


class HostMemoryEngine:
    """Runs March tests, memtester's list and copy-and-check on one host buffer.

    `threads` workers split the buffer into contiguous regions for memtester's tests and
    copy-and-check, meeting at a barrier after every pass so each pass is written everywhere
    before it is read. March tests run on one thread: their address order is the test.
    """

    def __init__(
        self,
        size_bytes: int | None = None,
        *,
        buffer: HostBuffer | None = None,
        chunk_bytes: int | None = None,
        threads: int | None = None,
        seed: int = 0,
        max_failures: int = DEFAULT_MAX_FAILURES,
        lock: bool = True,
    ) -> None:
        """Test `buffer`, or a new locked buffer of `size_bytes` that close() releases.

        `chunk_bytes` defaults to half the L2 (`default_chunk_bytes`), `threads` to the host's cores.
        """
        if buffer is None:
            if size_bytes is None:
                raise ValueError("give size_bytes or a buffer")
            buffer = HostBuffer(size_bytes, lock=lock)
            self._owned = True
        else:
            self._owned = False
        if chunk_bytes is None:
            chunk_bytes = default_chunk_bytes()
        if chunk_bytes < 16 or chunk_bytes % 16:
            raise ValueError(f"chunk_bytes must be a positive multiple of 16 (got {chunk_bytes})")
        self.buffer = buffer
        self.words = buffer.words
        self.chunk_words = min(chunk_bytes // 8, len(self.words) + len(self.words) % 2)
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self.seed = seed
        self.max_failures = max_failures

    def close(self) -> None:
        """Release the buffer if the engine made it."""
        if self._owned:
            del self.words
            self.buffer.close()

    def __enter__(self) -> HostMemoryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------

    def _chunks(self, lo: int, hi: int) -> list[tuple[int, int]]:
        step = self.chunk_words
        return [(a, min(a + step, hi)) for a in range(lo, hi, step)]

    def _regions(self, n_words: int, threads: int) -> list[list[tuple[int, int]]]:
        chunks = self._chunks(0, n_words)
        threads = max(1, min(threads, len(chunks)))
        per = -(-len(chunks) // threads)
        return [chunks[i : i + per] for i in range(0, len(chunks), per)]

    def _write(self, lo: int, hi: int, pattern: _Pattern, scratch: Words, descending: bool = False) -> None:
        chunk = self.words[lo:hi]
        faulty = self.buffer.faulty
        if faulty:
            self.buffer.before_write(lo, hi)
        if pattern.byte is not None:
            kernel.fill_byte(chunk, pattern.byte)
        else:
            kernel.copy(chunk, pattern.expected(lo, hi, scratch))
        if faulty:
            self.buffer.after_write(lo, hi, descending)

    def _check(
        self, rec: _Recorder, outcome: TestOutcome, step: str, lo: int, hi: int, expected: Words
    ) -> None:
        chunk = self.words[lo:hi]
        if not kernel.equal(chunk, expected):
            rec.mismatch(outcome, step, lo, chunk, expected)

    def _parallel(
        self, regions: list[list[tuple[int, int]]], work: Callable[[list[tuple[int, int]]], None]
    ) -> None:
        if len(regions) == 1:
            work(regions[0])
            return
        errors: list[BaseException] = []

        def run(region: list[tuple[int, int]]) -> None:
            try:
                work(region)
            except BaseException as exc:  # surfaced below, after every worker stopped
                errors.append(exc)

        workers = [threading.Thread(target=run, args=(r,), name="hostmem") for r in regions]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]

    def _new_result(self, name: str) -> tuple[HostResult, _Recorder]:
        result = HostResult(name=name, size_bytes=len(self.words) * 8)
        return result, _Recorder(result, self.buffer.base_address, len(self.words), self.max_failures)

    # -- March ----------------------------------------------------------------------------

    def run_march(self, test: MarchTest | str, *, background: int = 0, passes: int = 1) -> HostResult:
        """Run a March test (a `qualify.march` test or its name) `passes` times over the buffer.

        A `0` in the notation is the 64-bit `background` word, a `1` its complement. A delay
        element pauses the engine; on a host the memory controller keeps refreshing, so a
        pause holds data but does not stretch the refresh interval as a tester can.
        """
        march = march_algorithm(test) if isinstance(test, str) else test
        if passes < 1:
            raise ValueError("passes must be at least 1")
        result, rec = self._new_result(march.name)
        outcome = TestOutcome(march.name)
        result.tests.append(outcome)
        bg = (_Repeat(background), _Repeat(~background & U64))
        for pattern in bg:
            pattern.prepare(self.chunk_words)
        scratch = np.empty(self.chunk_words, dtype=np.uint64)
        chunks = self._chunks(0, len(self.words))
        start = time.perf_counter()
        for _ in range(passes):
            for index, element in enumerate(march.elements):
                if isinstance(element, Delay):
                    time.sleep(element.ms / 1000.0)
                    continue
                self._march_element(rec, outcome, index, element, chunks, bg, scratch, result)
            outcome.passes += 1
        result.duration_s = time.perf_counter() - start
        rec.finish()
        return result

    def _march_element(
        self,
        rec: _Recorder,
        outcome: TestOutcome,
        index: int,
        element: MarchElement,
        chunks: list[tuple[int, int]],
        bg: tuple[_Repeat, _Repeat],
        scratch: Words,
        result: HostResult,
    ) -> None:
        descending = element.direction is Direction.DOWN
        ops = [(str(op), op.is_read, bg[op.value]) for op in element.ops]
        reads = sum(1 for _, is_read, _ in ops if is_read)
        for lo, hi in reversed(chunks) if descending else chunks:
            for name, is_read, pattern in ops:
                if is_read:
                    self._check(rec, outcome, f"M{index} {name}", lo, hi, pattern.template[: hi - lo])
                else:
                    self._write(lo, hi, pattern, scratch, descending)
        size = len(self.words) * 8
        result.bytes_read += reads * size
        result.bytes_written += (len(ops) - reads) * size

    # -- memtester's list -----------------------------------------------------------------

    def run_memtester(self, tests: Sequence[str] | None = None, *, loops: int = 1) -> HostResult:
        """Run memtester's tests (all, in memtester's order, or those named) `loops` times."""
        names = list(MEMTESTER_TESTS) if tests is None else list(tests)
        unknown = [n for n in names if n not in MEMTESTER_TESTS]
        if unknown:
            raise KeyError(f"unknown memtester test(s) {unknown}; known: {', '.join(MEMTESTER_TESTS)}")
        result, rec = self._new_result("memtester")
        outcomes = {n: TestOutcome(n) for n in names}
        result.tests.extend(outcomes.values())
        rng = np.random.Generator(np.random.PCG64(self.seed))
        start = time.perf_counter()
        cleared = False
        for _ in range(loops):
            for name in names:
                if name.startswith("Compare ") and not cleared:
                    self._clear(result)  # they start from memtester's 0xFF clear
                self._memtester_test(name, outcomes[name], rec, result, rng)
                cleared = name != "Stuck Address"
                if cleared:
                    self._clear(result)  # memtester sets the buffer to 0xFF after each test
        result.duration_s = time.perf_counter() - start
        rec.finish()
        return result

    def _memtester_test(
        self, name: str, outcome: TestOutcome, rec: _Recorder, result: HostResult, rng: np.random.Generator
    ) -> None:
        def q() -> int:
            return int(rng.integers(0, 1 << 64, dtype=np.uint64))

        n = len(self.words)
        if name == "Stuck Address":
            self._passes(outcome, rec, result, [_Address(self.buffer.base_address, j) for j in range(16)], n)
        elif name == "Random Value":
            self._random_halves(outcome, rec, result, narrow=0)
        elif name.startswith("Compare "):
            self._compare_op(outcome, rec, result, name.removeprefix("Compare "), q())
        elif name == "Sequential Increment":
            self._passes(outcome, rec, result, [_Sequential(q())], n)
        elif name == "8-bit Writes":
            self._random_halves(outcome, rec, result, narrow=1)
        elif name == "16-bit Writes":
            self._random_halves(outcome, rec, result, narrow=2)
        else:
            patterns = {
                "Solid Bits": _solid_bits,
                "Block Sequential": _block_sequential,
                "Checkerboard": _checkerboard,
                "Bit Spread": _bit_spread,
                "Bit Flip": _bit_flip,
                "Walking Ones": lambda: _walking(True),
                "Walking Zeroes": lambda: _walking(False),
            }[name]()
            self._passes(outcome, rec, result, patterns, n)

    def _passes(
        self, outcome: TestOutcome, rec: _Recorder, result: HostResult, patterns: list[_Pattern], n_words: int
    ) -> None:
        """Write each pattern over the whole buffer, then read it back, fusing check j with write j+1."""
        for pattern in patterns:
            pattern.prepare(self.chunk_words)
        regions = self._regions(n_words, self.threads)
        barrier = threading.Barrier(len(regions))

        base = kernel.address_of(self.words)
        fast = kernel.has_libc() and not self.buffer.faulty  # injected faults act on writes

        def work(region: list[tuple[int, int]]) -> None:
            scratch = np.empty(self.chunk_words, dtype=np.uint64)
            expect = np.empty(self.chunk_words, dtype=np.uint64)
            for lo, hi in region:
                self._write(lo, hi, patterns[0], scratch)
            barrier.wait()
            for j, pattern in enumerate(patterns):
                following = patterns[j + 1] if j + 1 < len(patterns) else None
                step = f"pass {j}"
                template = pattern.address
                writable = following is None or following.byte is not None or following.address is not None
                if fast and template is not None and writable:
                    # Templates on both sides: the chunk loop on raw addresses.
                    for lo, hi in region:
                        addr, nbytes = base + lo * 8, (hi - lo) * 8
                        if not kernel.equal_at(addr, template, nbytes):
                            self._check(rec, outcome, step, lo, hi, pattern.expected(lo, hi, expect))
                        if following is None:
                            continue
                        if following.byte is not None:
                            kernel.fill_at(addr, following.byte, nbytes)
                        elif following.address is not None:
                            kernel.copy_at(addr, following.address, nbytes)
                else:
                    for lo, hi in region:
                        self._check(rec, outcome, step, lo, hi, pattern.expected(lo, hi, expect))
                        if following is not None:
                            self._write(lo, hi, following, scratch)
                barrier.wait()  # pass j+1 is everywhere before anyone reads it

        self._parallel(regions, work)
        outcome.passes += len(patterns)
        result.bytes_written += len(patterns) * n_words * 8
        result.bytes_read += len(patterns) * n_words * 8

    def _clear(self, result: HostResult) -> None:
        ones = _Repeat(ONES)
        regions = self._regions(len(self.words), self.threads)

        def work(region: list[tuple[int, int]]) -> None:
            for lo, hi in region:
                self._write(lo, hi, ones, self.words[lo:lo])

        self._parallel(regions, work)
        result.bytes_written += len(self.words) * 8

    def _compare_op(self, outcome: TestOutcome, rec: _Recorder, result: HostResult, op: str, q: int) -> None:
        """Compare XOR/SUB/MUL/DIV/OR/AND: apply `op q` to every word in place, then check."""
        if op == "DIV" and q == 0:
            q = 1
        value = np.uint64(q)
        ufunc: Any = {
            "XOR": np.bitwise_xor,
            "SUB": np.subtract,
            "MUL": np.multiply,
            "DIV": np.floor_divide,
            "OR": np.bitwise_or,
            "AND": np.bitwise_and,
        }[op]
        # The buffer holds 0xFF.. (memtester's clear), so every word must end as op(0xFF.., q).
        expected = _Repeat(int(ufunc(np.array([ONES], dtype=np.uint64), value)[0]))
        expected.prepare(self.chunk_words)
        regions = self._regions(len(self.words), self.threads)
        barrier = threading.Barrier(len(regions))

        def work(region: list[tuple[int, int]]) -> None:
            for lo, hi in region:
                chunk = self.words[lo:hi]
                if self.buffer.faulty:
                    self.buffer.before_write(lo, hi)
                ufunc(chunk, value, out=chunk)
                if self.buffer.faulty:
                    self.buffer.after_write(lo, hi)
            barrier.wait()
            for lo, hi in region:
                self._check(rec, outcome, "pass 0", lo, hi, expected.template[: hi - lo])

        self._parallel(regions, work)
        outcome.passes += 1
        size = len(self.words) * 8
        result.bytes_read += 2 * size
        result.bytes_written += size

    def _random_words(self, tag: int, attempt: int, lo: int, n: int) -> Words:
        """Return the random words of one chunk: seeded by the chunk, so a check can regenerate them."""
        gen = np.random.PCG64([self.seed, tag, attempt, lo])
        return gen.random_raw(n).astype(np.uint64, copy=False)

    def _random_halves(self, outcome: TestOutcome, rec: _Recorder, result: HostResult, narrow: int) -> None:
        """Random Value (narrow 0), 8-bit (1) or 16-bit Writes (2): equal random halves, compared.

        As memtester does: the same random words go to both halves, then the halves are
        compared. With narrow writes, one half is written a byte (or 16 bits) at a time, each
        half in turn. A chunk whose halves differ is checked against its regenerated words, so
        the failing half is named, not both.
        """
        half = len(self.words) // 2
        chunks = self._chunks(0, half)
        attempts = 1 if narrow == 0 else 2
        itemsize = {0: 8, 1: 1, 2: 2}[narrow]
        for attempt in range(attempts):
            for lo, hi in chunks:
                values = self._random_words(narrow, attempt, lo, hi - lo)
                wide, slim = (lo, lo + half) if attempt % 2 else (lo + half, lo)
                self._write_words(wide, wide + hi - lo, values)
                self._write_narrow(slim, slim + hi - lo, values, itemsize)
            for lo, hi in chunks:
                a, b = self.words[lo:hi], self.words[lo + half : hi + half]
                if not kernel.equal(a, b):
                    values = self._random_words(narrow, attempt, lo, hi - lo)
                    for start, side in ((lo, a), (lo + half, b)):
                        if not kernel.equal(side, values):
                            rec.mismatch(outcome, f"pass {attempt}", start, side, values)
            outcome.passes += 1
            result.bytes_written += 2 * half * 8
            result.bytes_read += 2 * half * 8

    def _write_words(self, lo: int, hi: int, values: Words) -> None:
        if self.buffer.faulty:
            self.buffer.before_write(lo, hi)
        kernel.copy(self.words[lo:hi], values)
        if self.buffer.faulty:
            self.buffer.after_write(lo, hi)

    def _write_narrow(self, lo: int, hi: int, values: Words, itemsize: int) -> None:
        if itemsize == 8:
            self._write_words(lo, hi, values)
            return
        if self.buffer.faulty:
            self.buffer.before_write(lo, hi)
        dtype = np.uint8 if itemsize == 1 else np.uint16
        lanes = 8 // itemsize
        dst = self.words[lo:hi].view(dtype).reshape(-1, lanes)
        src = values.view(dtype).reshape(-1, lanes)
        for lane in range(lanes):
            dst[:, lane] = src[:, lane]  # a strided copy: one narrow store per word and lane
        if self.buffer.faulty:
            self.buffer.after_write(lo, hi)

    # -- copy and check --------------------------------------------------------------------

    def copy_and_check(self, *, seconds: float | None = None, rounds: int = 4) -> HostResult:
        """Copy pages between the buffer's halves, checking each source page as it goes.

        As stressapptest's copy threads do: pages hold known patterns; each round checks every
        page of one half against its pattern and copies it to the other half; the halves swap
        roles each round. Runs `rounds` rounds, or as many as fit in `seconds`. The figure to
        compare with stressapptest's is `copied_bytes_per_s` (bytes copied and checked).
        """
        result, rec = self._new_result("copy and check")
        outcome = TestOutcome("copy and check")
        result.tests.append(outcome)
        half = (len(self.words) // 2) // self.chunk_words * self.chunk_words
        if half == 0:
            raise ValueError("the buffer is too small for copy-and-check: two chunks at least")
        patterns = [_Repeat(w, ~w) for w in (CHECKER, ONES, 0x0F0F0F0F0F0F0F0F, 0x0123456789ABCDEF)]
        for p in patterns:
            p.prepare(self.chunk_words)
        chunk_patterns = {
            lo: patterns[(lo // self.chunk_words) % len(patterns)] for lo, _ in self._chunks(0, half)
        }
        regions = self._regions(half, self.threads)
        # Injected faults act on writes, so a faulty buffer takes the word-array path.
        fast = kernel.has_libc() and not self.buffer.faulty
        base = kernel.address_of(self.words)
        addresses = {lo: kernel.address_of(p.template) for lo, p in chunk_patterns.items()}
        scratch = np.empty(0, dtype=np.uint64)
        for region in regions:
            for lo, hi in region:
                self._write(lo, hi, chunk_patterns[lo], scratch)
        start = time.perf_counter()
        deadline = None if seconds is None else start + seconds
        done = 0
        while True:
            src, dst = (0, half) if done % 2 == 0 else (half, 0)

            def work(
                region: list[tuple[int, int]], src: int = src, dst: int = dst, step: str = f"round {done}"
            ) -> None:
                for lo, hi in region:
                    expected = chunk_patterns[lo].template[: hi - lo]
                    if fast:
                        # Copy, then check the copy while it is in the cache: the source is read
                        # from memory once, and what was read is what is checked.
                        if kernel.copy_equal_at(
                            base + (dst + lo) * 8, base + (src + lo) * 8, addresses[lo], (hi - lo) * 8
                        ):
                            continue
                        # Name the source's words when they read wrong; else the copy's.
                        if kernel.equal(self.words[src + lo : src + hi], expected):
                            self._check(rec, outcome, step, dst + lo, dst + hi, expected)
                        else:
                            self._check(rec, outcome, step, src + lo, src + hi, expected)
                        continue
                    self._check(rec, outcome, step, src + lo, src + hi, expected)
                    if self.buffer.faulty:
                        self.buffer.before_write(dst + lo, dst + hi)
                    kernel.copy(self.words[dst + lo : dst + hi], self.words[src + lo : src + hi])
                    if self.buffer.faulty:
                        self.buffer.after_write(dst + lo, dst + hi)

            self._parallel(regions, work)
            done += 1
            outcome.passes += 1
            if (deadline is None and done >= rounds) or (
                deadline is not None and time.perf_counter() >= deadline
            ):
                break
        result.duration_s = time.perf_counter() - start
        result.bytes_copied = done * half * 8
        result.bytes_read = done * half * 8
        result.bytes_written = done * half * 8
        # The last copies are checked too, outside the timed rounds.
        last = half if done % 2 else 0
        for lo, hi in self._chunks(0, half):
            self._check(rec, outcome, "final", last + lo, last + hi, chunk_patterns[lo].template[: hi - lo])
        rec.finish()
        return result
