"""Detect SNIA PTS steady state in a tracked variable (IOPS, bandwidth, latency) over rounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qualify.stats import _check

# Slack on the limit comparisons so a window that sits exactly on a limit is not failed by
# floating-point rounding of the limit itself.
_LIMIT_SLACK = 1e-12


@dataclass(frozen=True)
class SteadyState:
    """Hold a steady-state verdict and the measurement-window figures behind it.

    round_index is the 0-based index into the values of the last round of the first window
    that met both criteria (None if none did). The figures describe that window when reached,
    else the most recent window.
    """

    reached: bool
    round_index: int | None
    window_average: float
    max_min_range: float
    slope: float
    slope_excursion: float


def _window_figures(window_values: np.ndarray) -> tuple[float, float, float, float]:
    x = np.arange(window_values.size, dtype=float)
    x_centered = x - x.mean()
    average = float(window_values.mean())
    slope = float(np.dot(x_centered, window_values - average) / np.dot(x_centered, x_centered))
    spread = float(window_values.max() - window_values.min())
    return average, spread, slope, abs(slope) * (window_values.size - 1)


def steady_state(
    values: Sequence[float],
    window: int = 5,
    excursion: float = 0.20,
    slope_excursion: float = 0.10,
) -> SteadyState:
    """Find the first round at which the last `window` rounds meet SNIA PTS steady state.

    values holds one tracked figure per round, oldest first (all >= 0). A window is steady
    when max − min <= excursion · average and the least-squares line's excursion across the
    window, |slope| · (window − 1) with slope per round, is <= slope_excursion · average.
    Windows are checked from the one ending at round `window` on. Raises ValueError when
    fewer than `window` rounds are given.
    """
    size = _check.count("window", window)
    if size < 2:
        raise ValueError(f"window must be >= 2 rounds, got {window!r}")
    range_limit = _check.positive("excursion", excursion)
    slope_limit = _check.positive("slope_excursion", slope_excursion)
    data = np.asarray([_check.non_negative(f"values[{i}]", v) for i, v in enumerate(values)], dtype=float)
    if data.size < size:
        raise ValueError(f"steady_state needs at least {size} rounds (window), got {data.size}")

    for end in range(size - 1, data.size):
        figures = _window_figures(data[end - size + 1 : end + 1])
        average, spread, _, line_excursion = figures
        slack = _LIMIT_SLACK * max(average, 1.0)
        if spread <= range_limit * average + slack and line_excursion <= slope_limit * average + slack:
            return SteadyState(True, end, *figures)
    # The loop ran at least once (data.size >= size), so figures is the most recent window.
    return SteadyState(False, None, *figures)
