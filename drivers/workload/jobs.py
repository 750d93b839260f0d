"""fio job files from WorkloadSpecs, and the standard workloads as WorkloadSpecs.

The builders return WorkloadSpecs, not job text, so the simulated SSD runs exactly the same
workloads as fio does. `build_job_file` turns specs into a fio job file; `parse_job_file` reads
one back (tests, and a job file an engineer hands over).

Standard workloads (REFERENCE.md): JESD219 enterprise endurance, SNIA PTS-E preconditioning and
IOPS rounds, sequential preconditioning, and AI-server profiles (checkpoint bursts, dataset reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.workload.spec import Pattern, WorkloadSpec

KIB = 1024
MIB = 1024 * KIB

RANDOM_PATTERNS: frozenset[str] = frozenset({"randread", "randwrite", "randrw", "randtrim"})
MIXED_PATTERNS: frozenset[str] = frozenset({"rw", "randrw"})

# JESD219 enterprise workload: transfer-size mix as (bytes, fraction of I/Os).
JESD219_ENTERPRISE_BS_SPLIT: tuple[tuple[int, float], ...] = (
    (512, 0.04),
    (1024, 0.01),
    (1536, 0.01),
    (2048, 0.01),
    (2560, 0.01),
    (3072, 0.01),
    (3584, 0.01),
    (4096, 0.67),
    (8192, 0.10),
    (16384, 0.07),
    (32768, 0.03),
    (65536, 0.03),
)
# 50 % of accesses to the first 5 % of LBAs, 30 % to the next 15 %, 20 % to the remaining 80 %.
JESD219_ENTERPRISE_ZONES: tuple[tuple[float, float], ...] = ((50.0, 5.0), (30.0, 15.0), (20.0, 80.0))
JESD219_ALIGN_BYTES = 4096

# SNIA PTS-E: workload-independent preconditioning and the IOPS test matrix.
PTS_WIPC_BLOCK_BYTES = 128 * KIB
PTS_WIPC_CAPACITY_MULTIPLE = 2
PTS_ROUND_S = 60.0
PTS_MAX_ROUNDS = 25
PTS_IOPS_READ_PCTS: tuple[int, ...] = (100, 95, 65, 50, 35, 5, 0)
PTS_IOPS_BLOCK_BYTES: tuple[int, ...] = (
    1024 * KIB,
    128 * KIB,
    64 * KIB,
    32 * KIB,
    16 * KIB,
    8 * KIB,
    4 * KIB,
    512,
)
# The variable PTS-E tracks for steady state: 4 KiB random write (0/100) IOPS.
PTS_IOPS_TRACKED = (0, 4 * KIB)


@dataclass(frozen=True)
class JobFile:
    """A fio job file: global options, then one section per job, in order."""

    global_options: tuple[tuple[str, str], ...]
    jobs: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

    def render(self) -> str:
        """Return the job file text fio reads."""
        lines = ["[global]", *(_option_line(k, v) for k, v in self.global_options)]
        for name, options in self.jobs:
            lines += ["", f"[{name}]", *(_option_line(k, v) for k, v in options)]
        return "\n".join(lines) + "\n"

    def job(self, name: str) -> dict[str, str]:
        """Return one job's options merged over the global ones; raise KeyError if absent."""
        for job_name, options in self.jobs:
            if job_name == name:
                return {**dict(self.global_options), **dict(options)}
        raise KeyError(name)


def _option_line(key: str, value: str) -> str:
    return key if value == "" else f"{key}={value}"


def parse_job_file(text: str) -> JobFile:
    """Read a fio job file (sections, `key=value` and bare flags; `;` and `#` comments)."""
    global_options: list[tuple[str, str]] = []
    jobs: list[tuple[str, list[tuple[str, str]]]] = []
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if name == "global":
                current = global_options
            else:
                current = []
                jobs.append((name, current))
            continue
        if current is None:
            raise ValueError(f"line {number}: option {line!r} before any [section]")
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return JobFile(tuple(global_options), tuple((n, tuple(o)) for n, o in jobs))


