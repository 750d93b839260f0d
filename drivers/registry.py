"""Driver registry: station files name drivers; third parties add theirs by entry point.

Entry-point group `qualify.drivers`: each entry point loads either a DriverSpec or a callable
returning an iterable of DriverSpec. A name registered twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

TransportKind = Literal["visa", "serial", "nvme", "i2c"]
ENTRY_POINT_GROUP = "qualify.drivers"


@dataclass(frozen=True)
class DriverSpec:
    """A driver by name: its transport kind, its factory, and the capabilities it provides."""

    name: str
    transport: TransportKind
    factory: Callable[[Any, dict[str, Any]], Any]
    doc: str
    provides: tuple[type, ...] = ()


class DriverRegistry:
    """Name → DriverSpec, filled with the built-in drivers and the installed entry points."""

    def __init__(self) -> None:
        self._specs: dict[str, DriverSpec] = {}
        self._loaded = False

    def register(self, spec: DriverSpec) -> DriverSpec:
        """Add a driver; raise ValueError on a duplicate name."""
        if spec.name in self._specs:
            raise ValueError(f"driver {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> DriverSpec:
        """Return the driver called `name`; raise LookupError naming the known drivers."""
        self._load()
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise LookupError(f"unknown driver {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Return every registered driver name, sorted."""
        self._load()
        return sorted(self._specs)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from drivers.builtin import BUILTIN_DRIVERS

        for spec in BUILTIN_DRIVERS:
            self.register(spec)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            loaded = ep.load()
            specs: Iterable[DriverSpec] = [loaded] if isinstance(loaded, DriverSpec) else loaded()
            for spec in specs:
                self.register(spec)


REGISTRY = DriverRegistry()
