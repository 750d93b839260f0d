"""Draw report figures as inline SVG with matplotlib: timeline, per-DUT trends, Weibull, grids.

Figures summarise when there are many DUTs (median and min–max band instead of one line per
DUT), so a 1000-DUT lot renders as quickly and reads as clearly as a 4-DUT run.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen above, before pyplot loads
import numpy as np
from matplotlib.figure import Figure

MAX_LINES = 12  # beyond this many DUTs a trend shows the median and the min–max band
MAX_POINTS = 1500  # points per series after decimation

Series = tuple[Sequence[float], Sequence[float]]

plt.rcParams.update(
    {
        "svg.hashsalt": "qualify",  # stable element ids: the same run renders the same file
        "svg.fonttype": "none",  # text stays text: searchable, small
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _decimate(t: Sequence[float], v: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    ta, va = np.asarray(t, dtype=float), np.asarray(v, dtype=float)
    if len(ta) > MAX_POINTS:
        step = math.ceil(len(ta) / MAX_POINTS)
        ta, va = ta[::step], va[::step]
    return ta, va


def _shade_stages(ax: plt.Axes, stages: Sequence[tuple[str, float, float]], label: bool) -> None:
    for i, (name, t0, t1) in enumerate(stages):
        if i % 2 == 0:
            ax.axvspan(t0, t1, color="#8c959f", alpha=0.12, lw=0)
        if label:
            ax.text(
                (t0 + t1) / 2,
                1.01,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                color="#57606a",
                clip_on=False,
            )


def timeline_svg(
    chamber: Mapping[str, Series],
    supplies: Mapping[str, Series],
    stages: Sequence[tuple[str, float, float]],
) -> str:
    """Draw chamber air and setpoint, and DUT supply voltages, against run hours with stages."""
    rows = 2 if supplies else 1
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.4 * rows), sharex=True, squeeze=False)
    ax = axes[0][0]
    for name, (t, v) in chamber.items():
        ta, va = _decimate(t, v)
        ax.plot(ta, va, lw=1.2, label=name, drawstyle="steps-post" if "setpoint" in name else "default")
    ax.set_ylabel("chamber °C")
    ax.legend(loc="upper right", fontsize=7)
    _shade_stages(ax, stages, label=True)
    if supplies:
        ax2 = axes[1][0]
        _trend_lines(ax2, supplies)
        ax2.set_ylabel("supply V")
        _shade_stages(ax2, stages, label=False)
    axes[-1][0].set_xlabel("run time (h)")
    return _svg(fig)


def _trend_lines(ax: plt.Axes, per_dut: Mapping[str, Series]) -> None:
    if len(per_dut) <= MAX_LINES:
        for serial, (t, v) in sorted(per_dut.items()):
            ta, va = _decimate(t, v)
            ax.plot(ta, va, lw=1.0, marker="." if len(ta) < 40 else None, label=serial)
        if per_dut:
            ax.legend(loc="best", fontsize=6, ncol=2)
        return
    # Many DUTs: bin all samples on a common time grid and show the spread.
    all_t = np.concatenate([np.asarray(t, dtype=float) for t, _ in per_dut.values()])
    edges = np.linspace(all_t.min(), all_t.max() + 1e-9, 200)
    centres, med, low, high = [], [], [], []
    for lo_t, hi_t in pairwise(edges):
        vals = [
            float(np.asarray(v, dtype=float)[(np.asarray(t) >= lo_t) & (np.asarray(t) < hi_t)].mean())
            for t, v in per_dut.values()
            if np.any((np.asarray(t) >= lo_t) & (np.asarray(t) < hi_t))
        ]
        if vals:
            centres.append((lo_t + hi_t) / 2)
            med.append(float(np.median(vals)))
            low.append(min(vals))
            high.append(max(vals))
    ax.fill_between(centres, low, high, alpha=0.25, label=f"min–max of {len(per_dut)} DUTs")
    ax.plot(centres, med, lw=1.2, label="median")
    ax.legend(loc="best", fontsize=7)


def trend_svg(title: str, unit: str | None, per_dut: Mapping[str, Series]) -> str:
    """Draw one measurement against run hours, per DUT or as a spread for many DUTs."""
    fig, ax = plt.subplots(figsize=(9, 2.6))
    _trend_lines(ax, per_dut)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel("run time (h)")
    ax.set_ylabel(unit or "")
    return _svg(fig)


def lines_svg(
    title: str, x_label: str, y_label: str, series: Mapping[str, Series], logx: bool = False
) -> str:
    """Draw named series of (x, y) points as lines with markers."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o", lw=1.2, label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(loc="best", fontsize=7)
    return _svg(fig)


def scatter_svg(title: str, x_label: str, y_label: str, per_dut: Mapping[str, Series]) -> str:
    """Plot one quantity against another, all DUTs in one cloud (colour per DUT up to a dozen)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    many = len(per_dut) > MAX_LINES
    for serial, (x, y) in sorted(per_dut.items()):
        ax.plot(x, y, ".", ms=4, color="#0969da" if many else None, label=None if many else serial)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=9, loc="left")
    if not many:
        ax.legend(loc="best", fontsize=6, ncol=2)
    return _svg(fig)


def weibull_svg(
    points: Sequence[tuple[float, float]], beta: float | None, eta: float | None, unit: str = "h"
) -> str:
    """Draw failure times on Weibull paper (ln t against ln(−ln(1−F))) with the fitted line."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    t = np.array([p[0] for p in points], dtype=float)
    f = np.array([p[1] for p in points], dtype=float)
    ax.plot(np.log(t), np.log(-np.log(1 - f)), "o", label="failures (median ranks)")
    if beta and eta:
        span = np.linspace(np.log(t.min()) - 0.5, np.log(t.max()) + 0.5, 50)
        ax.plot(span, beta * (span - np.log(eta)), "-", label=f"fit β = {beta:.3g}, η = {eta:.4g} {unit}")
    ax.set_xlabel(f"ln(time / {unit})")
    ax.set_ylabel("ln(−ln(1 − F))")
    ax.legend(loc="best", fontsize=7)
    return _svg(fig)


def grid_svg(
    title: str,
    x_label: str,
    y_label: str,
    x_values: Sequence[float],
    y_values: Sequence[float],
    passed: dict[tuple[float, float], float],
) -> str:
    """Draw a pass/fail grid (a shmoo): colour is the fraction of DUTs passing at each point."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    grid = np.full((len(y_values), len(x_values)), np.nan)
    for (x, y), frac in passed.items():
        grid[list(y_values).index(y), list(x_values).index(x)] = frac
    image = ax.imshow(grid, origin="lower", cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(x_values)), [f"{x:g}" for x in x_values], fontsize=7)
    ax.set_yticks(range(len(y_values)), [f"{y:g}" for y in y_values], fontsize=7)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="fraction passing")
    return _svg(fig)
