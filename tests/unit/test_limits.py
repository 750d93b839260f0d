"""Limit judging: pass, marginal band, fail, equality and missing values."""

from __future__ import annotations

import math

import pytest

from qualify.actions.base import Reading
from qualify.engine.limits import describe_violation, in_window, judge
from qualify.plans.schema import Limit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50.0, "pass"),
        (10.0, "fail"),
        (91.0, "fail"),
        (21.0, "marginal"),
        (88.5, "marginal"),
        (20.0, "marginal"),
        (90.0, "marginal"),
        (math.nan, "fail"),
    ],
)
def test_window_with_marginal_band(value: float, expected: str) -> None:
    limit = Limit(low=20.0, high=90.0, marginal=2.0)
    assert judge(Reading("x", value), limit) == expected


def test_no_limit_passes_and_missing_value_fails() -> None:
    assert judge(Reading("x", 1e9), None) == "pass"
    assert judge(Reading("x", None), Limit(high=1.0)) == "fail"


def test_equality_on_text_and_numbers() -> None:
    assert judge(Reading("fw", text="QS010101"), Limit(eq="QS010101")) == "pass"
    assert judge(Reading("fw", text="QS010102"), Limit(eq="QS010101")) == "fail"
    assert judge(Reading("n", 0.0), Limit(eq=0)) == "pass"
    assert judge(Reading("n", 1.0), Limit(eq=0)) == "fail"


def test_violation_text() -> None:
    assert (
        describe_violation(Reading("temp_c", 91.25, unit="°C"), Limit(high=85))
        == "temp_c = 91.25 °C > high 85"
    )
    assert describe_violation(Reading("i", 0.1, unit="A"), Limit(low=0.2)) == "i = 0.1 A < low 0.2"


def test_until_window() -> None:
    assert in_window(5.0, 0.0, 10.0, None)
    assert not in_window(11.0, 0.0, 10.0, None)
    assert not in_window(None, 0.0, None, None)
    assert in_window("ok", None, None, "ok")
