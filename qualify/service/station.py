"""What the station service knows of its station: slots, their DUTs, and what each run claims.

A run claims its DUT slots and the instruments those DUTs hang on (supply, tester); a plan that
sets the chamber claims the chamber; a station plan or a pytest module claims everything. On a
real station every run claims every instrument too, because a run's end puts the whole station
in its safe state (supplies off, chamber to ambient). A simulated station gives each run its own
simulated lab, so there only the slots and the instruments on them are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.protocols import ThermalChamber
from drivers.registry import REGISTRY
from qualify.actions.builtin import ENVIRONMENT_ACTION
from qualify.clock import RealClock, VirtualClock
from qualify.errors import InputError
from qualify.plans.loader import LoadedPlan
from qualify.station.binding import bind_station, load_station


@dataclass(frozen=True)
class SlotInfo:
    """A DUT slot: its kind, the serial its device reported (or why none), its instruments."""

    slot: int
    kind: str
    serial: str
    error: str | None
    instruments: frozenset[str]

    @property
    def claim(self) -> str:
        """Return the claim name of this slot."""
        return f"slot:{self.slot}"


@dataclass(frozen=True)
class StationInfo:
    """A station as the service schedules it."""

    name: str
    path: Path
    simulated: bool
    slots: tuple[SlotInfo, ...]
    instruments: frozenset[str]
    chambers: frozenset[str]

    def everything(self) -> frozenset[str]:
        """Return every claim on this station."""
        return frozenset({s.claim for s in self.slots} | {f"inst:{i}" for i in self.instruments})


def read_station(path: str | Path) -> StationInfo:
    """Bind the station once to learn which DUT answers in which slot, then release it."""
    spec, _ = load_station(path)
    clock = VirtualClock() if spec.simulation is not None else RealClock()
    station = bind_station(path, clock, 0)
    try:
        slots = []
        for entry, dut in zip(spec.duts, station.duts, strict=True):
            used = {b.instrument for b in (entry.supply, entry.tester) if b is not None}
            slots.append(SlotInfo(dut.slot, dut.kind, dut.serial, dut.error, frozenset(used)))
    finally:
        station.close()
    chambers = frozenset(
        i.name for i in spec.instruments if ThermalChamber in REGISTRY.get(i.driver).provides
    )
    return StationInfo(
        name=spec.name,
        path=Path(path),
        simulated=spec.simulation is not None,
        slots=tuple(sorted(slots, key=lambda s: s.slot)),
        instruments=frozenset(i.name for i in spec.instruments),
        chambers=chambers,
    )


def plan_sets_chamber(loaded: LoadedPlan) -> bool:
    """Return whether a plan drives the chamber (a stage environment or an environment step)."""
    for stage in loaded.plan.stages:
        if stage.environment is not None and stage.environment.chamber is not None:
            return True
        for step in stage.steps:
            if step.action == ENVIRONMENT_ACTION and step.params.get("chamber") is not None:
                return True
    return False


@dataclass(frozen=True)
class Assignment:
    """The slots a run gets, the serials to pass to the engine, and everything it claims."""

    slots: tuple[SlotInfo, ...]
    duts: tuple[str, ...]  # empty: the engine takes every eligible DUT
    claims: frozenset[str]


def assign(
    info: StationInfo,
    loaded: LoadedPlan,
    is_module: bool,
    duts: list[str] | None,
    count: int | str | None,
    busy: frozenset[str],
) -> Assignment | None:
    """Choose slots for a request; return None while they are not free.

    Raise InputError when the station can never satisfy the request.
    """
    kind = loaded.plan.applies_to
    whole = kind == "station" or is_module
    eligible = [s for s in info.slots if whole or s.kind == kind]
    if not eligible:
        raise InputError(f"station {info.name} has no {kind} slot for plan {loaded.plan.name}")
    if duts is not None:
        by_serial = {s.serial: s for s in eligible}
        missing = [d for d in duts if d not in by_serial]
        if missing:
            present = ", ".join(sorted(by_serial))
            raise InputError(f"duts {', '.join(missing)}: not on station {info.name} (present: {present})")
        chosen = [by_serial[d] for d in duts]
    elif isinstance(count, int):
        usable = [s for s in eligible if s.error is None]
        if count > len(usable):
            raise InputError(f"{count} {kind} slots asked for, station {info.name} has {len(usable)} working")
        free = [s for s in usable if s.claim not in busy and not (s.instruments & _names(busy))]
        if len(free) < count:
            return None
        chosen = free[:count]
    else:
        chosen = eligible
    claims = {s.claim for s in chosen} | {f"inst:{i}" for s in chosen for i in s.instruments}
    if whole or not info.simulated:
        claims |= info.everything()
    elif plan_sets_chamber(loaded):
        claims |= {f"inst:{c}" for c in info.chambers}
    if claims & busy:
        return None
    serials = () if whole and duts is None else tuple(s.serial for s in chosen)
    return Assignment(tuple(chosen), serials, frozenset(claims))


def _names(claims: frozenset[str]) -> set[str]:
    return {c.removeprefix("inst:") for c in claims if c.startswith("inst:")}
