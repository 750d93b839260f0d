"""DIMM actions: SPD conformance, hub temperature, PMIC rails, March and pattern tests on a
slot tester, retention profiles at extended refresh, and VDD margin shmoos."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import Field

from drivers.dimm.spd import decode_spd
from drivers.protocols import MemoryTester, Pmic, SpdHub
from qualify.actions.base import (
    Action,
    ActionContext,
    ActionResult,
    CapabilityMissing,
    MeasurementSpec,
    NoParams,
    Reading,
    StrictParams,
    need,
)
from qualify.actions.registry import register
from qualify.march import algorithm as march_algorithm
from qualify.station.binding import BoundDut

DIMM = frozenset({"dimm"})


def _hub(dut: BoundDut) -> SpdHub:
    return need(dut, SpdHub, "SPD hub")  # type: ignore[type-abstract]


def _pmic(dut: BoundDut) -> Pmic:
    return need(dut, Pmic, "PMIC in the station file (duts[].devices)")  # type: ignore[type-abstract]


@contextmanager
def _tester(dut: BoundDut) -> Iterator[tuple[Any, int]]:
    """Hold the DUT's tester for a whole exchange: other DIMMs share it slot by slot."""
    if dut.tester is None or dut.tester_slot is None:
        raise CapabilityMissing(f"{dut.label} has no tester slot in the station file (duts[].tester)")
    driver = dut.tester.require()
    if not isinstance(driver, MemoryTester):
        raise CapabilityMissing(f"{dut.tester.name} is not a memory tester")
    with dut.tester.lock:
        yield driver, dut.tester_slot


class MarchParams(StrictParams):
    """Which March algorithm, at which refresh interval, pause and VDD margin."""

    algorithm: str
    refresh_ms: float = Field(default=32.0, gt=0)
    delay_ms: float = Field(default=0.0, ge=0)
    vdd_margin_pct: float = Field(default=0.0, ge=-10, le=10)
    tcr: bool = True

    def model_post_init(self, context: Any) -> None:
        """Check the algorithm is one qualify.march defines."""
        march_algorithm(self.algorithm)


class PatternParams(StrictParams):
    """A data-pattern or RowHammer test: pattern, hold, refresh, hammer sides and count."""

    pattern: str
    refresh_ms: float = Field(default=32.0, gt=0)
    hold_ms: float = Field(default=0.0, ge=0)
    tcr: bool = True
    hammer_sides: int | None = Field(default=None, ge=1, le=64)
    hammer_count: int | None = Field(default=None, ge=1)


class RetentionParams(StrictParams):
    """A REAPER-style profile: data patterns held at each extended refresh interval, TCR off."""

    refresh_ms: list[float] = Field(min_length=1)
    target_ms: float = Field(default=32.0, gt=0)  # DDR5 tREFW
    guard_ms: float = Field(default=64.0, gt=0)  # profile past the target, as REAPER does
    patterns: list[str] = Field(default_factory=lambda: ["CHECKER", "CHECKER_INV"])
    hold_ms: float = Field(default=1000.0, gt=0)


class ShmooParams(StrictParams):
    """A VDD margin sweep with one March algorithm at one refresh interval."""

    vdd_margin_pct: list[float] = Field(min_length=1)
    algorithm: str = "March C-"
    refresh_ms: float = Field(default=32.0, gt=0)


def _spd_read(ctx: ActionContext, params: NoParams) -> ActionResult:
    spd = decode_spd(_hub(ctx.require_dut()).read_spd())
    return ActionResult(
        readings=[
            Reading("crc_valid", 1.0 if spd.crc_valid else 0.0),
            Reading("dram_type", float(spd.dram_type)),
            Reading("module_type", text=spd.module_type.name),
            Reading("speed_grade", text=spd.speed_grade),
            Reading("capacity_gib", spd.capacity_gib, unit="GiB"),
            Reading("organisation", text=spd.organisation),
            Reading("part_number", text=spd.part_number),
            Reading("serial", text=spd.serial_number),
            Reading("manufacturer", text=spd.module_manufacturer.name),
            Reading("vdd_v", spd.vdd_v, unit="V"),
            Reading("ecc_bits", float(spd.ecc_bus_width_bits)),
        ],
        duration_s=1.0,
    )


