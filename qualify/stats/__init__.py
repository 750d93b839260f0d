"""Compute the statistics behind qualification verdicts: Arrhenius acceleration, rate and
lot-fraction bounds, sample sizes, Weibull fits, SNIA PTS steady state, write amplification.

Pure math on numpy/scipy and the standard library; nothing else of qualify is imported here.
"""

from qualify.stats.acceleration import (
    BOLTZMANN_EV_PER_K,
    arrhenius_af,
    bake_hours_for,
    equivalent_hours,
)
from qualify.stats.rates import bits_for_uber, chi2_upper_rate, fit_rate, uber_upper_bound
from qualify.stats.sampling import (
    ffr_upper_bound,
    sample_size,
    sample_size_poisson,
    zero_failure_sample_size,
)
from qualify.stats.steady_state import SteadyState, steady_state
from qualify.stats.waf import greedy_gc_waf, write_amplification
from qualify.stats.weibull import (
    WeibullFit,
    weibull_fit,
    weibull_plot_points,
    weibull_unreliability,
)

__all__ = [
    "BOLTZMANN_EV_PER_K",
    "SteadyState",
    "WeibullFit",
    "arrhenius_af",
    "bake_hours_for",
    "bits_for_uber",
    "chi2_upper_rate",
    "equivalent_hours",
    "ffr_upper_bound",
    "fit_rate",
    "greedy_gc_waf",
    "sample_size",
    "sample_size_poisson",
    "steady_state",
    "uber_upper_bound",
    "weibull_fit",
    "weibull_plot_points",
    "weibull_unreliability",
    "write_amplification",
    "zero_failure_sample_size",
]
