"""NAND error and wear physics: the composite RBER power law, Arrhenius time scaling, wear-out.

RBER = ε + α·N^k + β·N^m·t^n + min(γ·N^p·r^q, read_term_max), with N the P/E cycles, t the
retention time in hours at the coefficients' reference temperature and r the reads per block
since the data was written. Time at another temperature counts Arrhenius-scaled:
AF = exp[(Ea/k)(1/T_ref − 1/T)], Ea 1.1 eV for charge loss. Blocks wear out along a Weibull
in P/E cycles and are replaced from the spare pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim_instruments.ssd.model import RberParams

BOLTZMANN_EV_PER_K = 8.617333262e-5
KELVIN_OFFSET = 273.15


def arrhenius_af(ea_ev: float, ref_temp_c: float, temp_c: float) -> float:
    """Return how many hours at ref_temp_c one hour at temp_c is worth (AF > 1 when hotter)."""
    t_ref_k = ref_temp_c + KELVIN_OFFSET
    t_k = temp_c + KELVIN_OFFSET
    return math.exp(ea_ev / BOLTZMANN_EV_PER_K * (1.0 / t_ref_k - 1.0 / t_k))


@dataclass(frozen=True)
class RberTerms:
    """The four terms of the composite power law at one operating point."""

    base: float
    wear: float
    retention: float
    read: float

    @property
    def total(self) -> float:
        """Return the raw bit error rate: the sum of the terms, at most 0.5 (a coin flip)."""
        return min(0.5, self.base + self.wear + self.retention + self.read)

    def scaled(self, factor: float) -> RberTerms:
        """Return the terms multiplied by a drive's factor (part-to-part spread)."""
        return RberTerms(self.base * factor, self.wear * factor, self.retention * factor, self.read * factor)


def rber_terms(params: RberParams, pe_cycles: float, retention_h: float, reads: float) -> RberTerms:
    """Evaluate each term of the composite power law; the read-disturb term is clamped."""
    n = max(0.0, pe_cycles)
    t = max(0.0, retention_h)
    r = max(0.0, reads)
    read_term = params.gamma * n**params.p * r**params.q
    return RberTerms(
        base=params.epsilon,
        wear=params.alpha * n**params.k,
        retention=params.beta * n**params.m * t**params.n,
        # Controllers relocate blocks that are read too often (read reclaim), so the read-disturb
        # contribution saturates instead of growing without bound.
        read=min(read_term, params.read_term_max),
    )


def rber(params: RberParams, pe_cycles: float, retention_h: float, reads: float) -> float:
    """Return the raw bit error rate of the composite power law."""
    return rber_terms(params, pe_cycles, retention_h, reads).total


def grown_bad_fraction(pe_cycles: float, eta_pe: float, shape: float) -> float:
    """Return the fraction of blocks worn out by `pe_cycles` (Weibull CDF in P/E cycles)."""
    if pe_cycles <= 0:
        return 0.0
    return -math.expm1(-((pe_cycles / eta_pe) ** shape))
