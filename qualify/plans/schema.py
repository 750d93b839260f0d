"""The plan format `qualify.plan/1` as pydantic models: stages, steps, limits, criteria."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PLAN_SPEC = "qualify.plan/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, _ . -; no spaces)")
    return value


class Limit(_Strict):
    """Acceptance window of one measurement; `marginal` is a band inside the window edges."""

    low: float | None = None
    high: float | None = None
    eq: float | str | bool | None = None
    marginal: float = Field(default=0.0, ge=0.0)
    unit: str | None = None
    doc: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Limit:
        if self.low is None and self.high is None and self.eq is None:
            raise ValueError("a limit needs low, high or eq")
        if self.eq is not None and (self.low is not None or self.high is not None):
            raise ValueError("eq cannot be combined with low or high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        for bound in (self.low, self.high):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("limits must be finite numbers")
        return self


class ChamberSetting(_Strict):
    """Chamber air setpoint, how close counts as reached, and the soak once reached."""

    temp_c: float
    tolerance_c: float = Field(default=1.0, gt=0)
    soak_s: float = Field(default=0.0, ge=0)
    timeout_s: float = Field(default=4 * 3600.0, gt=0)


class SupplySetting(_Strict):
    """DUT supply corner: a percentage off each DUT's nominal voltage, or an absolute voltage."""

    voltage_pct: float | None = Field(default=None, ge=-50, le=50)
    voltage_v: float | None = Field(default=None, ge=0)
    current_limit_a: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> SupplySetting:
        if (self.voltage_pct is None) == (self.voltage_v is None):
            raise ValueError("give exactly one of voltage_pct or voltage_v")
        return self


class EquivalentHold(_Strict):
    """Hold at the chamber temperature as long as `hours` at `temp_c` would age the DUTs.

    The duration follows from the Arrhenius factor with activation energy `ea_ev`: a JESD218
    enterprise retention bake is `{hours: 2190, temp_c: 40, ea_ev: 1.1}` at the bake setpoint.
    """

    hours: float = Field(gt=0)
    temp_c: float
    ea_ev: float = Field(default=1.1, gt=0)


class Environment(_Strict):
    """Station conditions established at the start of every stage iteration.

    `dut_power`: "on" powers the DUTs and finds them again on their bus; "off" is an orderly
    power-off, each DUT told first (an NVMe shutdown notification), as a host shuts a drive
    down; "cut" removes power without notice, an unsafe shutdown, for power-loss tests.
    """

    chamber: ChamberSetting | None = None
    supply: SupplySetting | None = None
    dut_power: Literal["on", "off", "cut"] | None = None
    hold_s: float = Field(default=0.0, ge=0)
    hold_equivalent: EquivalentHold | None = None

    @model_validator(mode="after")
    def _equivalent_needs_chamber(self) -> Environment:
        if self.hold_equivalent is not None and self.chamber is None:
            raise ValueError("hold_equivalent needs a chamber temperature to hold at")
        return self


class Step(_Strict):
    """One action run on every DUT of the stage (or once for the station), with limits."""

    name: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Limit] = Field(default_factory=dict)
    doc: str | None = None

    _name = field_validator("name")(_check_name)


class Until(_Strict):
    """Stop repeating once a measurement of a step is inside this window on every DUT."""

    step: str
    measurement: str
    low: float | None = None
    high: float | None = None
    eq: float | str | bool | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Until:
        if self.low is None and self.high is None and self.eq is None:
            raise ValueError("until needs low, high or eq")
        return self


class Repeat(_Strict):
    """Repeat a stage a fixed number of times, or until a condition with a maximum."""

    count: int | None = Field(default=None, ge=1, le=100_000)
    until: Until | None = None
    max: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _shape(self) -> Repeat:
        if self.count is not None and (self.until is not None or self.max is not None):
            raise ValueError("repeat takes either count, or until with max")
        if self.count is None and self.until is None:
            raise ValueError("repeat needs count, or until with max")
        if self.until is not None and self.max is None:
            raise ValueError("repeat with until needs max (a cap on iterations)")
        return self

    @property
    def iterations(self) -> int:
        """Return the most iterations this repeat can run."""
        return self.count if self.count is not None else int(self.max or 1)


