"""Fixtures for engineers' own pytest modules: station, dut, chamber, psu, measure.

A module next to the plans is code, written deliberately; its tests are recorded like plan
steps (one step per test and DUT), and `measure` records measurements with limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.protocols import PowerSupply, ThermalChamber
from qualify.actions.base import Reading
from qualify.engine.limits import describe_violation, judge
from qualify.plans.schema import Limit
from qualify.station.binding import BoundDut, BoundStation


@dataclass
class Measured:
    """The measurements one test made, with their limits and verdicts."""

    rows: list[tuple[Reading, Limit | None, str]] = field(default_factory=list)

    def failures(self) -> list[str]:
        """Describe each measurement that failed its limit."""
        return [describe_violation(r, lim) for r, lim, v in self.rows if v == "fail" and lim is not None]


MEASURED_KEY = pytest.StashKey[Measured]()


def _engine(request: pytest.FixtureRequest) -> Any:
    from qualify.pytest_plugin.plugin import session_state

    engine = session_state(request.config).engine if _has_state(request.config) else None
    if engine is None:
        pytest.skip("no qualify run: use `qualify run MODULE.py --sim` or --station FILE")
    return engine


def _has_state(config: pytest.Config) -> bool:
    from qualify.pytest_plugin.plugin import has_state

    return has_state(config)


@pytest.fixture
def station(request: pytest.FixtureRequest) -> BoundStation:
    """Return the bound station of the run."""
    return _engine(request).station


@pytest.fixture
def chamber(request: pytest.FixtureRequest) -> ThermalChamber:
    """Return the station's thermal chamber (skips the test on a station without one)."""
    found = _engine(request).station.chamber()
    if found is None:
        pytest.skip("the station has no thermal chamber")
    return found[1]


@pytest.fixture
def psu(request: pytest.FixtureRequest) -> PowerSupply:
    """Return the supply feeding the test's DUT, or the station's first supply."""
    engine = _engine(request)
    if "dut" in request.fixturenames:
        dut: BoundDut = request.getfixturevalue("dut")
        supply = dut.capability(PowerSupply)  # type: ignore[type-abstract]
        if supply is None:
            pytest.skip(f"{dut.label} has no supply channel")
        return supply
    found = engine.station.find(PowerSupply)
    if found is None:
        pytest.skip("the station has no power supply")
    return found[1]


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Return `measure(name, value, unit=, low=, high=, eq=, marginal=)`, which records and judges."""
    measured = Measured()
    request.node.stash[MEASURED_KEY] = measured

    def record(
        name: str,
        value: float | str,
        unit: str | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
        eq: float | str | bool | None = None,
        marginal: float = 0.0,
    ) -> str:
        limit = None
        if low is not None or high is not None or eq is not None:
            limit = Limit(low=low, high=high, eq=eq, marginal=marginal, unit=unit)
        reading = (
            Reading(name, text=value, unit=unit)
            if isinstance(value, str)
            else Reading(name, float(value), unit=unit)
        )
        verdict = judge(reading, limit)
        measured.rows.append((reading, limit, verdict))
        return verdict

    return record
