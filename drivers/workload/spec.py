"""The workload contract shared by the fio driver and the simulated SSD.

A WorkloadSpec says what to run in fio's terms (so it maps one to one onto a job file), and a
WorkloadResult carries what fio's JSON output reports. The simulator implements the same
interface by driving its device model, so a plan cannot tell which one ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Pattern = Literal["read", "write", "randread", "randwrite", "rw", "randrw", "trim", "randtrim"]


@dataclass(frozen=True)
class WorkloadSpec:
    """One job: pattern, transfer-size mix, region, amount or time, queue depth, verify."""

    name: str
    rw: Pattern
    bs_split: tuple[tuple[int, float], ...] = ((4096, 1.0),)  # (block bytes, fraction)
    offset_bytes: int = 0
    size_bytes: int | None = None  # region; None means the whole device
    io_bytes: int | None = None  # total to transfer; None with runtime_s means time-based
    runtime_s: float | None = None
    iodepth: int = 1
    numjobs: int = 1
    rwmixread_pct: int = 50
    # fio random_distribution=zoned: (percent of accesses, percent of the region) pairs
    zones: tuple[tuple[float, float], ...] = ()
    align_bytes: int = 4096
    verify: Literal["crc32c", "md5", "sha256"] | None = None
    verify_only: bool = False
    direct: bool = True
    seed: int = 0
    # Verify details (fio's own names); a plain `verify` writes headers and checks them after.
    do_verify: bool = True  # False: write the headers only, for a later verify_only pass
    verify_backlog: int | None = None  # verify every N written blocks instead of all at the end
    verify_state_save: bool = False  # record what was written, to survive a power loss
    verify_state_load: bool = False  # verify only what a saved state says was written

    def __post_init__(self) -> None:
        total = sum(frac for _, frac in self.bs_split)
        if not self.bs_split or abs(total - 1.0) > 1e-6:
            raise ValueError(f"{self.name}: bs_split fractions must sum to 1 (got {total:g})")
        if any(size <= 0 or size % 512 for size, _ in self.bs_split):
            raise ValueError(f"{self.name}: block sizes must be positive multiples of 512 bytes")
        if self.zones and abs(sum(a for a, _ in self.zones) - 100.0) > 1e-6:
            raise ValueError(f"{self.name}: zone access percentages must sum to 100")
        if self.zones and abs(sum(r for _, r in self.zones) - 100.0) > 1e-6:
            raise ValueError(f"{self.name}: zone region percentages must sum to 100")
        if self.io_bytes is None and self.runtime_s is None and self.size_bytes is None:
            raise ValueError(f"{self.name}: give io_bytes, runtime_s or size_bytes")
        if self.iodepth < 1 or self.numjobs < 1:
            raise ValueError(f"{self.name}: iodepth and numjobs must be at least 1")
        if not 0 <= self.rwmixread_pct <= 100:
            raise ValueError(f"{self.name}: rwmixread_pct must be 0 to 100")


@dataclass
class DirectionResult:
    """One direction (read or write) of a job's result, in fio's units made explicit."""

    iops: float = 0.0
    bw_bytes_s: float = 0.0
    io_bytes: int = 0
    lat_p50_us: float | None = None
    lat_p99_us: float | None = None
    lat_p999_us: float | None = None
    lat_max_us: float | None = None


@dataclass
class WorkloadResult:
    """What a job did: per-direction figures, run time, errors and verify findings."""

    name: str
    read: DirectionResult = field(default_factory=DirectionResult)
    write: DirectionResult = field(default_factory=DirectionResult)
    trim: DirectionResult = field(default_factory=DirectionResult)
    runtime_s: float = 0.0
    errors: int = 0
    error_text: str | None = None
    verify_failures: list[tuple[int, str]] = field(default_factory=list)  # (byte offset, class)