def whole_percent(fraction: float, what: str) -> int:
    """Return `fraction` as a whole percentage; raise ValueError when it is not one.

    fio reads split percentages with atoi(): 66.5 would silently become 66, and 0 would mean
    "share the remainder", so both are refused here rather than run as something else.
    """
    pct = fraction * 100.0
    whole = round(pct)
    if abs(pct - whole) > 1e-6 or whole < 1:
        raise ValueError(f"{what}: fio takes whole percentages of at least 1 (got {pct:g} %)")
    return int(whole)


def bssplit_value(bs_split: Sequence[tuple[int, float]]) -> str:
    """Return fio's `bssplit=` value (`512/4:1024/1:...`) for a (bytes, fraction) mix."""
    return ":".join(
        f"{size}/{whole_percent(frac, f'bssplit {size} B')}" for size, frac in bs_split if frac > 0
    )


def zoned_value(zones: Sequence[tuple[float, float]]) -> str:
    """Return fio's `random_distribution=` value (`zoned:50/5:30/15:20/80`)."""
    parts = []
    for access, region in zones:
        a = whole_percent(access / 100.0, "zone access")
        r = whole_percent(region / 100.0, "zone region")
        parts.append(f"{a}/{r}")
    return "zoned:" + ":".join(parts)


def _duration(seconds: float) -> str:
    # fio takes integer times with a unit; milliseconds keep fractional seconds exact enough.
    return f"{max(1, round(seconds * 1000))}ms"


def spec_options(spec: WorkloadSpec) -> list[tuple[str, str]]:
    """Return one job section's options for `spec` (everything but the target and engine)."""
    opts: list[tuple[str, str]] = [("rw", spec.rw)]
    sizes = [size for size, frac in spec.bs_split if frac > 0]
    if len(sizes) == 1:
        opts.append(("bs", str(sizes[0])))
    else:
        opts.append(("bssplit", bssplit_value(spec.bs_split)))
    # fio aligns random I/O to the smallest transfer by default; ask for the spec's alignment
    # only when that default would not already meet it (JESD219's 512 B transfers).
    if spec.rw in RANDOM_PATTERNS and min(sizes) % spec.align_bytes:
        opts.append(("blockalign", str(spec.align_bytes)))
    if spec.offset_bytes:
        opts.append(("offset", str(spec.offset_bytes)))
    if spec.size_bytes is not None:
        opts.append(("size", str(spec.size_bytes)))
    if spec.io_bytes is not None:
        opts.append(("io_size", str(spec.io_bytes)))
    if spec.runtime_s is not None:
        opts.append(("runtime", _duration(spec.runtime_s)))
        if spec.io_bytes is None:
            opts.append(("time_based", "1"))
    opts += [("iodepth", str(spec.iodepth)), ("numjobs", str(spec.numjobs))]
    if spec.rw in MIXED_PATTERNS:
        opts.append(("rwmixread", str(spec.rwmixread_pct)))
    if spec.zones and spec.rw in RANDOM_PATTERNS:
        opts.append(("random_distribution", zoned_value(spec.zones)))
    opts += [("direct", "1" if spec.direct else "0"), ("randrepeat", "1"), ("randseed", str(spec.seed))]
    if spec.verify is not None:
        opts.append(("verify", spec.verify))
        # Report every bad block, not only the first: a bake's verdict needs the count.
        opts += [("verify_fatal", "0"), ("continue_on_error", "verify")]
        if spec.verify_only:
            opts.append(("verify_only", "1"))
        elif not spec.do_verify:
            opts.append(("do_verify", "0"))
        if spec.verify_backlog is not None:
            opts.append(("verify_backlog", str(spec.verify_backlog)))
        if spec.verify_state_save:
            opts.append(("verify_state_save", "1"))
        if spec.verify_state_load:
            opts.append(("verify_state_load", "1"))
    return opts


