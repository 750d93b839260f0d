"""ECC codeword failure, the read-retry ladder, and deterministic counts drawn from expectations.

A codeword of n bits fails when more than t bits are wrong: P(fail) = P[Binomial(n, RBER) > t],
evaluated with scipy's binomial survival function (`bdtrc`, accurate far into the tail). A read
first tries hard-decision decode; beyond its limit the controller climbs the retry ladder
(read retry, soft decode), each rung adding latency, and past the last rung the read is
uncorrectable.
"""

from __future__ import annotations

import math

from scipy.special import bdtrc, ndtri, pdtr

from sim_instruments.ssd.model import EccParams


def codeword_failure_probability(n_bits: int, t_bits: int, rber: float) -> float:
    """Return P[Binomial(n_bits, rber) > t_bits]: the chance a codeword has too many errors."""
    if rber <= 0.0 or t_bits >= n_bits:
        return 0.0
    return float(bdtrc(t_bits, n_bits, min(rber, 1.0)))


def ladder_exceedance(ecc: EccParams, rber: float) -> list[float]:
    """Return P(errors > limit) for hard decode and each retry rung, in ladder order."""
    limits = [ecc.hard_decision_bits] + [step.correctable_bits for step in ecc.read_retry]
    return [codeword_failure_probability(ecc.codeword_bits, limit, rber) for limit in limits]


def mean_retry_latency_us(ecc: EccParams, rber: float) -> float:
    """Return the mean extra read latency of the retry ladder per codeword read."""
    exceed = ladder_exceedance(ecc, rber)
    # Rung i runs whenever the rung below it failed to decode.
    return sum(p_below * step.latency_us for p_below, step in zip(exceed, ecc.read_retry, strict=False))


def poisson_quantile(u: float, mean: float) -> int:
    """Return the smallest k with P[Poisson(mean) <= k] >= u: a count drawn from a uniform u."""
    if mean <= 0.0:
        return 0
    if mean < 50.0:
        k = 0
    else:
        # Start near the normal approximation so a mean of millions costs a few steps.
        k = max(0, math.floor(mean + math.sqrt(mean) * float(ndtri(u))) - 2)
        while k > 0 and float(pdtr(k - 1, mean)) >= u:
            k -= 1
    while float(pdtr(k, mean)) < u:
        k += 1
    return k
