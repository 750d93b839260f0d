"""Judge a reading against its limit: pass, marginal (inside but near an edge) or fail."""

from __future__ import annotations

import math

from qualify.actions.base import Reading
from qualify.plans.schema import Limit


def judge(reading: Reading, limit: Limit | None) -> str:
    """Return `pass`, `marginal` or `fail` for a reading under a limit (no limit: pass)."""
    if limit is None:
        return "pass"
    if limit.eq is not None:
        if isinstance(limit.eq, bool | str) or reading.value is None or reading.text is not None:
            actual = reading.text if reading.text is not None else reading.value
            return "pass" if str(actual) == str(limit.eq) else "fail"
        return "pass" if math.isclose(reading.value, float(limit.eq), abs_tol=1e-12) else "fail"
    value = reading.value
    if value is None or math.isnan(value):
        return "fail"
    if limit.low is not None and value < limit.low:
        return "fail"
    if limit.high is not None and value > limit.high:
        return "fail"
    band = limit.marginal
    if band > 0 and (
        (limit.low is not None and value < limit.low + band)
        or (limit.high is not None and value > limit.high - band)
    ):
        return "marginal"
    return "pass"


def describe_violation(reading: Reading, limit: Limit) -> str:
    """Say in words how a reading breaks its limit, e.g. `temp_c = 91.2 °C > high 85`."""
    unit = f" {reading.unit}" if reading.unit else ""
    if limit.eq is not None:
        shown = reading.text if reading.text is not None else reading.value
        return f"{reading.name} = {shown!r}, expected {limit.eq!r}"
    value = reading.value
    if value is None:
        return f"{reading.name} has no value"
    if limit.low is not None and value < limit.low:
        return f"{reading.name} = {value:.6g}{unit} < low {limit.low:g}"
    return f"{reading.name} = {value:.6g}{unit} > high {limit.high:g}"


def in_window(value: object, low: float | None, high: float | None, eq: object) -> bool:
    """Return whether a value meets a repeat-until window."""
    if eq is not None:
        return str(value) == str(eq)
    if not isinstance(value, int | float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)