def _dimm_temperature(ctx: ActionContext, params: NoParams) -> ActionResult:
    return ActionResult([Reading("temp_c", _hub(ctx.require_dut()).read_temperature(), unit="°C")], 0.1)


def _pmic_rails(ctx: ActionContext, params: NoParams) -> ActionResult:
    pmic = _pmic(ctx.require_dut())
    readings = [Reading("vin_v", pmic.read_input_voltage(), unit="V")]
    for rail, (volts, amps) in sorted(pmic.read_rails().items()):
        readings += [
            Reading(f"{rail.lower()}_v", volts, unit="V"),
            Reading(f"{rail.lower()}_a", amps, unit="A"),
        ]
    return ActionResult(readings, 0.1)


def _march(ctx: ActionContext, params: MarchParams) -> ActionResult:
    with _tester(ctx.require_dut()) as (tester, slot):
        result = tester.run(
            slot,
            algorithm=params.algorithm,
            refresh_ms=params.refresh_ms,
            delay_ms=params.delay_ms,
            vdd_margin_pct=params.vdd_margin_pct,
            tcr=params.tcr,
        )
    return _memory_result(result)


def _pattern(ctx: ActionContext, params: PatternParams) -> ActionResult:
    with _tester(ctx.require_dut()) as (tester, slot):
        result = tester.run(slot, **params.model_dump(exclude_none=True))
    return _memory_result(result)


def _memory_result(result: Any) -> ActionResult:
    first = ", ".join(f"0x{a:X}" for a in result.failing_addresses[:8])
    readings = [
        Reading("failing_words", float(result.error_count)),
        Reading("failing_bits", float(result.error_bits)),
        Reading("run_s", result.duration_s, unit="s"),
    ]
    if first:
        readings.append(Reading("first_failing_addresses", text=first))
    return ActionResult(readings, duration_s=result.duration_s)


def _retention(ctx: ActionContext, params: RetentionParams) -> ActionResult:
    readings, total_s, at_target, at_guard, worst = [], 0.0, 0, 0, 0
    with _tester(ctx.require_dut()) as (tester, slot):
        for refresh_ms in sorted(params.refresh_ms):
            words: set[int] = set()
            for pattern in params.patterns:
                result = tester.run(
                    slot, pattern=pattern, refresh_ms=refresh_ms, hold_ms=params.hold_ms, tcr=False
                )
                words |= set(result.failing_addresses)
                total_s += result.duration_s
            readings.append(Reading(f"weak_cells@{refresh_ms:g}ms", float(len(words))))
            worst = max(worst, len(words))
            if refresh_ms <= params.target_ms:
                at_target = max(at_target, len(words))
            if refresh_ms <= params.guard_ms:
                at_guard = max(at_guard, len(words))
    readings += [
        Reading("weak_cells", float(at_target)),
        Reading("weak_cells_guard", float(at_guard)),
        Reading("weak_cells_max", float(worst)),
    ]
    return ActionResult(readings, duration_s=total_s)


def _shmoo(ctx: ActionContext, params: ShmooParams) -> ActionResult:
    readings, total_s = [], 0.0
    passing: list[float] = []
    with _tester(ctx.require_dut()) as (tester, slot):
        for pct in sorted(params.vdd_margin_pct):
            result = tester.run(
                slot, algorithm=params.algorithm, refresh_ms=params.refresh_ms, vdd_margin_pct=pct
            )
            total_s += result.duration_s
            readings.append(Reading(f"fails@vdd{pct:+g}%", float(result.error_count)))
            if result.error_count == 0:
                passing.append(pct)
        tester.configure(slot, vdd_margin_pct=0.0)
    readings.append(Reading("passing_points", float(len(passing))))
    if passing:
        readings.append(Reading("vmin_margin_pct", min(passing), unit="%"))
    return ActionResult(readings, duration_s=total_s)


