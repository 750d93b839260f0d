"""Check measured write amplification and the greedy-GC Lambert-W prediction."""

import math
from collections.abc import Callable

import pytest
from scipy.special import lambertw

from qualify.stats import greedy_gc_waf, write_amplification


@pytest.mark.parametrize(
    ("spare_factor", "published_waf", "rel"),
    [
        # REFERENCE.md (Xiang & Kurkoski): ρ 0.07 → ≈ 7.8, ρ 0.28 → ≈ 2.5; brief allows 3 %.
        (0.07, 7.8, 0.03),
        (0.28, 2.5, 0.03),
        # Xiang & Kurkoski, arXiv:1110.4245 abstract: overprovisioning 0.3 → 2.36.
        (0.30, 2.36, 0.005),
    ],
)
def test_greedy_gc_waf_matches_published_figures(
    spare_factor: float, published_waf: float, rel: float
) -> None:
    assert greedy_gc_waf(spare_factor) == pytest.approx(published_waf, rel=rel)


def test_greedy_gc_waf_uses_the_non_trivial_lambert_root() -> None:
    alpha = 1.28
    z = -alpha * math.exp(-alpha)
    waf = greedy_gc_waf(0.28)
    w = alpha / waf - alpha  # the root the prediction used
    assert w * math.exp(w) == pytest.approx(z, rel=1e-12)
    assert -1.0 < w < 0.0
    # The other real branch gives back −α, which would divide by zero.
    assert lambertw(z, -1).real == pytest.approx(-alpha)


def test_greedy_gc_waf_falls_with_more_spare_and_tends_to_one() -> None:
    figures = [greedy_gc_waf(rho) for rho in (0.05, 0.07, 0.1, 0.28, 0.5, 1.0, 5.0)]
    assert figures == sorted(figures, reverse=True)
    assert greedy_gc_waf(20.0) == pytest.approx(1.0, abs=1e-6)
    assert greedy_gc_waf(20.0) > 1.0


def test_write_amplification_is_nand_over_host() -> None:
    assert write_amplification(3.0e12, 1.0e12) == pytest.approx(3.0)
    assert write_amplification(0.0, 1.0e9) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: greedy_gc_waf(0.0), "spare_factor"),
        (lambda: greedy_gc_waf(-0.07), "spare_factor"),
        (lambda: write_amplification(1.0, 0.0), "host_bytes_written"),
        (lambda: write_amplification(-1.0, 1.0), "nand_bytes_written"),
    ],
)
def test_waf_functions_reject_bad_inputs(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
