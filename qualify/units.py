"""Unit names and the few conversions the harness needs. A leaf module."""

from __future__ import annotations

KELVIN_OFFSET = 273.15

_ALIASES = {
    "degc": "°C",
    "°c": "°C",
    "c": "°C",
    "celsius": "°C",
    "k": "K",
    "kelvin": "K",
    "v": "V",
    "volt": "V",
    "volts": "V",
    "a": "A",
    "amp": "A",
    "amps": "A",
    "w": "W",
    "s": "s",
    "h": "h",
    "%": "%",
    "pct": "%",
}


def normalize_unit(unit: str | None) -> str | None:
    """Return the canonical spelling of a unit (`degC` → `°C`), or the unit unchanged."""
    if unit is None:
        return None
    return _ALIASES.get(unit.strip().lower(), unit.strip())


def same_unit(a: str | None, b: str | None) -> bool:
    """Return whether two unit spellings name the same unit."""
    return normalize_unit(a) == normalize_unit(b)


def kelvin_to_c(kelvin: float) -> float:
    """Convert kelvin to degrees Celsius."""
    return kelvin - KELVIN_OFFSET


def c_to_kelvin(temp_c: float) -> float:
    """Convert degrees Celsius to kelvin."""
    return temp_c + KELVIN_OFFSET