_MEMORY_READINGS = (
    MeasurementSpec("failing_words", None, "Count the words that failed"),
    MeasurementSpec("failing_bits", None, "Count the bits that failed"),
    MeasurementSpec("run_s", "s", "Get the device time the test took"),
    MeasurementSpec("first_failing_addresses", None, "List the first failing word addresses"),
)

for _action in (
    Action(
        "spd.read",
        "dut",
        DIMM,
        NoParams,
        (
            MeasurementSpec("crc_valid", None, "Check the SPD CRC (1 valid)"),
            MeasurementSpec("dram_type", None, "Read the DRAM type byte (0x12 DDR5)"),
            MeasurementSpec("module_type", None, "Read the module type (RDIMM, ...)"),
            MeasurementSpec("speed_grade", None, "Read the JEDEC speed grade"),
            MeasurementSpec("capacity_gib", "GiB", "Compute the module capacity"),
            MeasurementSpec("organisation", None, "Read ranks and width (e.g. 1Rx8)"),
            MeasurementSpec("part_number", None, "Read the part number"),
            MeasurementSpec("serial", None, "Read the JEDEC serial"),
            MeasurementSpec("manufacturer", None, "Read the module manufacturer (JEP-106)"),
            MeasurementSpec("vdd_v", "V", "Read the nominal VDD"),
            MeasurementSpec("ecc_bits", None, "Read the ECC bus width"),
        ),
        _spd_read,
        "Read and decode the SPD through the hub (JESD400-5 fields, CRC).",
    ),
    Action(
        "dimm.temperature",
        "dut",
        DIMM,
        NoParams,
        (MeasurementSpec("temp_c", "°C", "Measure the SPD hub's temperature sensor"),),
        _dimm_temperature,
        "Read the module temperature from the SPD5118 hub sensor.",
    ),
    Action(
        "pmic.rails",
        "dut",
        DIMM,
        NoParams,
        (
            MeasurementSpec("vin_v", "V", "Measure the PMIC bulk input"),
            MeasurementSpec("vdd_v", "V", "Measure VDD"),
            MeasurementSpec("vdd_a", "A", "Measure VDD current"),
            MeasurementSpec("vddq_v", "V", "Measure VDDQ"),
            MeasurementSpec("vddq_a", "A", "Measure VDDQ current"),
            MeasurementSpec("vpp_v", "V", "Measure VPP"),
            MeasurementSpec("vpp_a", "A", "Measure VPP current"),
        ),
        _pmic_rails,
        "Read the PMIC's rail telemetry.",
    ),
    Action(
        "dimm.march",
        "dut",
        DIMM,
        MarchParams,
        _MEMORY_READINGS,
        _march,
        "Run a March algorithm (qualify.march) on the DIMM's tester slot.",
    ),
    Action(
        "dimm.pattern",
        "dut",
        DIMM,
        PatternParams,
        (*_MEMORY_READINGS[:3], MeasurementSpec("first_failing_addresses", None, "List failing addresses")),
        _pattern,
        "Run a data-pattern or RowHammer test on the DIMM's tester slot.",
    ),
    Action(
        "dimm.retention_profile",
        "dut",
        DIMM,
        RetentionParams,
        (
            MeasurementSpec(
                "weak_cells", None, "Count failing words at or below the target refresh interval"
            ),
            MeasurementSpec("weak_cells_guard", None, "Count failing words up to the guard-band interval"),
            MeasurementSpec("weak_cells_max", None, "Count failing words at the longest interval"),
        ),
        _retention,
        "Profile weak cells at extended refresh intervals (REAPER-style), TCR off.",
    ),
    Action(
        "dimm.shmoo",
        "dut",
        DIMM,
        ShmooParams,
        (
            MeasurementSpec("passing_points", None, "Count the VDD points with no failing word"),
            MeasurementSpec("vmin_margin_pct", "%", "Find the lowest passing VDD margin"),
        ),
        _shmoo,
        "Sweep the VDD margin with a March algorithm; one reading per point.",
    ),
):
    register(_action)