def job_name(spec: WorkloadSpec) -> str:
    """Return a section name fio accepts for `spec` (no brackets, spaces or `=`)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec.name)
    return cleaned or "job"


def build_job_file(
    specs: Iterable[WorkloadSpec],
    *,
    filename: str,
    ioengine: str,
    extra_global: Sequence[tuple[str, str]] = (),
) -> JobFile:
    """Return the job file that runs `specs` one after another against `filename`.

    Each job after the first waits for the previous one (`stonewall`), so a list of specs is a
    sequence of phases (precondition, then measure), never a mix of them.
    """
    global_options = (
        ("filename", filename),
        ("ioengine", ioengine),
        ("group_reporting", "1"),
        *extra_global,
    )
    jobs = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        name = job_name(spec)
        if name in seen:
            raise ValueError(f"two jobs are named {name!r}; fio's output could not tell them apart")
        seen.add(name)
        options = spec_options(spec)
        if index:
            options.append(("stonewall", ""))
        jobs.append((name, tuple(options)))
    if not jobs:
        raise ValueError("a job file needs at least one job")
    return JobFile(global_options, tuple(jobs))


def jesd219_enterprise(
    *,
    name: str = "jesd219-enterprise",
    rw: Pattern = "randwrite",
    size_bytes: int | None = None,
    offset_bytes: int = 0,
    runtime_s: float | None = None,
    io_bytes: int | None = None,
    iodepth: int = 32,
    numjobs: int = 1,
    rwmixread_pct: int = 50,
    seed: int = 0,
) -> WorkloadSpec:
    """Return the JESD219 enterprise endurance workload: its transfer mix, 4K alignment, zones.

    Endurance counts host writes, so the default is random writes; `rw="randrw"` with
    `rwmixread_pct` adds reads at the same mix. Give `runtime_s` or `io_bytes` (TBW steps).
    """
    if runtime_s is None and io_bytes is None:
        raise ValueError(f"{name}: give runtime_s or io_bytes")
    if rw not in RANDOM_PATTERNS:
        raise ValueError(f"{name}: the JESD219 workload is random; got rw={rw!r}")
    return WorkloadSpec(
        name=name,
        rw=rw,
        bs_split=JESD219_ENTERPRISE_BS_SPLIT,
        offset_bytes=offset_bytes,
        size_bytes=size_bytes,
        io_bytes=io_bytes,
        runtime_s=runtime_s,
        iodepth=iodepth,
        numjobs=numjobs,
        rwmixread_pct=rwmixread_pct,
        zones=JESD219_ENTERPRISE_ZONES,
        align_bytes=JESD219_ALIGN_BYTES,
        seed=seed,
    )


def sequential_precondition(
    size_bytes: int,
    *,
    name: str = "seq-precondition",
    passes: int = 1,
    block_bytes: int = 128 * KIB,
    offset_bytes: int = 0,
    iodepth: int = 32,
    seed: int = 0,
) -> WorkloadSpec:
    """Return a sequential fill of `size_bytes`, `passes` times over, in `block_bytes` writes."""
    if passes < 1:
        raise ValueError(f"{name}: passes must be at least 1")
    return WorkloadSpec(
        name=name,
        rw="write",
        bs_split=((block_bytes, 1.0),),
        offset_bytes=offset_bytes,
        size_bytes=size_bytes,
        io_bytes=passes * size_bytes,
        iodepth=iodepth,
        seed=seed,
    )


def pts_preconditioning(
    capacity_bytes: int, *, name: str = "pts-wipc", iodepth: int = 32, seed: int = 0
) -> WorkloadSpec:
    """Return SNIA PTS-E workload-independent preconditioning: 2 × capacity of 128 KiB sequential writes.

    The purge before it (format or sanitize) is a device operation, not a workload.
    """
    return sequential_precondition(
        capacity_bytes,
        name=name,
        passes=PTS_WIPC_CAPACITY_MULTIPLE,
        block_bytes=PTS_WIPC_BLOCK_BYTES,
        iodepth=iodepth,
        seed=seed,
    )


def pts_iops_round(
    round_number: int,
    *,
    size_bytes: int | None = None,
    runtime_s: float = PTS_ROUND_S,
    iodepth: int = 32,
    numjobs: int = 4,
    seed: int = 0,
) -> list[WorkloadSpec]:
    """Return one SNIA PTS-E IOPS round: every R/W mix × block size, random, `runtime_s` each.

    Rounds are numbered from 1 to PTS_MAX_ROUNDS; the caller stops at steady state of the
    tracked variable (PTS_IOPS_TRACKED: 4 KiB random write IOPS).
    """
    if not 1 <= round_number <= PTS_MAX_ROUNDS:
        raise ValueError(f"PTS rounds run from 1 to {PTS_MAX_ROUNDS} (got {round_number})")
    specs = []
    for read_pct in PTS_IOPS_READ_PCTS:
        rw: Pattern = "randread" if read_pct == 100 else "randwrite" if read_pct == 0 else "randrw"
        for block in PTS_IOPS_BLOCK_BYTES:
            specs.append(
                WorkloadSpec(
                    name=pts_iops_job_name(round_number, read_pct, block),
                    rw=rw,
                    bs_split=((block, 1.0),),
                    size_bytes=size_bytes,
                    runtime_s=runtime_s,
                    iodepth=iodepth,
                    numjobs=numjobs,
                    rwmixread_pct=read_pct,
                    align_bytes=min(block, 4096),
                    seed=seed + round_number,
                )
            )
    return specs


def pts_iops_job_name(round_number: int, read_pct: int, block_bytes: int) -> str:
    """Return the job name of one PTS IOPS cell (`pts-iops-r01-65_35-4096`)."""
    return f"pts-iops-r{round_number:02d}-{read_pct}_{100 - read_pct}-{block_bytes}"


def ai_checkpoint_burst(
    checkpoint_bytes: int,
    *,
    name: str = "ai-checkpoint",
    offset_bytes: int = 0,
    block_bytes: int = 1 * MIB,
    iodepth: int = 32,
    numjobs: int = 1,
    verify: bool = False,
    seed: int = 0,
) -> WorkloadSpec:
    """Return a training checkpoint burst: `checkpoint_bytes` of large sequential writes.

    AI servers dump model and optimizer state in bursts of 1–4 MiB writes at deep queues; with
    `verify` the burst carries crc32c headers for a later read-back (restore) check.
    """
    if not 1 * MIB <= block_bytes <= 4 * MIB:
        raise ValueError(f"{name}: checkpoint writes are 1 to 4 MiB (got {block_bytes} B)")
    return WorkloadSpec(
        name=name,
        rw="write",
        bs_split=((block_bytes, 1.0),),
        offset_bytes=offset_bytes,
        size_bytes=checkpoint_bytes,
        io_bytes=checkpoint_bytes,
        iodepth=iodepth,
        numjobs=numjobs,
        verify="crc32c" if verify else None,
        do_verify=False,
        seed=seed,
    )


def ai_dataset_read(
    *,
    name: str = "ai-dataset-read",
    size_bytes: int | None = None,
    offset_bytes: int = 0,
    runtime_s: float = 60.0,
    block_bytes: int = 128 * KIB,
    iodepth: int = 64,
    numjobs: int = 4,
    seed: int = 0,
) -> WorkloadSpec:
    """Return random dataset reads as data loaders issue them: 128 KiB at a deep queue."""
    return WorkloadSpec(
        name=name,
        rw="randread",
        bs_split=((block_bytes, 1.0),),
        offset_bytes=offset_bytes,
        size_bytes=size_bytes,
        runtime_s=runtime_s,
        iodepth=iodepth,
        numjobs=numjobs,
        align_bytes=min(block_bytes, 4096),
        seed=seed,
    )
