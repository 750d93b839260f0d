"""Bound event rates (FIT, UBER) from counts over an exposure with the chi-square method."""

from __future__ import annotations

from scipy.stats import chi2

from qualify.stats import _check

HOURS_PER_FIT = 1e9
"""One FIT is one failure in 1e9 device-hours."""


def chi2_upper_rate(events: int, exposure: float, confidence: float) -> float:
    """Return the one-sided upper bound on a Poisson rate: χ²(CL; 2e + 2) / (2·X).

    events is the count seen over exposure X (device-hours, bits read, ...); the bound is in
    events per unit of exposure. With events = 0 and CL = 0.6 this is 0.9163 / X.
    """
    n_events = _check.count("events", events)
    x = _check.positive("exposure", exposure)
    cl = _check.confidence(confidence)
    return float(chi2.ppf(cl, 2 * n_events + 2)) / (2.0 * x)


def fit_rate(failures: int, devices: int, hours: float, confidence: float, af: float = 1.0) -> float:
    """Return the upper-bound failure rate in FIT per JESD85: χ²(CL; 2f+2) / (2·N·t·AF) · 1e9.

    N devices ran t hours at stress with f failures; af converts stress hours to use hours.
    """
    n_failures = _check.count("failures", failures)
    n_devices = _check.count("devices", devices)
    if n_devices == 0:
        raise ValueError("devices must be >= 1, got 0")
    t = _check.positive("hours", hours)
    factor = _check.positive("af", af)
    return chi2_upper_rate(n_failures, n_devices * t * factor, confidence) * HOURS_PER_FIT


def uber_upper_bound(bit_errors: int, bits_read: float, confidence: float) -> float:
    """Return the upper bound on UBER: χ²(CL; 2e + 2) / (2 · bits read).

    Count a bad sector once however often it is re-read (JESD218).
    """
    n_errors = _check.count("bit_errors", bit_errors)
    return chi2_upper_rate(n_errors, _check.positive("bits_read", bits_read), confidence)


def bits_for_uber(uber_limit: float, confidence: float, errors: int = 0) -> float:
    """Return the bits that must be read, with at most errors seen, to show UBER <= uber_limit.

    Solves χ²(CL; 2e + 2) / (2 · bits) = uber_limit for bits: 1e-16 at 60 % with no error
    needs 9.16e15 bits.
    """
    limit = _check.positive("uber_limit", uber_limit)
    n_errors = _check.count("errors", errors)
    cl = _check.confidence(confidence)
    return float(chi2.ppf(cl, 2 * n_errors + 2)) / (2.0 * limit)