class Stage(_Strict):
    """A named block of steps under one environment, optionally repeated."""

    name: str
    environment: Environment | None = None
    steps: list[Step] = Field(default_factory=list)
    repeat: Repeat | None = None
    doc: str | None = None

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _steps(self) -> Stage:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names repeat within the stage: {', '.join(dupes)}")
        if self.repeat and self.repeat.until and self.repeat.until.step not in names:
            raise ValueError(f"repeat.until names step {self.repeat.until.step!r}, not in this stage")
        if not self.steps and self.environment is None:
            raise ValueError("a stage needs steps or an environment")
        return self

    @property
    def iterations(self) -> int:
        """Return the most iterations of this stage."""
        return self.repeat.iterations if self.repeat else 1


CriterionKind = Literal["yield", "ffr", "uber", "fit", "max", "min"]
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.[A-Za-z0-9_]+$")


class Criterion(_Strict):
    """A lot-level acceptance criterion computed over all DUTs at a stated confidence.

    - yield: passed / judged DUTs ≥ limit.
    - ffr: exact binomial upper bound of the failing fraction ≤ limit (JESD218 FFR).
    - uber: χ² upper bound of bit errors per bit read ≤ limit; `errors` and `bits` name the
      measurements summed over every DUT (`step.measurement`).
    - fit: JESD85 failure rate bound in FIT ≤ limit, over `hours` of stress accelerated by
      Arrhenius from `stress_temp_c` to `use_temp_c` with `ea_ev`.
    - max / min: the worst DUT's value of `measurement` (`step.measurement`) against limit.
    """

    name: str
    kind: CriterionKind
    limit: float
    confidence: float = Field(default=0.6, gt=0, lt=1)
    errors: str | None = None
    bits: str | None = None
    measurement: str | None = None
    hours: float | None = Field(default=None, gt=0)
    ea_ev: float = Field(default=0.7, gt=0)
    use_temp_c: float | None = None
    stress_temp_c: float | None = None
    doc: str | None = None

    _name = field_validator("name")(_check_name)

    @field_validator("errors", "bits", "measurement")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF.match(value):
            raise ValueError(f"{value!r} is not a `step.measurement` reference")
        return value

    @model_validator(mode="after")
    def _inputs(self) -> Criterion:
        need = {
            "uber": ("errors", "bits"),
            "max": ("measurement",),
            "min": ("measurement",),
            "fit": ("hours",),
        }.get(self.kind, ())
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} criterion needs {', '.join(missing)}")
        if self.kind == "fit" and (self.use_temp_c is None) != (self.stress_temp_c is None):
            raise ValueError("give both use_temp_c and stress_temp_c, or neither (no acceleration)")
        return self

    def references(self) -> list[str]:
        """Return the `step.measurement` references this criterion reads."""
        return [r for r in (self.errors, self.bits, self.measurement) if r is not None]


class Telemetry(_Strict):
    """How often station and DUT telemetry is sampled during waits, in run seconds."""

    interval_s: float = Field(default=300.0, gt=0)


class Plan(_Strict):
    """A qualification plan: stages of steps with limits, and lot criteria."""

    spec: Literal["qualify.plan/1"]
    name: str
    version: str
    applies_to: Literal["ssd", "dimm", "station"]
    description: str | None = None
    parameters: dict[str, float | int | str | bool | list[float | int | str]] = Field(default_factory=dict)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    stages: list[Stage] = Field(min_length=1)
    criteria: list[Criterion] = Field(default_factory=list)

    _name = field_validator("name")(_check_name)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _unique_stages(self) -> Plan:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names repeat: {', '.join(dupes)}")
        return self
