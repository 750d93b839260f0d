"""Check SNIA PTS steady-state detection on sequences built to meet or miss each criterion."""

from typing import Any

import numpy as np
import pytest

from qualify.stats import steady_state


def test_flat_window_is_steady_at_the_fifth_round() -> None:
    result = steady_state([100.0, 102.0, 98.0, 101.0, 99.0])
    assert result.reached
    assert result.round_index == 4
    assert result.window_average == pytest.approx(100.0)
    assert result.max_min_range == pytest.approx(4.0)
    assert result.slope == pytest.approx(-0.3)
    assert result.slope_excursion == pytest.approx(1.2)


def test_preconditioning_decay_reaches_steady_state_at_the_first_good_window() -> None:
    # Window ending at index 7, [120, 110, 100, 101, 99]: range 21 <= 21.2 but the fitted line
    # drops 20.4 > 10.6. Window ending at 8, [110, 100, 101, 99, 100]: average 102, range 11,
    # slope −2.1 per round, excursion 8.4 <= 10.2: steady.
    values = [200.0, 170.0, 140.0, 120.0, 110.0, 100.0, 101.0, 99.0, 100.0, 100.0]
    result = steady_state(values)
    assert result.reached
    assert result.round_index == 8
    assert result.window_average == pytest.approx(102.0)
    assert result.max_min_range == pytest.approx(11.0)
    assert result.slope == pytest.approx(-2.1)
    assert result.slope_excursion == pytest.approx(8.4)


def test_range_criterion_alone_can_fail() -> None:
    # One spike: the least-squares slope is 0 but max − min = 25 > 20 % of 105.
    result = steady_state([100.0, 100.0, 125.0, 100.0, 100.0])
    assert not result.reached
    assert result.round_index is None
    assert result.slope == pytest.approx(0.0, abs=1e-12)
    assert result.max_min_range == pytest.approx(25.0)


def test_slope_criterion_alone_can_fail() -> None:
    # Steady ramp: range 16 <= 20 % of 100, but the line rises 4/round, 16 > 10 % of 100.
    result = steady_state([92.0, 96.0, 100.0, 104.0, 108.0])
    assert not result.reached
    assert result.max_min_range == pytest.approx(16.0)
    assert result.slope_excursion == pytest.approx(16.0)


def test_both_criteria_failing_reports_the_latest_window() -> None:
    result = steady_state([10.0, 50.0, 150.0, 50.0, 150.0, 200.0])
    assert not result.reached
    assert result.window_average == pytest.approx(np.mean([50.0, 150.0, 50.0, 150.0, 200.0]))


def test_range_limit_is_inclusive_and_just_above_it_fails() -> None:
    # [90, 110, 100, 100, 100]: average 100, range exactly 20 = 20 %; slope excursion 4.
    assert steady_state([90.0, 110.0, 100.0, 100.0, 100.0]).reached
    assert not steady_state([89.9, 110.0, 100.0, 100.0, 100.0]).reached
    # Range 1.4 = 20 % of 7 on paper, but 7.7 − 6.3 rounds a hair above 0.2 · 7 in binary.
    assert steady_state([6.3, 7.7, 7.0, 7.0, 7.0]).reached


def test_slope_limit_is_inclusive_and_just_above_it_fails() -> None:
    # [95, 97.5, 100, 102.5, 105]: slope 2.5/round, excursion 10 = 10 % of 100.
    assert steady_state([95.0, 97.5, 100.0, 102.5, 105.0]).reached
    assert not steady_state([94.9, 97.5, 100.0, 102.5, 105.1]).reached


def test_slope_is_the_least_squares_fit() -> None:
    # Not steady (range 60 > 20 % of ~210), so the figures describe the last five rounds.
    values = [310.0, 305.0, 180.0, 240.0, 215.0, 175.0, 230.0]
    result = steady_state(values)
    assert not result.reached
    fitted_slope, _ = np.polyfit(np.arange(5.0), values[-5:], 1)
    assert result.slope == pytest.approx(fitted_slope, rel=1e-9)
    assert result.slope_excursion == pytest.approx(abs(fitted_slope) * 4, rel=1e-9)


def test_custom_window_and_limits() -> None:
    values = [100.0, 108.0, 100.0, 100.0, 100.0]
    assert steady_state(values, window=3).round_index == 2
    # A 5 % range limit waits until the 108 has left the 3-round window.
    assert steady_state(values, window=3, excursion=0.05).round_index == 4
    assert not steady_state(values, window=4, excursion=0.05).reached
    # [100, 102, 104]: line excursion 4 is within 10 % of 102 but not within 3 %.
    assert steady_state([100.0, 102.0, 104.0], window=3).reached
    assert not steady_state([100.0, 102.0, 104.0], window=3, slope_excursion=0.03).reached


def test_all_zero_rounds_count_as_steady() -> None:
    assert steady_state([0.0] * 5).reached


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": [1.0, 2.0, 3.0]}, "at least 5 rounds"),
        ({"values": [1.0] * 5, "window": 1}, "window"),
        ({"values": [1.0] * 5, "window": 2.5}, "window"),
        ({"values": [1.0] * 5, "excursion": 0.0}, "excursion"),
        ({"values": [1.0] * 5, "slope_excursion": -0.1}, "slope_excursion"),
        ({"values": [1.0, 1.0, -1.0, 1.0, 1.0]}, r"values\[2\]"),
        ({"values": [1.0, 1.0, float("nan"), 1.0, 1.0]}, r"values\[2\]"),
    ],
)
def test_steady_state_rejects_bad_inputs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        steady_state(**kwargs)
