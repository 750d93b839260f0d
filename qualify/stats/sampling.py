"""Bound a lot's failure fraction and size attribute samples (LTPD plans) with the binomial law.

Two families of formulas are in use. The exact binomial (Clopper-Pearson) one here is the
default. The χ²/Poisson form, fraction <= χ²(CL; 2f+2) / (2n), is what JESD74/JESD74A use for
failure-fraction limits (Yang & Chien, "Failure Rate Calculation: Extending JESD74/JESD74A to
Any Sample Size", SMIC) and is offered as sample_size_poisson; it needs a slightly larger
sample than the exact form (LTPD 1 % at 90 %, no failure: 231 against 230, and JESD47's
3 lots × 77 = 231 units meet both).
"""

from __future__ import annotations

import math

from scipy.stats import beta, binom, chi2

from qualify.stats import _check

# Relative slack on "acceptance probability <= 1 − CL" so a plan sitting exactly on the limit
# (e.g. LTPD 25 %, CL 0.578125 = 1 − 0.75³, n = 3) is not pushed one unit up by rounding.
_BOUNDARY_SLACK = 1e-12


def ffr_upper_bound(failures: int, sample_size: int, confidence: float) -> float:
    """Return the exact one-sided (Clopper-Pearson) upper bound on a lot's failure fraction.

    The bound p_U solves P[Binomial(n, p_U) <= f] = 1 − CL, i.e. p_U = Beta⁻¹(CL; f + 1, n − f).
    """
    f = _check.count("failures", failures)
    n = _check.count("sample_size", sample_size)
    cl = _check.confidence(confidence)
    if n == 0:
        raise ValueError("sample_size must be >= 1, got 0")
    if f > n:
        raise ValueError(f"failures ({f}) cannot exceed sample_size ({n})")
    if f == n:
        return 1.0
    return float(beta.ppf(cl, f + 1, n - f))


def zero_failure_sample_size(ltpd: float, confidence: float) -> int:
    """Return the smallest n that shows a failure fraction below ltpd with no failure allowed.

    n = ceil(ln(1 − CL) / ln(1 − p)): FFR 3 % at 60 % needs 31 units, LTPD 1 % at 90 % 230.
    """
    p = _check.fraction("ltpd", ltpd)
    cl = _check.confidence(confidence)
    n = max(1, math.ceil(math.log1p(-cl) / math.log1p(-p)))
    # The quotient can land a rounding error above a whole number; step back if n − 1 already works.
    if n > 1 and (1.0 - p) ** (n - 1) <= (1.0 - cl) * (1.0 + _BOUNDARY_SLACK):
        n -= 1
    return n


def sample_size(ltpd: float, confidence: float, failures: int = 0) -> int:
    """Return the smallest n whose plan accepting up to failures rejects a lot at ltpd with CL.

    That is the smallest n with P[Binomial(n, ltpd) <= failures] <= 1 − CL (classic LTPD
    tables: LTPD 10 % at 90 %, c = 0 → 22, c = 1 → 38).
    """
    p = _check.fraction("ltpd", ltpd)
    cl = _check.confidence(confidence)
    c = _check.count("failures", failures)
    alpha = 1.0 - cl

    def accepts_too_often(n: int) -> bool:
        return bool(binom.cdf(c, n, p) > alpha * (1.0 + _BOUNDARY_SLACK))

    low = c + 1
    if not accepts_too_often(low):
        return low
    high = 2 * low
    while accepts_too_often(high):
        low, high = high, 2 * high
    # Invariant: accepts_too_often(low) and not accepts_too_often(high); the CDF falls with n.
    while high - low > 1:
        mid = (low + high) // 2
        if accepts_too_often(mid):
            low = mid
        else:
            high = mid
    return high


def sample_size_poisson(ltpd: float, confidence: float, failures: int = 0) -> int:
    """Return the χ²/Poisson sample size ceil(χ²(CL; 2c + 2) / (2·p)) for an LTPD plan.

    This is the approximation behind JESD74-style χ² limits; over the usual LTPD range it is
    equal to or a little larger than the exact binomial size from sample_size.
    """
    p = _check.fraction("ltpd", ltpd)
    cl = _check.confidence(confidence)
    c = _check.count("failures", failures)
    return math.ceil(float(chi2.ppf(cl, 2 * c + 2)) / (2.0 * p))
