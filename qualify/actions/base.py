"""What an action is: a named, parameterised operation on a DUT or the station, with readings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from qualify.station.binding import BoundDut, BoundStation

T = TypeVar("T")


class StrictParams(BaseModel):
    """Action parameters that refuse unknown keys, so a typo in a plan is an error."""

    model_config = ConfigDict(extra="forbid")


class NoParams(StrictParams):
    """Parameters of an action that takes none."""


@dataclass(frozen=True)
class Reading:
    """One measured value (or text) an action returns."""

    name: str
    value: float | None = None
    text: str | None = None
    unit: str | None = None


@dataclass
class ActionResult:
    """Readings of one action on one DUT and how long it took in device time."""

    readings: list[Reading] = field(default_factory=list)
    duration_s: float = 1.0
    message: str | None = None


@dataclass(frozen=True)
class MeasurementSpec:
    """A measurement an action promises: name, unit and what it means."""

    name: str
    unit: str | None
    doc: str


class CapabilityMissing(Exception):
    """A DUT or station lacks a capability an action needs."""


def need(dut: BoundDut, protocol: type[T], what: str) -> T:
    """Return the DUT's `protocol` capability; raise CapabilityMissing saying `dut has no what`."""
    found = dut.capability(protocol)
    if found is None:
        raise CapabilityMissing(f"{dut.label} has no {what}")
    return found


@dataclass(frozen=True)
class ActionContext:
    """What an action sees: the station, its DUT (None for station scope), and run time."""

    station: BoundStation
    dut: BoundDut | None
    now_s: Callable[[], float]
    seed: int
    # (step name, measurement) -> this DUT's earlier values in run order (steady-state checks)
    history: Callable[[str, str], list[float]] = lambda step, name: []

    def require_dut(self) -> BoundDut:
        """Return the DUT; station-scope actions have none."""
        if self.dut is None:
            raise CapabilityMissing("this action runs on a DUT, not on the station")
        return self.dut


@dataclass(frozen=True)
class Action:
    """A registered action: scope, DUT kinds, parameter model, promised measurements, code."""

    name: str
    scope: Literal["dut", "station"]
    kinds: frozenset[str]
    params: type[BaseModel]
    measurements: tuple[MeasurementSpec, ...]
    run: Callable[[ActionContext, Any], ActionResult]
    doc: str
    idempotent: bool = True  # safe to retry after a transient fault (reads, not writes)

    def measurement(self, name: str) -> MeasurementSpec | None:
        """Return the promised measurement called `name`, if any."""
        return next((m for m in self.measurements if m.name == name), None)
