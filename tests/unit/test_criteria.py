"""Lot criteria against closed forms: FFR, UBER, FIT, yield, worst-DUT limits, and plan checks."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2

from qualify.engine.checks import check_actions
from qualify.engine.criteria import evaluate_criteria
from qualify.errors import InputError
from qualify.plans.loader import parse_plan
from qualify.plans.schema import Criterion


def _one(
    c: Criterion, verdicts: dict[str, str], data: dict[tuple[str, str], dict[str, list[float]]] | None = None
):
    rows = evaluate_criteria([c], verdicts, "L1", (lambda s, m: (data or {}).get((s, m), {})))
    assert len(rows) == 1
    return rows[0]


def test_ffr_31_drives_no_failure_meets_3_percent_at_60_percent() -> None:
    # JESD218: FFR 3 % at 60 % confidence with no failure needs 31 drives; 30 is not enough.
    c = Criterion(name="ffr", kind="ffr", limit=0.03, confidence=0.6)
    row = _one(c, {f"D{i}": "pass" for i in range(31)})
    assert row["verdict"] == "pass"
    assert math.isclose(row["value"], 1 - 0.4 ** (1 / 31), rel_tol=1e-9)  # zero-failure closed form
    assert _one(c, {f"D{i}": "pass" for i in range(30)})["verdict"] == "fail"


def test_uber_needs_about_9_2e15_bits_without_error() -> None:
    c = Criterion(name="uber", kind="uber", limit=1e-16, errors="verify.bit_errors", bits="verify.bits_read")
    bits = {"A": [4.6e15], "B": [4.6e15]}
    data = {("verify", "bit_errors"): {"A": [0.0], "B": [0.0]}, ("verify", "bits_read"): bits}
    row = _one(c, {"A": "pass", "B": "pass"}, data)
    assert math.isclose(row["value"], chi2.ppf(0.6, 2) / (2 * 9.2e15), rel_tol=1e-9)
    assert row["verdict"] == "pass" and "e = 0" in row["basis"]
    data[("verify", "bit_errors")] = {"A": [1.0], "B": [0.0]}
    assert _one(c, {"A": "pass", "B": "pass"}, data)["verdict"] == "fail"


def test_fit_with_acceleration_matches_jesd85_form() -> None:
    c = Criterion(
        name="fit",
        kind="fit",
        limit=100,
        confidence=0.6,
        hours=1000,
        ea_ev=0.7,
        use_temp_c=55,
        stress_temp_c=125,
    )
    row = _one(c, {f"D{i}": "pass" for i in range(231)})
    af = math.exp(0.7 / 8.617333262e-5 * (1 / 328.15 - 1 / 398.15))
    expected = chi2.ppf(0.6, 2) / (2 * 231 * 1000 * af) * 1e9
    assert math.isclose(row["value"], expected, rel_tol=1e-6)
    assert row["verdict"] == "pass"


def test_yield_and_worst_dut() -> None:
    verdicts = {"A": "pass", "B": "fail", "C": "pass", "D": "error"}
    row = _one(Criterion(name="y", kind="yield", limit=0.9), verdicts)
    assert (
        row["value"] == pytest.approx(2 / 3)
        and row["verdict"] == "fail"
        and "1 DUT(s) not judged" in row["basis"]
    )
    data = {("profile", "weak_cells"): {"A": [1, 3], "B": [12], "C": [0]}}
    worst = _one(Criterion(name="w", kind="max", limit=10, measurement="profile.weak_cells"), verdicts, data)
    assert worst["value"] == 12 and worst["verdict"] == "fail" and "DUT B" in worst["basis"]
    missing = _one(Criterion(name="w", kind="max", limit=10, measurement="profile.nothing"), verdicts, data)
    assert missing["verdict"] == "error"


def test_criterion_shape_rules() -> None:
    with pytest.raises(ValueError, match="needs errors, bits"):
        Criterion(name="u", kind="uber", limit=1e-16)
    with pytest.raises(ValueError, match=r"step\.measurement"):
        Criterion(name="m", kind="max", limit=1, measurement="nodot")


def test_plan_check_names_unknown_criterion_reference() -> None:
    text = """spec: qualify.plan/1
name: p
version: "1"
applies_to: ssd
stages:
  - name: s
    steps:
      - {name: smart, action: nvme.smart}
criteria:
  - {name: worst_media, kind: max, limit: 0, measurement: smart.media_errors}
  - {name: bad, kind: max, limit: 0, measurement: smart.nope}
"""
    with pytest.raises(InputError) as err:
        check_actions(parse_plan(text, "p.yaml"))
    assert err.value.all_lines() == ["p.yaml:11: criteria[1]: bad: no step 'smart' measures 'nope'"]
