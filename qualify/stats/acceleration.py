"""Convert time at a stress temperature into time at a use temperature with the Arrhenius model."""

from __future__ import annotations

import math

from qualify.stats import _check

BOLTZMANN_EV_PER_K = 8.617333262e-5
"""Boltzmann constant in eV/K (CODATA 2018, exact in the 2019 SI)."""

KELVIN_OFFSET = 273.15


def arrhenius_af(ea_ev: float, use_temp_c: float, stress_temp_c: float) -> float:
    """Return the Arrhenius acceleration factor of stress_temp_c over use_temp_c.

    AF = exp[(Ea / k) · (1/T_use − 1/T_stress)] with T in kelvin (°C + 273.15) and
    k = 8.617333262e-5 eV/K. AF > 1 when the stress is hotter than use. Ea is 1.1 eV for NAND
    charge loss and 0.7 eV by JESD47/JESD85 default for other mechanisms.
    """
    ea = _check.non_negative("ea_ev", ea_ev)
    t_use_k = _check.temperature_c("use_temp_c", use_temp_c) + KELVIN_OFFSET
    t_stress_k = _check.temperature_c("stress_temp_c", stress_temp_c) + KELVIN_OFFSET
    return math.exp(ea / BOLTZMANN_EV_PER_K * (1.0 / t_use_k - 1.0 / t_stress_k))


def equivalent_hours(hours_at_stress: float, ea_ev: float, stress_temp_c: float, use_temp_c: float) -> float:
    """Return the hours at use_temp_c that hours_at_stress at stress_temp_c are worth."""
    hours = _check.non_negative("hours_at_stress", hours_at_stress)
    return hours * arrhenius_af(ea_ev, use_temp_c, stress_temp_c)


def bake_hours_for(
    retention_hours_at_use: float, ea_ev: float, use_temp_c: float, bake_temp_c: float
) -> float:
    """Return the bake duration at bake_temp_c equivalent to a retention time at use_temp_c.

    Example: JESD218 enterprise retention (3 months at 40 °C) with Ea = 1.1 eV baked at 66 °C,
    where AF ≈ 22.8, needs about 2190 h / 22.8 ≈ 96 h.
    """
    hours = _check.non_negative("retention_hours_at_use", retention_hours_at_use)
    return hours / arrhenius_af(ea_ev, use_temp_c, bake_temp_c)
