"""Validate the arguments of qualify.stats functions; raise ValueError with a clear message."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

ABSOLUTE_ZERO_C = -273.15


def _number(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got a bool ({value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def confidence(value: float, name: str = "confidence") -> float:
    """Return a confidence level as a float after checking it lies strictly between 0 and 1."""
    number = _number(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1) (e.g. 0.6 for 60 %), got {value!r}")
    return number


def positive(name: str, value: float) -> float:
    """Return value as a float after checking it is finite and > 0."""
    number = _number(name, value)
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def non_negative(name: str, value: float) -> float:
    """Return value as a float after checking it is finite and >= 0."""
    number = _number(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def fraction(name: str, value: float) -> float:
    """Return a proportion as a float after checking it lies strictly between 0 and 1."""
    number = _number(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1) (e.g. 0.03 for 3 %), got {value!r}")
    return number


def count(name: str, value: int) -> int:
    """Return value as an int after checking it is a whole number >= 0 (bools are refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer count, got a bool ({value!r})")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer count, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def temperature_c(name: str, value: float) -> float:
    """Return a Celsius temperature as a float after checking it is above absolute zero."""
    number = _number(name, value)
    if number <= ABSOLUTE_ZERO_C:
        raise ValueError(f"{name} must be above absolute zero (-273.15 °C), got {value!r}")
    return number


def life_data(times: Sequence[float], failed: Sequence[bool]) -> tuple[list[float], list[bool]]:
    """Return life data as lists after checking times are > 0 and failed holds one bool per time."""
    time_list = [positive(f"times[{i}]", t) for i, t in enumerate(times)]
    raw_flags = list(failed)
    if len(time_list) != len(raw_flags):
        raise ValueError(
            f"times and failed must have the same length, got {len(time_list)} and {len(raw_flags)}"
        )
    if not time_list:
        raise ValueError("times must hold at least one unit")
    flags: list[bool] = []
    for i, flag in enumerate(raw_flags):
        if not isinstance(flag, bool | np.bool_):
            raise ValueError(f"failed[{i}] must be a bool (True = failed, False = suspended), got {flag!r}")
        flags.append(bool(flag))
    return time_list, flags
