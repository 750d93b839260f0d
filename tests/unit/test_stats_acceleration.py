"""Check the Arrhenius helpers of qualify.stats against the closed form and published factors."""

import math

import pytest

from qualify.stats import BOLTZMANN_EV_PER_K, arrhenius_af, bake_hours_for, equivalent_hours


def test_boltzmann_constant_is_codata_2018() -> None:
    # CODATA 2018 / SI 2019: k = 8.617333262e-5 eV/K (exact).
    assert BOLTZMANN_EV_PER_K == 8.617333262e-5


def test_jesd218_enterprise_retention_bake_factor_at_66c() -> None:
    # REFERENCE.md / brief: a bake of t hours at 66 °C ≈ 22.8 × t hours at 40 °C with Ea 1.1 eV
    # (JESD218 enterprise power-off retention is 3 months at 40 °C).
    af = arrhenius_af(1.1, use_temp_c=40.0, stress_temp_c=66.0)
    closed_form = math.exp(1.1 / 8.617333262e-5 * (1.0 / 313.15 - 1.0 / 339.15))
    assert af == pytest.approx(closed_form, rel=1e-12)
    assert af == pytest.approx(22.8, abs=0.05)


@pytest.mark.parametrize(
    ("stress_temp_c", "published_af"),
    [
        # Analog Devices, "Details of reliability calculations" (Ea 0.7 eV, use 55 °C):
        # 150 °C → 258, 135 °C → 128, 125 °C → 77, 85 °C → 8 (their figures are rounded).
        (150.0, 258.0),
        (135.0, 128.0),
        (125.0, 77.0),
        (85.0, 8.0),
    ],
)
def test_af_matches_analog_devices_table(stress_temp_c: float, published_af: float) -> None:
    assert arrhenius_af(0.7, 55.0, stress_temp_c) == pytest.approx(published_af, rel=0.01)


def test_af_matches_fox_electronics_worked_example() -> None:
    # Fox Electronics FXO-HC33 MTTF/FITS sheet: Ea 0.40 eV, 25 °C use, 125 °C test → AF 49.91.
    assert arrhenius_af(0.40, 25.0, 125.0) == pytest.approx(49.91, rel=1e-3)


def test_af_matches_ecs_worked_example_with_its_integer_kelvins() -> None:
    # ECS ECX-31B failure-rate note: Ea 0.65 eV, T0 = 298 K, T1 = 358 K → AF 69.6.
    assert arrhenius_af(0.65, 298.0 - 273.15, 358.0 - 273.15) == pytest.approx(69.6, abs=0.05)


def test_af_is_one_at_equal_temperatures_and_below_one_when_colder() -> None:
    assert arrhenius_af(0.7, 55.0, 55.0) == pytest.approx(1.0, abs=1e-15)
    assert arrhenius_af(0.7, 55.0, 25.0) < 1.0
    assert arrhenius_af(0.7, 55.0, 25.0) == pytest.approx(1.0 / arrhenius_af(0.7, 25.0, 55.0))


def test_af_with_zero_activation_energy_is_one() -> None:
    assert arrhenius_af(0.0, 25.0, 125.0) == 1.0


def test_equivalent_hours_scales_stress_hours_by_af() -> None:
    af = arrhenius_af(0.7, 55.0, 125.0)
    assert equivalent_hours(1000.0, 0.7, stress_temp_c=125.0, use_temp_c=55.0) == pytest.approx(1000.0 * af)


def test_bake_hours_for_jesd218_enterprise_retention() -> None:
    # 3 months ≈ 2190 h at 40 °C; at AF 22.76 the 66 °C bake is about 96 h.
    retention_h = 3 * 730.0
    bake_h = bake_hours_for(retention_h, 1.1, use_temp_c=40.0, bake_temp_c=66.0)
    assert bake_h == pytest.approx(retention_h / arrhenius_af(1.1, 40.0, 66.0), rel=1e-12)
    assert bake_h == pytest.approx(96.2, abs=0.1)


def test_bake_hours_round_trips_through_equivalent_hours() -> None:
    bake_h = bake_hours_for(8760.0, 1.1, use_temp_c=30.0, bake_temp_c=85.0)
    assert equivalent_hours(bake_h, 1.1, stress_temp_c=85.0, use_temp_c=30.0) == pytest.approx(8760.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ea_ev": -0.1, "use_temp_c": 25.0, "stress_temp_c": 125.0}, "ea_ev"),
        ({"ea_ev": 0.7, "use_temp_c": -274.0, "stress_temp_c": 125.0}, "use_temp_c"),
        ({"ea_ev": 0.7, "use_temp_c": 25.0, "stress_temp_c": -273.15}, "stress_temp_c"),
        ({"ea_ev": float("nan"), "use_temp_c": 25.0, "stress_temp_c": 125.0}, "ea_ev"),
        ({"ea_ev": 0.7, "use_temp_c": float("inf"), "stress_temp_c": 125.0}, "use_temp_c"),
    ],
)
def test_arrhenius_af_rejects_bad_inputs(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        arrhenius_af(**kwargs)


def test_hour_helpers_reject_negative_hours() -> None:
    with pytest.raises(ValueError, match="hours_at_stress"):
        equivalent_hours(-1.0, 0.7, 125.0, 55.0)
    with pytest.raises(ValueError, match="retention_hours_at_use"):
        bake_hours_for(-1.0, 1.1, 40.0, 66.0)
