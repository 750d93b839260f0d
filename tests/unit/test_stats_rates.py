"""Check the chi-square rate bounds (FIT, UBER) of qualify.stats against published figures."""

from collections.abc import Callable
from typing import Any, cast

import pytest

from qualify.stats import (
    arrhenius_af,
    bits_for_uber,
    chi2_upper_rate,
    fit_rate,
    uber_upper_bound,
)

# χ²(CL; 2r + 2) by failures r, from the chi-square table in the Freescale (Motorola)
# MMA1250D data sheet reliability section; the same values appear in every χ² table.
CHI2_60 = [1.833, 4.045, 6.211, 8.351, 10.473]
CHI2_90 = [4.605, 7.779, 10.645, 13.362]


@pytest.mark.parametrize(("events", "table_value"), list(enumerate(CHI2_60)))
def test_chi2_quantiles_at_60_percent_match_table(events: int, table_value: float) -> None:
    # With exposure 0.5 the bound χ²/(2X) is the χ² quantile itself.
    assert chi2_upper_rate(events, 0.5, 0.6) == pytest.approx(table_value, abs=1e-3)


@pytest.mark.parametrize(("events", "table_value"), list(enumerate(CHI2_90)))
def test_chi2_quantiles_at_90_percent_match_table(events: int, table_value: float) -> None:
    assert chi2_upper_rate(events, 0.5, 0.9) == pytest.approx(table_value, abs=1e-3)


def test_chi2_two_degree_values_to_four_decimals() -> None:
    # Standard χ² table: χ²(0.60; 2) = 1.8326, χ²(0.90; 2) = 4.6052.
    assert chi2_upper_rate(0, 0.5, 0.6) == pytest.approx(1.8326, abs=5e-5)
    assert chi2_upper_rate(0, 0.5, 0.9) == pytest.approx(4.6052, abs=5e-5)


def test_fit_matches_freescale_device_hour_example() -> None:
    # Freescale MMA1250D data sheet: 1000 parts × 500 h = 500,000 device-hours with no failure
    # gives 1,833 FIT at 60 %; 5,000,000 device-hours gives 183 FIT.
    assert fit_rate(0, 1000, 500.0, 0.6) == pytest.approx(1833.0, rel=5e-4)
    assert fit_rate(0, 500_000, 10.0, 0.6) == pytest.approx(183.3, rel=5e-4)


def test_fit_matches_fox_electronics_worked_example() -> None:
    # Fox Electronics FXO-HC33: 360 parts × 2000 h at 125 °C, 0 failures, Ea 0.40 eV, 25 °C use,
    # 60 % → failure rate 2.55e-8 /h, i.e. 25.5 FIT (printed rounded as 26).
    af = arrhenius_af(0.40, 25.0, 125.0)
    assert fit_rate(0, 360, 2000.0, 0.6, af=af) == pytest.approx(25.5, rel=2e-3)


def test_fit_matches_ecs_worked_example() -> None:
    # ECS ECX-31B note: 300 units × 2000 h at 85 °C, 0 failures, 60 % → 1,528 FIT at 85 °C;
    # divided by AF 69.6 → 21.9 FIT at 25 °C.
    assert fit_rate(0, 300, 2000.0, 0.6) == pytest.approx(1528.0, rel=1e-3)
    assert fit_rate(0, 300, 2000.0, 0.6, af=69.6) == pytest.approx(21.9, abs=0.05)


def test_fit_matches_ti_htol_example_within_its_rounding() -> None:
    # TI E2E forum (TL084, SPRABY3): 231 units, 1000 h HTOL at 125 °C, 0 failures, Ea 0.7 eV,
    # 55 °C, 60 % → "about 50.5 FIT" (the asker got 50.9; the exact form gives 51.1).
    af = arrhenius_af(0.7, 55.0, 125.0)
    assert fit_rate(0, 231, 1000.0, 0.6, af=af) == pytest.approx(50.5, rel=0.02)


def test_fit_closed_form_with_failures() -> None:
    # χ²(0.9; 4) = 7.779 (table above); 77 × 3 units, 1000 h, 1 failure, AF 10.
    expected = 7.779 / (2 * 231 * 1000.0 * 10.0) * 1e9
    assert fit_rate(1, 231, 1000.0, 0.9, af=10.0) == pytest.approx(expected, rel=1e-4)


def test_fit_falls_with_acceleration_and_rises_with_failures() -> None:
    base = fit_rate(0, 100, 1000.0, 0.6)
    assert fit_rate(0, 100, 1000.0, 0.6, af=2.0) == pytest.approx(base / 2.0)
    assert fit_rate(1, 100, 1000.0, 0.6) > base
    assert fit_rate(0, 100, 1000.0, 0.9) > base


def test_bits_for_uber_enterprise_limit_at_60_percent() -> None:
    # Brief / JESD218 enterprise UBER 1e-16 shown at 60 % with no error: ≈ 9.16e15 bits.
    assert bits_for_uber(1e-16, 0.6) == pytest.approx(9.163e15, rel=1e-3)
    # Client class, 1e-15: ten times fewer bits.
    assert bits_for_uber(1e-15, 0.6) == pytest.approx(9.163e14, rel=1e-3)


def test_bits_for_uber_with_errors_uses_more_degrees_of_freedom() -> None:
    # χ²(0.6; 4) = 4.045 → 4.045 / (2 · 1e-16) bits with one error allowed.
    assert bits_for_uber(1e-16, 0.6, errors=1) == pytest.approx(4.045 / 2e-16, rel=1e-3)


def test_uber_bound_round_trips_bits_for_uber() -> None:
    bits = bits_for_uber(1e-16, 0.6, errors=2)
    assert uber_upper_bound(2, bits, 0.6) == pytest.approx(1e-16, rel=1e-12)
    assert uber_upper_bound(3, bits, 0.6) > 1e-16


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: chi2_upper_rate(-1, 1.0, 0.6), "events"),
        (lambda: chi2_upper_rate(cast(Any, 1.5), 1.0, 0.6), "events"),
        (lambda: chi2_upper_rate(True, 1.0, 0.6), "events"),
        (lambda: chi2_upper_rate(0, 0.0, 0.6), "exposure"),
        (lambda: chi2_upper_rate(0, 1.0, 1.0), "confidence"),
        (lambda: chi2_upper_rate(0, 1.0, 0.0), "confidence"),
        (lambda: chi2_upper_rate(0, 1.0, 60), "confidence"),
        (lambda: fit_rate(0, 0, 1000.0, 0.6), "devices"),
        (lambda: fit_rate(0, 10, 0.0, 0.6), "hours"),
        (lambda: fit_rate(0, 10, 10.0, 0.6, af=0.0), "af"),
        (lambda: fit_rate(-1, 10, 10.0, 0.6), "failures"),
        (lambda: uber_upper_bound(0, -1.0, 0.6), "bits_read"),
        (lambda: uber_upper_bound(-2, 1e15, 0.6), "bit_errors"),
        (lambda: bits_for_uber(0.0, 0.6), "uber_limit"),
        (lambda: bits_for_uber(1e-16, 0.6, errors=-1), "errors"),
        (lambda: bits_for_uber(1e-16, float("nan")), "confidence"),
    ],
)
def test_rate_functions_reject_bad_inputs(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
