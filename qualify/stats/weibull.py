"""Fit two-parameter Weibull life data with right censoring and place points on Weibull paper."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import norm

from qualify.stats import _check

_MAX_SHAPE = 1e6


@dataclass(frozen=True)
class WeibullFit:
    """Hold a maximum-likelihood Weibull fit and its Fisher-matrix confidence bounds.

    The bounds are two-sided at `confidence` (a one-sided bound at level c is the two-sided
    bound at 2c − 1), from the inverse Fisher information with the usual log transform
    (θ·exp(±K·σ/θ), K the normal quantile), so they stay positive. They are approximate for
    few failures; likelihood-ratio bounds are wider there.
    """

    beta: float
    eta: float
    beta_lower: float
    beta_upper: float
    eta_lower: float
    eta_upper: float
    confidence: float
    failures: int
    suspensions: int
    log_likelihood: float
    var_beta: float
    var_eta: float
    cov_beta_eta: float
    shape_fixed: bool


def weibull_unreliability(t: float, beta: float, eta: float) -> float:
    """Return the Weibull CDF F(t) = 1 − exp[−(t/η)^β], the fraction failed by time t."""
    time = _check.non_negative("t", t)
    shape = _check.positive("beta", beta)
    scale = _check.positive("eta", eta)
    return -math.expm1(-((time / scale) ** shape))


def _log_eta(log_t: np.ndarray, shape: float, failures: int) -> float:
    # η̂(β) = (Σ t^β / r)^(1/β), summed in log space so large β cannot overflow.
    return float((logsumexp(shape * log_t) - math.log(failures)) / shape)


def _shape_score(shape: float, log_t: np.ndarray, mean_log_failed: float, log_t_max: float) -> float:
    # Profile score: Σ t^β ln t / Σ t^β − 1/β − mean(ln t over failures); rises with β.
    weights = np.exp(shape * (log_t - log_t_max))
    return float(np.dot(weights, log_t) / weights.sum()) - 1.0 / shape - mean_log_failed


def _solve_shape(log_t: np.ndarray, mean_log_failed: float) -> float:
    log_t_max = float(log_t.max())
    if mean_log_failed >= log_t_max - 1e-12 * max(1.0, abs(log_t_max)):
        raise ValueError(
            "the Weibull MLE does not exist for these data: every failure is at the longest "
            "time; need two distinct failure times or a unit running past the failures"
        )

    def score(shape: float) -> float:
        return _shape_score(shape, log_t, mean_log_failed, log_t_max)

    low = high = 1.0
    while score(low) >= 0.0:
        low /= 2.0
    while score(high) <= 0.0:
        high *= 2.0
        if high > _MAX_SHAPE:
            raise ValueError("the Weibull shape diverges: failure times are nearly identical")
    return float(brentq(score, low, high, xtol=1e-14, rtol=1e-13))


def weibull_fit(
    times: Sequence[float],
    failed: Sequence[bool],
    confidence: float = 0.9,
    shape: float | None = None,
) -> WeibullFit:
    """Fit a two-parameter Weibull to right-censored life data by maximum likelihood.

    times are hours (or cycles) to failure or to suspension; failed[i] is False for a unit
    still running when it was removed (suspended, right-censored). The log-likelihood is
    Σ_failed [ln β − β ln η + (β − 1) ln t] − Σ_all (t/η)^β; scipy's brentq solves its profile
    score for β and η follows in closed form. Pass shape to hold β fixed (Weibayes-style
    with failures; shape=1 gives the exponential MLE η = total time / failures).
    """
    time_list, flags = _check.life_data(times, failed)
    cl = _check.confidence(confidence)
    fixed_shape = None if shape is None else _check.positive("shape", shape)
    r = sum(flags)
    if r == 0:
        raise ValueError("weibull_fit needs at least one failure; all units are suspended")

    log_t = np.log(np.asarray(time_list, dtype=float))
    log_t_failed = log_t[np.asarray(flags, dtype=bool)]
    b = fixed_shape if fixed_shape is not None else _solve_shape(log_t, float(log_t_failed.mean()))
    log_eta = _log_eta(log_t, b, r)
    eta = math.exp(log_eta)

    scaled = log_t - log_eta  # ln(t/η)
    z = np.exp(b * scaled)  # (t/η)^β
    sum_z = float(z.sum())
    log_likelihood = r * math.log(b) - r * b * log_eta + (b - 1.0) * float(log_t_failed.sum()) - sum_z

    # Observed Fisher information (minus the Hessian of the log-likelihood) at the MLE.
    info_bb = r / b**2 + float(np.dot(z, scaled**2))
    info_ee = (-r * b + b * (b + 1.0) * sum_z) / eta**2
    info_be = (r - sum_z - b * float(np.dot(z, scaled))) / eta
    if fixed_shape is not None:
        var_b, var_e, cov_be = 0.0, 1.0 / info_ee, 0.0
    else:
        cov = np.linalg.inv(np.array([[info_bb, info_be], [info_be, info_ee]]))
        var_b, var_e, cov_be = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])

    k = float(norm.ppf(0.5 + cl / 2.0))
    spread_b = math.exp(k * math.sqrt(var_b) / b)
    spread_e = math.exp(k * math.sqrt(var_e) / eta)
    return WeibullFit(
        beta=b,
        eta=eta,
        beta_lower=b / spread_b,
        beta_upper=b * spread_b,
        eta_lower=eta / spread_e,
        eta_upper=eta * spread_e,
        confidence=cl,
        failures=r,
        suspensions=len(flags) - r,
        log_likelihood=log_likelihood,
        var_beta=var_b,
        var_eta=var_e,
        cov_beta_eta=cov_be,
        shape_fixed=fixed_shape is not None,
    )


def weibull_plot_points(times: Sequence[float], failed: Sequence[bool]) -> list[tuple[float, float]]:
    """Return (time, median rank) for each failure, for a Weibull probability plot.

    Ranks are Johnson's adjusted ranks (mean order numbers) when suspensions exist,
    j = (reverse rank · previous j + N + 1) / (reverse rank + 1), and the median rank is
    Bernard's approximation (j − 0.3) / (N + 0.4). At equal times a failure is ranked before a
    suspension (the suspended unit is taken to have outlived it).
    """
    time_list, flags = _check.life_data(times, failed)
    n = len(time_list)
    order = sorted(range(n), key=lambda i: (time_list[i], not flags[i]))
    points: list[tuple[float, float]] = []
    previous_rank = 0.0
    for position, i in enumerate(order):
        if not flags[i]:
            continue
        reverse_rank = n - position
        previous_rank = (reverse_rank * previous_rank + n + 1) / (reverse_rank + 1)
        points.append((time_list[i], (previous_rank - 0.3) / (n + 0.4)))
    return points
