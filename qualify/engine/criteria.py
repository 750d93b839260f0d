"""Lot criteria over DUT verdicts: yield and functional failure rate at a confidence."""

from __future__ import annotations

from typing import Any

from qualify.plans.schema import Criterion


def evaluate_criteria(
    criteria: list[Criterion], verdicts: dict[str, str], lot: str | None
) -> list[dict[str, Any]]:
    """Return a criteria row per criterion: value, limit, confidence, verdict and basis."""
    passed = sum(1 for v in verdicts.values() if v == "pass")
    failed = sum(1 for v in verdicts.values() if v == "fail")
    judged = passed + failed
    unjudged = len(verdicts) - judged
    note = f"; {unjudged} DUT(s) not judged (error, aborted or skipped) are excluded" if unjudged else ""
    rows = []
    for c in criteria:
        if judged == 0:
            rows.append(_row(c, lot, None, "error", f"no DUT was judged{note}"))
            continue
        if c.kind == "yield":
            value = passed / judged
            verdict = "pass" if value >= c.limit else "fail"
            basis = f"yield = passed / judged = {passed} / {judged} = {value:.4g} ≥ {c.limit:g}{note}"
        else:  # ffr
            from qualify.stats import ffr_upper_bound

            value = ffr_upper_bound(failed, judged, c.confidence)
            verdict = "pass" if value <= c.limit else "fail"
            basis = (
                f"FFR upper bound (exact binomial, Clopper-Pearson) at {c.confidence:.0%} "
                f"confidence with f = {failed} failures in n = {judged}: {value:.4g} ≤ {c.limit:g}{note}"
            )
        rows.append(_row(c, lot, value, verdict, basis))
    return rows


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
