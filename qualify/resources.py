"""Locate the data shipped with qualify (plans, report templates, fixtures), installed or not."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """Return the folder holding test_plans/, reports/ and fixtures/.

    A wheel carries them inside the package (`qualify/_data`); an editable install or a
    checkout has them at the repository root, beside the package.
    """
    packaged = _PACKAGE / "_data"
    if (packaged / "test_plans").is_dir():
        return packaged
    return _PACKAGE.parent


def plans_dir() -> Path:
    """Return the shipped plan library folder."""
    return data_root() / "test_plans"


def reports_dir() -> Path:
    """Return the report templates folder."""
    return data_root() / "reports"


def fixtures_dir() -> Path:
    """Return the shipped fixtures folder (stations, device model parameters, golden data)."""
    return data_root() / "fixtures"


SIM_STATIONS = {"station": "sim-lab.yaml", "ssd": "sim-ssd-lot.yaml", "dimm": "sim-dimm-lot.yaml"}


def sim_station_path(applies_to: str = "station") -> Path:
    """Return the shipped simulated station `--sim` uses for plans that apply to this kind.

    Station plans run on the four-SSD bench; SSD plans on a 34-drive lot (enough for JESD218's
    failure-rate criterion); DIMM plans on an eight-module lot with a DIMM tester.
    """
    return fixtures_dir() / "stations" / SIM_STATIONS[applies_to]
