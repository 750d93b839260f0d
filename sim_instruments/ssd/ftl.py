"""A scaled-down page-mapped FTL with greedy garbage collection, to measure write amplification.

The full-size drive cannot be simulated page by page, so its WAF comes from a small FTL with
the same spare factor ρ = spare / user and the workload's write mix (transfer sizes, random or
sequential, zoned access, the written region). One 4 KiB mapping unit is one page; a write
smaller than a unit costs a whole unit (read-modify-write). Greedy GC erases the full block with
the fewest valid pages and relocates them. The first pass fills the drive, a warm-up reaches
steady state, and the WAF is NAND pages over host bytes in the measured window.

Results are cached per (ρ, write mix, geometry): a qualification of a hundred drives measures
each workload kind once. The LBA trace comes from numpy's PCG64 seeded from a digest of the
key, so the figure is the same in every process and never touches a shared random stream.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MAPPING_UNIT_BYTES = 4096
_WARMUP_DRIVE_WRITES = 1.5
_MEASURE_DRIVE_WRITES = 2.0
_REGION_STEP = 0.05  # the written region is quantised so nearby regions share a measurement


@dataclass(frozen=True)
class WriteMix:
    """What kind of writes a workload issues, as far as write amplification cares."""

    sequential: bool = False
    bs_split: tuple[tuple[int, float], ...] = ((4096, 1.0),)
    zones: tuple[tuple[float, float], ...] = ()  # fio zoned: (access %, region %)
    region_fraction: float = 1.0

    def normalised(self) -> WriteMix:
        """Return the mix with its region quantised and its tuples canonical, for caching."""
        steps = max(1, round(self.region_fraction / _REGION_STEP))
        return WriteMix(
            sequential=self.sequential,
            bs_split=tuple((int(size), round(float(frac), 9)) for size, frac in self.bs_split),
            zones=tuple((round(float(a), 9), round(float(r), 9)) for a, r in self.zones),
            region_fraction=min(1.0, steps * _REGION_STEP),
        )


@dataclass(frozen=True)
class FtlMeasurement:
    """What the scaled-down FTL measured."""

    waf: float
    host_bytes: int
    nand_pages: int
    gc_runs: int


class ScaledFtl:
    """A page-mapped FTL over `blocks` × `pages_per_block` pages with greedy GC."""

    def __init__(self, blocks: int, pages_per_block: int, spare_factor: float) -> None:
        if spare_factor <= 0:
            raise ValueError("spare_factor must be positive")
        self.blocks = blocks
        self.ppb = pages_per_block
        physical = blocks * pages_per_block
        self.user_pages = int(physical / (1.0 + spare_factor))
        if self.user_pages >= physical - pages_per_block:
            raise ValueError(f"spare factor {spare_factor} leaves less than one spare block")
        self._l2p = [-1] * self.user_pages
        self._p2l = [-1] * physical
        self._valid = [0] * blocks
        # Full blocks by valid count, so the greedy victim is found without scanning.
        self._buckets: list[set[int]] = [set() for _ in range(pages_per_block + 1)]
        self._min_valid = 0
        self._free = deque(range(blocks))
        self._frontier = self._free.popleft()
        self._fill = 0
        self.nand_pages = 0
        self.gc_runs = 0

    def write(self, lpn: int) -> None:
        """Write one logical page: invalidate its old copy, program it at the frontier."""
        self.write_many([lpn])

    def write_many(self, lpns: list[int]) -> None:
        """Write logical pages in order (the hot loop, with the lookups bound to locals)."""
        l2p, p2l, valid, buckets, ppb = self._l2p, self._p2l, self._valid, self._buckets, self.ppb
        program = self._program
        for lpn in lpns:
            old = l2p[lpn]
            if old >= 0:
                p2l[old] = -1
                block = old // ppb
                count = valid[block]
                bucket = buckets[count]
                if block in bucket:
                    bucket.discard(block)
                    buckets[count - 1].add(block)
                    if count - 1 < self._min_valid:
                        self._min_valid = count - 1
                valid[block] = count - 1
            program(lpn)

    def _program(self, lpn: int) -> None:
        ppn = self._frontier * self.ppb + self._fill
        self._p2l[ppn] = lpn
        self._l2p[lpn] = ppn
        self._valid[self._frontier] += 1
        self._fill += 1
        self.nand_pages += 1
        if self._fill == self.ppb:
            self._buckets[self._valid[self._frontier]].add(self._frontier)
            self._open_block()

    def _open_block(self) -> None:
        # One erased block stays in reserve so relocation always has somewhere to go.
        if len(self._free) > 1:
            self._frontier = self._free.popleft()
            self._fill = 0
            return
        self.gc_runs += 1
        count = self._min_valid
        while not self._buckets[count]:
            count += 1
        self._min_valid = count
        victim = self._buckets[count].pop()
        self._frontier = self._free.popleft()
        self._fill = 0
        base = victim * self.ppb
        moved = [lpn for lpn in self._p2l[base : base + self.ppb] if lpn >= 0]
        self._p2l[base : base + self.ppb] = [-1] * self.ppb
        self._valid[victim] = 0
        self._free.append(victim)
        for lpn in moved:
            self._program(lpn)


def _trace_seed(*key: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(key).encode("utf-8"), digest_size=8).digest(), "little")


def _io_trace(
    mix: WriteMix, region_pages: int, count: int, rng: np.random.Generator
) -> tuple[list[int], list[int], int]:
    """Return (start pages, page counts, host bytes) of `count` writes drawn from the mix."""
    sizes = np.array([size for size, _ in mix.bs_split], dtype=np.int64)
    probs = np.array([frac for _, frac in mix.bs_split], dtype=float)
    picks = rng.choice(len(sizes), size=count, p=probs / probs.sum())
    io_bytes = sizes[picks]
    units = np.maximum(1, -(-io_bytes // MAPPING_UNIT_BYTES))
    if mix.sequential:
        starts = (np.cumsum(units) - units) % region_pages
    else:
        zones = mix.zones or ((100.0, 100.0),)
        access = np.array([a for a, _ in zones], dtype=float)
        edges = np.concatenate(([0.0], np.cumsum([r for _, r in zones]))) / 100.0 * region_pages
        lo = np.floor(edges[:-1]).astype(np.int64)
        hi = np.maximum(lo + 1, np.floor(edges[1:]).astype(np.int64))
        zone = rng.choice(len(zones), size=count, p=access / access.sum())
        span = np.maximum(1, hi[zone] - lo[zone] - units + 1)
        starts = lo[zone] + np.floor(rng.random(count) * span).astype(np.int64)
    return starts.tolist(), units.tolist(), int(io_bytes.sum())


@functools.lru_cache(maxsize=256)
def _measure(spare_factor: float, mix: WriteMix, blocks: int, pages_per_block: int) -> FtlMeasurement:
    ftl = ScaledFtl(blocks, pages_per_block, spare_factor)
    user = ftl.user_pages
    region = max(1, min(user, round(user * mix.region_fraction)))
    ftl.write_many(list(range(user)))
    rng = np.random.default_rng(_trace_seed("ftl", spare_factor, mix, blocks, pages_per_block))
    mean_units = sum(frac * max(1, math.ceil(size / MAPPING_UNIT_BYTES)) for size, frac in mix.bs_split)
    warm_ios = max(1, round(_WARMUP_DRIVE_WRITES * user / mean_units))
    measure_ios = max(1, round(_MEASURE_DRIVE_WRITES * user / mean_units))
    host_bytes = 0
    nand_start = 0
    for phase, count in (("warm", warm_ios), ("measure", measure_ios)):
        starts, units, phase_bytes = _io_trace(mix, region, count, rng)
        if phase == "measure":
            nand_start = ftl.nand_pages
            host_bytes = phase_bytes
        pages: list[int] = []
        for start, n in zip(starts, units, strict=True):
            pages.extend(
                range(start, start + n)
                if start + n <= region
                else [lpn % region for lpn in range(start, start + n)]
            )
        ftl.write_many(pages)
    nand_pages = ftl.nand_pages - nand_start
    return FtlMeasurement(
        waf=nand_pages * MAPPING_UNIT_BYTES / host_bytes,
        host_bytes=host_bytes,
        nand_pages=nand_pages,
        gc_runs=ftl.gc_runs,
    )


def measure_waf(
    spare_factor: float, mix: WriteMix, blocks: int = 256, pages_per_block: int = 128
) -> FtlMeasurement:
    """Return the steady-state WAF the scaled-down FTL measures for a spare factor and write mix."""
    return _measure(round(float(spare_factor), 6), mix.normalised(), blocks, pages_per_block)
