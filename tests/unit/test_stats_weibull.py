"""Check the censored Weibull MLE, its Fisher bounds and the median-rank plotting points."""

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import beta as beta_dist
from scipy.stats import norm, weibull_min

from qualify.stats import weibull_fit, weibull_plot_points, weibull_unreliability

# Kececioglu's six failures, used by ReliaWiki "Weibull Parameter Estimation" (Example 1/MLE).
KECECIOGLU_TIMES = [16.0, 34.0, 53.0, 75.0, 93.0, 120.0]

# NIST/SEMATECH e-Handbook 8.4.1.3: ten failures, ten units removed unfailed at 500 h.
NIST_TIMES = [54.0, 187.0, 216.0, 240.0, 244.0, 335.0, 361.0, 373.0, 375.0, 386.0] + [500.0] * 10
NIST_FAILED = [True] * 10 + [False] * 10


def _log_likelihood(times: list[float], failed: list[bool], beta: float, eta: float) -> float:
    # Independent censored log-likelihood from scipy: log pdf for failures, log sf for suspensions.
    t = np.asarray(times)
    f = np.asarray(failed)
    dist = weibull_min(beta, scale=eta)
    return float(dist.logpdf(t[f]).sum() + dist.logsf(t[~f]).sum())


def test_mle_matches_reliawiki_complete_data_example() -> None:
    # ReliaWiki Weibull MLE example: β = 1.933, η = 73.526;
    # Var(β) = 0.4211, Cov(β, η) = 3.272, Var(η) = 266.646 from the local Fisher matrix.
    fit = weibull_fit(KECECIOGLU_TIMES, [True] * 6)
    assert fit.beta == pytest.approx(1.933, abs=5e-4)
    assert fit.eta == pytest.approx(73.526, abs=5e-4)
    assert fit.var_beta == pytest.approx(0.4211, abs=5e-5)
    assert fit.cov_beta_eta == pytest.approx(3.272, abs=5e-4)
    assert fit.var_eta == pytest.approx(266.646, abs=5e-3)
    assert (fit.failures, fit.suspensions, fit.shape_fixed) == (6, 0, False)


def test_mle_matches_nist_censored_example() -> None:
    # NIST e-Handbook 8.4.1.3: η = 606.5280, β = 1.7208, log-likelihood −75.135.
    fit = weibull_fit(NIST_TIMES, NIST_FAILED)
    assert fit.eta == pytest.approx(606.5280, abs=5e-3)
    assert fit.beta == pytest.approx(1.7208, abs=5e-4)
    assert fit.log_likelihood == pytest.approx(-75.135, abs=5e-4)
    assert (fit.failures, fit.suspensions) == (10, 10)


def test_suspensions_are_used_not_dropped_or_counted_as_failures() -> None:
    censored = weibull_fit(NIST_TIMES, NIST_FAILED)
    dropped = weibull_fit(NIST_TIMES[:10], NIST_FAILED[:10])
    as_failures = weibull_fit(NIST_TIMES, [True] * 20)
    # Ignoring the survivors makes the part look far worse than it is.
    assert dropped.eta < 0.6 * censored.eta
    assert as_failures.eta < censored.eta
    assert censored.log_likelihood == pytest.approx(
        _log_likelihood(NIST_TIMES, NIST_FAILED, censored.beta, censored.eta), rel=1e-10
    )


def test_fit_is_a_maximum_of_the_independent_likelihood() -> None:
    times = [120.0, 340.0, 560.0, 800.0, 1000.0, 1000.0, 1000.0]
    failed = [True, True, False, True, False, False, False]
    fit = weibull_fit(times, failed)
    best = _log_likelihood(times, failed, fit.beta, fit.eta)
    for d_beta, d_eta in [(0.01, 0), (-0.01, 0), (0, 1.0), (0, -1.0), (0.01, 1.0)]:
        assert _log_likelihood(times, failed, fit.beta + d_beta, fit.eta + d_eta) < best


def test_fixed_shape_one_gives_exponential_closed_form() -> None:
    # With β = 1 the MLE is η = total time on test / failures (censored exponential).
    times = [120.0, 340.0, 560.0, 800.0, 1000.0]
    failed = [True, True, False, True, False]
    fit = weibull_fit(times, failed, shape=1.0)
    assert fit.eta == pytest.approx(sum(times) / 3, rel=1e-12)
    assert fit.beta == 1.0
    assert fit.shape_fixed
    # With β fixed, Var(η) = η² / (r β²).
    assert fit.var_eta == pytest.approx(fit.eta**2 / 3, rel=1e-9)
    assert fit.beta_lower == fit.beta_upper == 1.0


def test_fixed_shape_uses_the_weibayes_closed_form() -> None:
    times = [500.0, 700.0, 900.0, 1000.0]
    fit = weibull_fit(times, [True, False, True, False], shape=2.0)
    assert fit.eta == pytest.approx(math.sqrt(sum(t**2 for t in times) / 2), rel=1e-12)


def test_fisher_bounds_follow_the_log_transform_formula() -> None:
    fit = weibull_fit(KECECIOGLU_TIMES, [True] * 6, confidence=0.9)
    k = norm.ppf(0.95)
    assert fit.beta_upper == pytest.approx(fit.beta * math.exp(k * math.sqrt(0.4211) / 1.933), 1e-3)
    assert fit.beta_lower == pytest.approx(fit.beta / math.exp(k * math.sqrt(0.4211) / 1.933), 1e-3)
    assert fit.eta_upper == pytest.approx(fit.eta * math.exp(k * math.sqrt(266.646) / 73.526), 1e-3)
    assert fit.eta_lower == pytest.approx(fit.eta / math.exp(k * math.sqrt(266.646) / 73.526), 1e-3)
    wider = weibull_fit(KECECIOGLU_TIMES, [True] * 6, confidence=0.95)
    assert wider.beta_lower < fit.beta_lower < fit.beta < fit.beta_upper < wider.beta_upper
    assert wider.eta_lower < fit.eta_lower < fit.eta < fit.eta_upper < wider.eta_upper


