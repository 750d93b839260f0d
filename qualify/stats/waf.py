"""Compute write amplification, measured and predicted for greedy garbage collection."""

from __future__ import annotations

import math

from scipy.special import lambertw

from qualify.stats import _check


def write_amplification(nand_bytes_written: float, host_bytes_written: float) -> float:
    """Return the write amplification factor: NAND bytes written / host bytes written."""
    nand = _check.non_negative("nand_bytes_written", nand_bytes_written)
    host = _check.positive("host_bytes_written", host_bytes_written)
    return nand / host


def greedy_gc_waf(spare_factor: float) -> float:
    """Predict write amplification under greedy GC and uniform random writes (Xiang & Kurkoski).

    WA = α / (α + W0(−α·e^(−α))) with α = 1 + ρ and ρ = spare / user capacity:
    ρ 0.07 → 7.8, 0.28 → 2.5, 0.3 → 2.36.
    """
    rho = _check.positive("spare_factor", spare_factor)
    alpha = 1.0 + rho
    # For α > 1 the argument −α·e^(−α) lies in (−1/e, 0), where w·e^w = z has two real roots.
    # The W₋₁ branch returns the trivial root w = −α, which zeroes the denominator; the
    # principal branch W0 returns the root in (−1, 0), and only it reproduces the published
    # figures (ρ 0.07 → 7.82, 0.28 → 2.48, 0.3 → 2.36).
    w = lambertw(-alpha * math.exp(-alpha), 0)
    return alpha / (alpha + float(w.real))
