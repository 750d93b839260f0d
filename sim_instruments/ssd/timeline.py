"""A DUT's temperature between two instants, and the integrals the drive model needs from it.

The lab's temperatures are smooth between events (ramps, holds, lags), so an interval is
reconstructed as knots (time, °C) by halving wherever its quarter points leave the chord; then
every quantity is exact or Gauss-Legendre-accurate per linear piece: Arrhenius-weighted hours,
time at or above a threshold, and upward crossings of it. A 1000-hour bake is one piece.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from sim_instruments.ssd.nand import arrhenius_af

Knot = tuple[float, float]

_GAUSS_NODES, _GAUSS_WEIGHTS = (tuple(float(x) for x in arr) for arr in np.polynomial.legendre.leggauss(8))
_LINEAR_TOLERANCE_C = 0.01
_MAX_DEPTH = 40  # 2^-40 of a 1000-hour interval is a few microseconds


def knots(
    temp_at: Callable[[float], float] | None, t0_s: float, t1_s: float, temp0_c: float, temp1_c: float
) -> list[Knot]:
    """Return knots of the temperature on [t0_s, t1_s]; the given endpoints if there is no history."""
    if temp_at is None:
        return [(t0_s, temp0_c), (t1_s, temp1_c)]
    if t1_s <= t0_s:
        return [(t0_s, temp_at(t0_s))]
    span = t1_s - t0_s
    points = [(t0_s + span * f, temp_at(t0_s + span * f)) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    out = [points[0]]
    _refine(temp_at, points, 0, out)
    return out


def _refine(temp_at: Callable[[float], float], p: list[Knot], depth: int, out: list[Knot]) -> None:
    """Accept [p0, p4] as one linear piece if its quarter points lie on the chord, else halve it."""
    (a_t, a_c), (b_t, b_c) = p[0], p[4]
    on_chord = all(
        abs(c - (a_c + (b_c - a_c) * (t - a_t) / (b_t - a_t))) <= _LINEAR_TOLERANCE_C for t, c in p[1:4]
    )
    if depth >= _MAX_DEPTH or on_chord:
        out.extend(p[1:])  # the inner points are paid for: they make the pieces 4x shorter
        return
    # Checking three inner points, not one, keeps a full swing of the chamber's ringing (ends and
    # middle on the chord) from passing as flat; each half reuses three of the five points.
    for lo, mid, hi in ((p[0], p[1], p[2]), (p[2], p[3], p[4])):
        q1 = 0.5 * (lo[0] + mid[0])
        q3 = 0.5 * (mid[0] + hi[0])
        _refine(temp_at, [lo, (q1, temp_at(q1)), mid, (q3, temp_at(q3)), hi], depth + 1, out)


def clip(points: Sequence[Knot], t0_s: float, t1_s: float) -> list[Knot]:
    """Return the knots of the piecewise-linear temperature within [t0_s, t1_s], ends interpolated."""
    out: list[Knot] = []
    for (a_t, a_c), (b_t, b_c) in itertools.pairwise(points):
        if b_t <= a_t or b_t <= t0_s or a_t >= t1_s:
            continue
        for t in (max(a_t, t0_s), min(b_t, t1_s)):
            out.append((t, a_c + (b_c - a_c) * (t - a_t) / (b_t - a_t)))
    return out


def af_hours(points: Sequence[Knot], ea_ev: float, ref_temp_c: float) -> float:
    """Return ∫ AF(T(t)) dt in hours: the time the interval is worth at ref_temp_c."""
    total_s = 0.0
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        dt = t1 - t0
        if dt <= 0:
            continue
        if c0 == c1:
            total_s += dt * arrhenius_af(ea_ev, ref_temp_c, c0)
            continue
        piece = 0.0
        for x, w in zip(_GAUSS_NODES, _GAUSS_WEIGHTS, strict=True):
            piece += w * arrhenius_af(ea_ev, ref_temp_c, c0 + (c1 - c0) * 0.5 * (x + 1.0))
        total_s += 0.5 * dt * piece
    return total_s / 3600.0


def seconds_at_or_above(points: Sequence[Knot], threshold_c: float) -> float:
    """Return the time the temperature spends at or above `threshold_c`."""
    total = 0.0
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        dt = t1 - t0
        if dt <= 0:
            continue
        if c0 >= threshold_c and c1 >= threshold_c:
            total += dt
        elif c0 >= threshold_c or c1 >= threshold_c:
            crossing = t0 + dt * (threshold_c - c0) / (c1 - c0)
            total += (t1 - crossing) if c1 >= threshold_c else (crossing - t0)
    return total


def upward_crossings(points: Sequence[Knot], threshold_c: float, was_above: bool) -> tuple[int, bool]:
    """Return (times the temperature rose to the threshold, whether it ends at or above it)."""
    count = 0
    above = was_above
    for _, temp_c in points:
        now_above = temp_c >= threshold_c
        if now_above and not above:
            count += 1
        above = now_above
    return count, above