def test_simulated_censored_sample_recovers_known_parameters() -> None:
    rng = np.random.default_rng(20240601)
    true_beta, true_eta, stop_h = 2.5, 1000.0, 1200.0
    lives = true_eta * rng.weibull(true_beta, size=3000)
    failed = [bool(x) for x in lives < stop_h]
    times = [float(x) for x in np.minimum(lives, stop_h)]
    assert 0 < sum(failed) < len(failed)  # the sample really is censored
    fit = weibull_fit(times, failed, confidence=0.99)
    assert fit.beta == pytest.approx(true_beta, rel=0.05)
    assert fit.eta == pytest.approx(true_eta, rel=0.03)
    assert fit.beta_lower < true_beta < fit.beta_upper
    assert fit.eta_lower < true_eta < fit.eta_upper


def test_single_failure_with_a_longer_suspension_is_fitted() -> None:
    fit = weibull_fit([100.0, 400.0], [True, False])
    assert fit.failures == 1
    assert math.isfinite(fit.beta)
    assert math.isfinite(fit.eta)


def test_unreliability_matches_scipy_and_is_63_percent_at_eta() -> None:
    for beta in (0.5, 1.0, 3.0):
        assert weibull_unreliability(1000.0, beta, 1000.0) == pytest.approx(1 - math.exp(-1))
        assert weibull_unreliability(250.0, beta, 1000.0) == pytest.approx(
            weibull_min.cdf(250.0, beta, scale=1000.0), rel=1e-12
        )
    assert weibull_unreliability(0.0, 2.0, 1000.0) == 0.0


def test_plot_points_match_kececioglu_multiply_censored_example() -> None:
    # ReliaWiki "Median Rank for Multiple Censored Data" (Kececioglu, Reliability & Life Testing
    # Handbook vol. 2, table 3.1): F 5100, S 9500, F 15000, S 22000, F 40000 → median ranks
    # 12.94 %, 36.1 %, 70.84 % (exact beta ranks; Bernard's approximation is within 0.05 %).
    points = weibull_plot_points(
        [5100.0, 9500.0, 15000.0, 22000.0, 40000.0], [True, False, True, False, True]
    )
    assert [t for t, _ in points] == [5100.0, 15000.0, 40000.0]
    published = [0.1294, 0.361, 0.7084]
    for (_, rank), expected in zip(points, published, strict=True):
        assert rank == pytest.approx(expected, abs=5e-4)
    # Johnson's mean order numbers 1, 2.25, 4.125 (hand computed) through Bernard's formula.
    for (_, rank), order in zip(points, [1.0, 2.25, 4.125], strict=True):
        assert rank == pytest.approx((order - 0.3) / 5.4, rel=1e-12)


def test_plot_points_without_suspensions_are_bernard_ranks() -> None:
    points = weibull_plot_points(list(reversed(KECECIOGLU_TIMES)), [True] * 6)
    assert [t for t, _ in points] == KECECIOGLU_TIMES
    for i, (_, rank) in enumerate(points, start=1):
        assert rank == pytest.approx((i - 0.3) / 6.4, rel=1e-12)
        # Bernard approximates the exact median rank Beta⁻¹(0.5; i, n − i + 1) closely.
        assert rank == pytest.approx(beta_dist.ppf(0.5, i, 6 - i + 1), abs=2e-3)


def test_plot_points_rank_a_failure_before_a_suspension_at_the_same_time() -> None:
    points = weibull_plot_points([100.0, 100.0, 200.0], [False, True, True])
    assert points[0] == (100.0, pytest.approx(0.7 / 3.4))
    # After the failure at rank 1, the suspension (reverse rank 2) lifts the next rank to 2.5.
    assert points[1] == (200.0, pytest.approx((2.5 - 0.3) / 3.4))


def test_plot_points_are_empty_when_nothing_failed() -> None:
    assert weibull_plot_points([10.0, 20.0], [False, False]) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: weibull_fit([10.0, 20.0], [False, False]), "at least one failure"),
        (lambda: weibull_fit([10.0, 20.0], [True]), "same length"),
        (lambda: weibull_fit([], []), "at least one"),
        (lambda: weibull_fit([10.0, -1.0], [True, True]), r"times\[1\]"),
        (lambda: weibull_fit([10.0, 20.0], [1, 0]), r"failed\[0\]"),
        (lambda: weibull_fit([50.0, 50.0, 50.0], [True, True, True]), "does not exist"),
        (lambda: weibull_fit([50.0], [True]), "does not exist"),
        (lambda: weibull_fit([10.0, 20.0], [True, True], confidence=0.0), "confidence"),
        (lambda: weibull_fit([10.0, 20.0], [True, True], shape=0.0), "shape"),
        (lambda: weibull_unreliability(-1.0, 2.0, 10.0), "t "),
        (lambda: weibull_unreliability(1.0, 0.0, 10.0), "beta"),
        (lambda: weibull_unreliability(1.0, 2.0, -10.0), "eta"),
        (lambda: weibull_plot_points([1.0], [True, False]), "same length"),
    ],
)
def test_weibull_functions_reject_bad_inputs(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
