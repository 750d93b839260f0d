"""Lot criteria over DUT verdicts and measurements, with the formula and inputs as the basis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qualify import stats
from qualify.plans.schema import Criterion

# (step name, measurement name) -> {dut serial: [values over stages and iterations]}
MeasurementLookup = Callable[[str, str], dict[str, list[float]]]


def evaluate_criteria(
    criteria: list[Criterion],
    verdicts: dict[str, str],
    lot: str | None,
    lookup: MeasurementLookup | None = None,
) -> list[dict[str, Any]]:
    """Return a criteria row per criterion: value, limit, confidence, verdict and basis."""
    passed = sum(1 for v in verdicts.values() if v == "pass")
    failed = sum(1 for v in verdicts.values() if v == "fail")
    judged = passed + failed
    unjudged = len(verdicts) - judged
    note = f"; {unjudged} DUT(s) not judged (error, aborted or skipped) excluded" if unjudged else ""
    rows = []
    for c in criteria:
        if judged == 0 and c.kind in ("yield", "ffr", "fit"):
            rows.append(_row(c, lot, None, "error", f"no DUT was judged{note}"))
            continue
        value, basis, higher_is_worse = _evaluate(c, passed, failed, judged, lookup)
        if value is None:
            rows.append(_row(c, lot, None, "error", basis))
            continue
        ok = value <= c.limit if higher_is_worse else value >= c.limit
        rows.append(_row(c, lot, value, "pass" if ok else "fail", basis + note))
    return rows


def _evaluate(
    c: Criterion, passed: int, failed: int, judged: int, lookup: MeasurementLookup | None
) -> tuple[float | None, str, bool]:
    """Return (value, basis, whether higher values are worse)."""
    cl = f"{c.confidence:.0%}"
    if c.kind == "yield":
        value = passed / judged
        return (
            value,
            f"yield = passed / judged = {passed} / {judged} = {value:.4g}; need ≥ {c.limit:g}",
            False,
        )
    if c.kind == "ffr":
        value = stats.ffr_upper_bound(failed, judged, c.confidence)
        return (
            value,
            (
                f"FFR upper bound, exact binomial (Clopper-Pearson) at {cl}: f = {failed} failing of "
                f"n = {judged} → {value:.4g}; need ≤ {c.limit:g}"
            ),
            True,
        )
    if c.kind == "fit":
        assert c.hours is not None
        af = 1.0
        accel = "no acceleration"
        if c.use_temp_c is not None and c.stress_temp_c is not None:
            af = stats.arrhenius_af(c.ea_ev, c.use_temp_c, c.stress_temp_c)
            accel = f"AF = {af:.4g} (Ea {c.ea_ev:g} eV, {c.stress_temp_c:g} → {c.use_temp_c:g} °C)"
        value = stats.fit_rate(failed, judged, c.hours, c.confidence, af=af)
        return (
            value,
            (
                f"FIT = χ²({cl}; 2f+2) / (2·N·t·AF)·1e9 with f = {failed}, N = {judged}, t = {c.hours:g} h, "
                f"{accel} → {value:.4g}; need ≤ {c.limit:g}"
            ),
            True,
        )
    if lookup is None:
        return None, "no measurements available", True
    if c.kind == "uber":
        assert c.errors is not None and c.bits is not None
        errors = _total(lookup, c.errors)
        bits = _total(lookup, c.bits)
        if bits <= 0:
            return None, f"no bits read: {c.bits} is missing or zero", True
        value = stats.uber_upper_bound(int(errors), bits, c.confidence)
        return (
            value,
            (
                f"UBER upper bound χ²({cl}; 2e+2) / (2·bits) with e = {int(errors)} ({c.errors}), "
                f"bits = {bits:.4g} ({c.bits}) → {value:.4g}; need ≤ {c.limit:g}"
            ),
            True,
        )
    assert c.measurement is not None
    per_dut = {s: vals for s, vals in lookup(*_split(c.measurement)).items() if vals}
    if not per_dut:
        return None, f"no values of {c.measurement}", True
    pick = max if c.kind == "max" else min
    worst_serial, worst = pick(((s, pick(v)) for s, v in per_dut.items()), key=lambda sv: sv[1])
    relation = "≤" if c.kind == "max" else "≥"
    return (
        worst,
        (
            f"{c.kind} of {c.measurement} over {len(per_dut)} DUTs = {worst:.6g} (DUT {worst_serial}); "
            f"need {relation} {c.limit:g}"
        ),
        c.kind == "max",
    )


def _split(ref: str) -> tuple[str, str]:
    step, _, name = ref.rpartition(".")
    return step, name


def _total(lookup: MeasurementLookup, ref: str) -> float:
    return float(sum(sum(v) for v in lookup(*_split(ref)).values()))


def _row(c: Criterion, lot: str | None, value: float | None, verdict: str, basis: str) -> dict[str, Any]:
    return {
        "lot": lot,
        "name": c.name,
        "value": value,
        "limit": c.limit,
        "confidence": c.confidence,
        "verdict": verdict,
        "basis": basis,
    }
