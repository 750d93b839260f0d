"""SSD actions: workloads (fio or the simulated drive), format, LBA-stamped integrity, health."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from drivers.errors import DeviceCommandError
from drivers.integrity.pattern import generate, verify
from drivers.nvme.commands import SecureErase
from drivers.protocols import BlockWorkload, NvmeController, NvmeMedia
from drivers.workload.params import VERIFY_CLASSES, spec_from_params
from qualify.actions.base import (
    Action,
    ActionContext,
    ActionResult,
    MeasurementSpec,
    NoParams,
    Reading,
    StrictParams,
    need,
)
from qualify.actions.registry import register
from qualify.station.binding import BoundDut

SSD = frozenset({"ssd"})
NSID = 1
DATA_UNIT_BYTES = 512_000  # SMART data units: 1000 × 512 bytes


def _media(dut: BoundDut) -> NvmeMedia:
    return need(dut, NvmeMedia, "NVMe media access")  # type: ignore[type-abstract]


def _runner(dut: BoundDut) -> BlockWorkload:
    return need(dut, BlockWorkload, "workload runner (station: duts[].block_device)")  # type: ignore[type-abstract]


class WorkloadParams(StrictParams):
    """A workload job: WorkloadSpec fields, or `profile:` with that builder's arguments."""

    job: dict[str, Any]

    @field_validator("job")
    @classmethod
    def _valid_job(cls, job: dict[str, Any]) -> dict[str, Any]:
        spec_from_params(job)  # raises ValueError naming the bad key, at plan-check time
        return job


def _workload(ctx: ActionContext, params: WorkloadParams) -> ActionResult:
    dut = ctx.require_dut()
    runner = _runner(dut)
    flat = runner.run_workload(dict(params.job))
    readings = [Reading(name, float(value)) for name, value in sorted(flat.items())]
    readings.append(Reading("read_bits", float(flat.get("read_io_bytes", 0.0)) * 8))
    return ActionResult(readings, duration_s=float(flat.get("runtime_s", 0.0)))


class FormatParams(StrictParams):
    """Format NVM: secure erase setting and, optionally, the LBA format index."""

    secure_erase: str = Field(default="user_data", pattern="^(none|user_data|cryptographic)$")
    lbaf: int | None = Field(default=None, ge=0, le=63)


def _format(ctx: ActionContext, params: FormatParams) -> ActionResult:
    media = _media(ctx.require_dut())
    ses = SecureErase[params.secure_erase.upper()]
    ns = media.format_nvm(NSID, params.lbaf, ses)
    return ActionResult(
        [
            Reading("block_bytes", float(ns.block_size_bytes), unit="B"),
            Reading("size_bytes", float(ns.size_bytes)),
        ],
        duration_s=60.0,
    )


class IntegrityParams(StrictParams):
    """Sampled LBA-stamped blocks across the namespace: how many, which write generation, seed."""

    blocks: int = Field(default=256, ge=1, le=1_000_000)
    generation: int = Field(default=1, ge=0)
    seed: int = Field(default=0x51F1, ge=0)
    span_pct: float = Field(default=100.0, gt=0, le=100)  # sample within the first part of the drive


