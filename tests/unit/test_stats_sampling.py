"""Check the lot failure-fraction bounds and LTPD sample sizes of qualify.stats."""

from collections.abc import Callable

import pytest
from scipy.stats import binom

from qualify.stats import (
    ffr_upper_bound,
    sample_size,
    sample_size_poisson,
    zero_failure_sample_size,
)


@pytest.mark.parametrize(
    ("failures", "published_percent"),
    # samplingplans.com forum ("Question re LTPD"): n = 100, one-sided 90 % upper limits
    # 2.28, 3.83, 5.23, 6.56 % defective for 0, 1, 2, 3 defectives.
    [(0, 2.28), (1, 3.83), (2, 5.23), (3, 6.56)],
)
def test_clopper_pearson_bound_matches_published_limits(failures: int, published_percent: float) -> None:
    assert 100 * ffr_upper_bound(failures, 100, 0.9) == pytest.approx(published_percent, abs=0.005)


def test_zero_failure_bound_has_closed_form() -> None:
    # With f = 0 the exact bound is 1 − (1 − CL)^(1/n).
    assert ffr_upper_bound(0, 31, 0.6) == pytest.approx(1 - 0.4 ** (1 / 31), rel=1e-12)


@pytest.mark.parametrize(("failures", "n"), [(0, 50), (2, 50), (7, 400), (1, 3)])
def test_bound_is_where_acceptance_probability_equals_risk(failures: int, n: int) -> None:
    p_upper = ffr_upper_bound(failures, n, 0.6)
    assert binom.cdf(failures, n, p_upper) == pytest.approx(0.4, rel=1e-9)


def test_bound_is_one_when_every_unit_failed_and_falls_with_sample_size() -> None:
    assert ffr_upper_bound(5, 5, 0.9) == 1.0
    assert ffr_upper_bound(1, 100, 0.9) < ffr_upper_bound(1, 50, 0.9)


def test_jesd218_ffr_three_percent_at_sixty_percent_needs_31_drives() -> None:
    # Brief: FFR ≤ 3 % (JESD218, both classes) shown at 60 % with no failure → 31 drives.
    assert zero_failure_sample_size(0.03, 0.6) == 31
    # 31 drives with no failure do bound FFR below 3 %; 30 would not.
    assert ffr_upper_bound(0, 31, 0.6) <= 0.03 < ffr_upper_bound(0, 30, 0.6)


def test_ltpd_one_percent_at_ninety_percent_needs_230() -> None:
    # Brief: LTPD 1 % at 90 % → ln(0.1)/ln(0.99) = 229.1 → 230.
    assert zero_failure_sample_size(0.01, 0.9) == 230


@pytest.mark.parametrize(
    ("failures", "table_n"),
    # Classic LTPD table (MIL-PRF-19500 / MIL-PRF-38535 sampling table), LTPD 10 % at 90 %:
    # acceptance number 0 → 22 units, 1 → 38 units.
    [(0, 22), (1, 38)],
)
def test_sample_size_matches_ltpd_table(failures: int, table_n: int) -> None:
    assert sample_size(0.10, 0.9, failures) == table_n


def test_zero_failure_closed_form_agrees_with_binomial_search() -> None:
    for ltpd in (0.5, 0.2, 0.1, 0.05, 0.03, 0.01, 0.005, 0.001):
        for confidence in (0.5, 0.6, 0.9, 0.95, 0.99):
            assert zero_failure_sample_size(ltpd, confidence) == sample_size(ltpd, confidence, 0)


@pytest.mark.parametrize(
    ("ltpd", "confidence", "n"),
    # Each confidence is 1 − (1 − ltpd)^n exactly in binary, so n units sit on the limit;
    # ln(1 − CL)/ln(1 − p) lands a rounding error above n for the LTPD 25 % cases.
    [(0.5, 0.75, 2), (0.5, 0.875, 3), (0.25, 0.578125, 3), (0.25, 0.822021484375, 6)],
)
def test_sample_size_on_an_exact_boundary_is_not_rounded_up(ltpd: float, confidence: float, n: int) -> None:
    assert zero_failure_sample_size(ltpd, confidence) == n
    assert sample_size(ltpd, confidence, 0) == n


@pytest.mark.parametrize(
    ("ltpd", "confidence", "failures"),
    [(0.1, 0.9, 2), (0.03, 0.6, 1), (0.01, 0.9, 3), (0.2, 0.95, 5), (0.001, 0.6, 0)],
)
def test_sample_size_is_the_smallest_that_works(ltpd: float, confidence: float, failures: int) -> None:
    n = sample_size(ltpd, confidence, failures)
    assert binom.cdf(failures, n, ltpd) <= 1 - confidence
    assert binom.cdf(failures, n - 1, ltpd) > 1 - confidence


def test_poisson_sample_size_matches_jesd47_three_lots_of_77() -> None:
    # JESD47 HTOL: 3 lots × 77 = 231 units, 0 failures (REFERENCE.md), the LTPD 1 % / 90 %
    # plan: χ²(0.9; 2)/(2 · 0.01) = 230.26 → 231, one more than the exact binomial 230.
    assert sample_size_poisson(0.01, 0.9) == 231
    assert sample_size(0.01, 0.9) == 230
    assert sample_size_poisson(0.10, 0.9) == 24
    assert sample_size_poisson(0.03, 0.6) == 31


def test_poisson_size_is_never_below_binomial_size_in_ltpd_range() -> None:
    for ltpd in (0.2, 0.1, 0.05, 0.01, 0.001):
        for confidence in (0.6, 0.9, 0.95):
            for failures in range(5):
                exact = sample_size(ltpd, confidence, failures)
                assert sample_size_poisson(ltpd, confidence, failures) >= exact


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ffr_upper_bound(3, 2, 0.6), "exceed"),
        (lambda: ffr_upper_bound(0, 0, 0.6), "sample_size"),
        (lambda: ffr_upper_bound(-1, 10, 0.6), "failures"),
        (lambda: ffr_upper_bound(0, 10, 1.5), "confidence"),
        (lambda: zero_failure_sample_size(0.0, 0.6), "ltpd"),
        (lambda: zero_failure_sample_size(1.0, 0.6), "ltpd"),
        (lambda: zero_failure_sample_size(3.0, 0.6), "ltpd"),
        (lambda: zero_failure_sample_size(0.03, 0.0), "confidence"),
        (lambda: sample_size(0.1, 0.9, -1), "failures"),
        (lambda: sample_size(-0.1, 0.9, 0), "ltpd"),
        (lambda: sample_size_poisson(0.1, 1.0, 0), "confidence"),
    ],
)
def test_sampling_functions_reject_bad_inputs(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
