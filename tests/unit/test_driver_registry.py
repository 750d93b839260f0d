"""Drivers register by name; third parties add theirs through the `qualify.drivers` entry points."""

from __future__ import annotations

from typing import Any

import pytest

import drivers.registry as registry_module
from drivers.protocols import PowerSupply
from drivers.registry import DriverRegistry, DriverSpec


class _EntryPoint:
    """Stands in for importlib.metadata's EntryPoint: no third-party package is installed here."""

    def __init__(self, loaded: Any) -> None:
        self._loaded = loaded

    def load(self) -> Any:
        return self._loaded


def _spec(name: str) -> DriverSpec:
    return DriverSpec(
        name=name, transport="visa", factory=lambda t, o: object(), doc="x", provides=(PowerSupply,)
    )


def test_entry_points_add_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_entry_points(group: str) -> list[_EntryPoint]:
        assert group == "qualify.drivers"
        return [
            _EntryPoint(_spec("acme.psu9000")),
            _EntryPoint(lambda: [_spec("acme.dmm1"), _spec("acme.dmm2")]),
        ]

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    registry = DriverRegistry()
    names = registry.names()
    assert {"acme.psu9000", "acme.dmm1", "acme.dmm2", "keysight.e36313a", "nvme"} <= set(names)
    assert registry.get("acme.psu9000").provides == (PowerSupply,)


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [_EntryPoint(_spec("nvme"))])
    with pytest.raises(ValueError, match="driver 'nvme' is already registered"):
        DriverRegistry().names()


def test_unknown_driver_names_the_known_ones() -> None:
    with pytest.raises(LookupError, match=r"unknown driver 'nope'.*keysight\.e36313a"):
        DriverRegistry().get("nope")