def _sampled_lbas(media: NvmeMedia, blocks: int, span_pct: float = 100.0) -> tuple[list[int], int]:
    ns = media.identify_namespace(NSID)
    total = int(ns.size_bytes // ns.block_size_bytes * span_pct / 100.0)
    stride = max(1, total // blocks)
    return [i * stride for i in range(min(blocks, total))], int(ns.block_size_bytes)


def _integrity_write(ctx: ActionContext, params: IntegrityParams) -> ActionResult:
    media = _media(ctx.require_dut())
    lbas, block_bytes = _sampled_lbas(media, params.blocks, params.span_pct)
    seed = params.seed ^ ctx.seed
    for lba in lbas:
        media.write(NSID, lba, generate(lba, 1, params.generation, seed, block_bytes))
    return ActionResult(
        [Reading("blocks_written", float(len(lbas))), Reading("write_bytes", float(len(lbas) * block_bytes))],
        duration_s=len(lbas) * 1e-4,
    )


def _integrity_verify(ctx: ActionContext, params: IntegrityParams) -> ActionResult:
    media = _media(ctx.require_dut())
    lbas, block_bytes = _sampled_lbas(media, params.blocks, params.span_pct)
    seed = params.seed ^ ctx.seed
    counts = dict.fromkeys(VERIFY_CLASSES, 0)
    bit_errors = unreadable = 0
    first: list[str] = []
    for lba in lbas:
        try:
            data = media.read(NSID, lba, 1)
        except DeviceCommandError as exc:  # an unrecovered read: the block counts once, as lost
            unreadable += 1
            bit_errors += block_bytes * 8
            if len(first) < 5:
                first.append(f"LBA {lba}: {exc.message}")
            continue
        for finding in verify(data, lba, params.generation, seed, block_bytes):
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
            bit_errors += finding.bit_errors if finding.bit_errors is not None else block_bytes * 8
            if len(first) < 5:
                first.append(f"LBA {finding.lba}: {finding.kind}")
    readings = [
        Reading("blocks_checked", float(len(lbas))),
        Reading("bad_blocks", float(sum(counts.values()) + unreadable)),
        Reading("unreadable", float(unreadable)),
        Reading("bit_errors", float(bit_errors)),
        Reading("read_bits", float(len(lbas) * block_bytes * 8)),
        *(Reading(kind, float(n)) for kind, n in counts.items()),
    ]
    if first:
        readings.append(Reading("first_findings", text="; ".join(first)))
    return ActionResult(readings, duration_s=len(lbas) * 1e-4)


def _health(ctx: ActionContext, params: NoParams) -> ActionResult:
    dut = ctx.require_dut()
    media = _media(dut)
    ocp = media.ocp_smart_extended_log()
    smart = need(dut, NvmeController, "NVMe controller").smart_log()  # type: ignore[type-abstract]
    host_bytes = smart.data_units_written * DATA_UNIT_BYTES
    readings = [
        Reading("nand_bytes_written", float(ocp.physical_media_units_written), unit="B"),
        Reading("host_bytes_written", float(host_bytes), unit="B"),
        Reading("bad_user_blocks", float(ocp.bad_user_nand_blocks_raw)),
        Reading("uncorrectable_errors", float(ocp.uncorrectable_read_error_count)),
        Reading("media_errors", float(smart.media_errors)),
        Reading("percentage_used", float(smart.percentage_used_pct), unit="%"),
        Reading("available_spare_pct", float(smart.available_spare_pct), unit="%"),
        Reading("critical_warning", float(smart.critical_warning)),
        Reading("throttle_events", float(ocp.thermal_throttling_event_count)),
        Reading("pe_cycles", float(ocp.max_user_data_erase_count)),
        Reading("corrected_errors", float(ocp.soft_ecc_error_count)),
    ]
    if host_bytes > 0:
        readings.append(Reading("waf", ocp.physical_media_units_written / host_bytes))
    return ActionResult(readings, duration_s=1.0)


_WORKLOAD_READINGS = (
    *tuple(
        MeasurementSpec(f"{d}_{m}", unit, f"Measure {d} {m.replace('_', ' ')}")
        for d in ("read", "write", "trim")
        for m, unit in (
            ("iops", None),
            ("bw_bytes_s", "B/s"),
            ("io_bytes", "B"),
            ("lat_p50_us", "us"),
            ("lat_p99_us", "us"),
            ("lat_p999_us", "us"),
            ("lat_max_us", "us"),
        )
    ),
    MeasurementSpec("runtime_s", "s", "Get the job's device time"),
    MeasurementSpec("errors", None, "Count I/O errors (unrecovered reads count once per block)"),
    MeasurementSpec("verify_failures", None, "Count verify failures"),
    *(MeasurementSpec(f"verify_{k}", None, f"Count {k} blocks found by verify") for k in VERIFY_CLASSES),
    MeasurementSpec("read_bits", None, "Compute bits read"),
)

for _action in (
    Action(
        "workload.run",
        "dut",
        SSD,
        WorkloadParams,
        _WORKLOAD_READINGS,
        _workload,
        "Run a workload job (JESD219, PTS, AI profiles or explicit fio fields) on each SSD.",
        idempotent=False,
    ),
    Action(
        "nvme.format",
        "dut",
        SSD,
        FormatParams,
        (
            MeasurementSpec("block_bytes", "B", "Read the LBA size after format"),
            MeasurementSpec("size_bytes", None, "Read the namespace size"),
        ),
        _format,
        "Format the namespace (Format NVM), with secure erase by default (a purge).",
        idempotent=False,
    ),
    Action(
        "integrity.write",
        "dut",
        SSD,
        IntegrityParams,
        (
            MeasurementSpec("blocks_written", None, "Count blocks written"),
            MeasurementSpec("write_bytes", "B", "Count bytes written"),
        ),
        _integrity_write,
        "Write LBA-stamped, seeded pattern blocks sampled across the namespace.",
        idempotent=False,
    ),
    Action(
        "integrity.verify",
        "dut",
        SSD,
        IntegrityParams,
        (
            MeasurementSpec("blocks_checked", None, "Count blocks read back"),
            MeasurementSpec("bad_blocks", None, "Count blocks that did not read back as written"),
            MeasurementSpec("unreadable", None, "Count blocks the drive could not read"),
            MeasurementSpec("bit_errors", None, "Count differing bits (an unreadable block counts whole)"),
            MeasurementSpec("read_bits", None, "Count bits read back"),
            *(MeasurementSpec(k, None, f"Count {k} blocks") for k in VERIFY_CLASSES),
            MeasurementSpec("first_findings", None, "List the first findings"),
        ),
        _integrity_verify,
        "Read the sampled blocks back and classify every difference, regenerated from the seed.",
    ),
    Action(
        "nvme.health",
        "dut",
        SSD,
        NoParams,
        (
            MeasurementSpec("nand_bytes_written", "B", "Read physical media bytes written (OCP C0h)"),
            MeasurementSpec("host_bytes_written", "B", "Read host bytes written (SMART)"),
            MeasurementSpec("waf", None, "Compute write amplification: NAND / host bytes"),
            MeasurementSpec("bad_user_blocks", None, "Read bad user NAND blocks"),
            MeasurementSpec("uncorrectable_errors", None, "Read uncorrectable read errors (OCP)"),
            MeasurementSpec("media_errors", None, "Read media and data integrity errors"),
            MeasurementSpec("percentage_used", "%", "Read the endurance used estimate"),
            MeasurementSpec("available_spare_pct", "%", "Read available spare"),
            MeasurementSpec("critical_warning", None, "Read critical warning bits"),
            MeasurementSpec("throttle_events", None, "Read thermal throttling events"),
            MeasurementSpec("pe_cycles", None, "Read the most-erased user block's erase count (OCP)"),
            MeasurementSpec("corrected_errors", None, "Read soft-decoded (corrected) ECC errors (OCP)"),
        ),
        _health,
        "Read SMART and the OCP extended log: wear, WAF, errors, spare, throttling.",
    ),
):
    register(_action)


class PtsRoundParams(StrictParams):
    """One SNIA PTS-E IOPS round: every R/W mix × block size, one minute each."""

    round_s: float = Field(default=60.0, gt=0)
    iodepth: int = Field(default=32, ge=1)
    numjobs: int = Field(default=4, ge=1)


def _pts_round(ctx: ActionContext, params: PtsRoundParams) -> ActionResult:
    from drivers.workload.jobs import PTS_IOPS_TRACKED, PTS_MAX_ROUNDS, pts_iops_round

    dut = ctx.require_dut()
    runner = _runner(dut)
    round_number = min(len(ctx.history("iops_round", "tracked_iops")) + 1, PTS_MAX_ROUNDS)
    readings, total_s, tracked = [], 0.0, 0.0
    specs = pts_iops_round(
        round_number, runtime_s=params.round_s, iodepth=params.iodepth, numjobs=params.numjobs
    )
    for spec in specs:
        result = runner.run(spec)
        iops = result.read.iops + result.write.iops
        total_s += result.runtime_s
        block = spec.bs_split[0][0]
        readings.append(Reading(f"iops@{spec.rwmixread_pct}/{100 - spec.rwmixread_pct}:{block}", iops))
        if (spec.rwmixread_pct, block) == PTS_IOPS_TRACKED:
            tracked = iops
    readings.append(Reading("tracked_iops", tracked))
    readings.append(Reading("round", float(round_number)))
    return ActionResult(readings, duration_s=total_s)


class SteadyStateParams(StrictParams):
    """SNIA PTS steady state over the last `window` rounds of one step's measurement."""

    step: str
    measurement: str
    window: int = Field(default=5, ge=2)
    excursion: float = Field(default=0.20, gt=0)
    slope_excursion: float = Field(default=0.10, gt=0)


def _steady_state(ctx: ActionContext, params: SteadyStateParams) -> ActionResult:
    from qualify.stats import steady_state

    values = ctx.history(params.step, params.measurement)
    readings = [Reading("rounds", float(len(values)))]
    if len(values) < params.window:
        readings.append(Reading("steady", 0.0))
        return ActionResult(readings, duration_s=0.0)
    window = values[-params.window :]
    result = steady_state(window, params.window, params.excursion, params.slope_excursion)
    avg = result.window_average
    readings += [
        Reading("steady", 1.0 if result.reached else 0.0),
        Reading("window_average", avg),
        Reading("range_pct", 100.0 * result.max_min_range / avg if avg else 0.0, unit="%"),
        Reading("slope_excursion_pct", 100.0 * result.slope_excursion / avg if avg else 0.0, unit="%"),
    ]
    return ActionResult(readings, duration_s=0.0)


for _action in (
    Action(
        "pts.iops_round",
        "dut",
        SSD,
        PtsRoundParams,
        (
            MeasurementSpec(
                "tracked_iops", None, "Measure 4 KiB random write IOPS, PTS-E's tracked variable"
            ),
            MeasurementSpec("round", None, "Count this round"),
        ),
        _pts_round,
        "Run one SNIA PTS-E IOPS round: 7 R/W mixes × 8 block sizes, a minute each.",
        idempotent=False,
    ),
    Action(
        "pts.steady_state",
        "dut",
        SSD,
        SteadyStateParams,
        (
            MeasurementSpec("steady", None, "Check SNIA steady state over the window (1 reached)"),
            MeasurementSpec("rounds", None, "Count rounds so far"),
            MeasurementSpec("window_average", None, "Average the window"),
            MeasurementSpec("range_pct", "%", "Compute max − min over the window average"),
            MeasurementSpec(
                "slope_excursion_pct", "%", "Compute the fitted line's excursion over the average"
            ),
        ),
        _steady_state,
        "Check SNIA PTS steady state of a step's measurement over its last rounds on each DUT.",
    ),
):
    register(_action)
