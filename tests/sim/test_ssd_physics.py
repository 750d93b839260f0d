"""The simulated SSD's physics against the formulas: Arrhenius retention, RBER, ECC, greedy-GC WAF."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from drivers.workload.spec import WorkloadSpec
from qualify.clock import VirtualClock
from qualify.stats.acceleration import arrhenius_af
from qualify.stats.waf import greedy_gc_waf
from sim_instruments.ssd import BenchDut, SimBlockWorkload, SimSsd, load_ssd_model, make_ssd, nand
from sim_instruments.ssd import ecc as ecc_mod
from sim_instruments.ssd.ftl import ScaledFtl, WriteMix, measure_waf

MODEL = load_ssd_model("enterprise_tlc_3p84tb")
CAPACITY = MODEL.capacity_bytes


@dataclass
class Rig:
    clock: VirtualClock
    dut: BenchDut
    device: SimSsd


def rig(
    model: str = "enterprise_tlc_3p84tb", temp_c: float = 40.0, serial: str = "QSIM0001", seed: int = 7
) -> Rig:
    clock = VirtualClock()
    dut = BenchDut(serial, clock, temp_c=temp_c)
    device, _ = make_ssd(dut, clock, seed, model)
    return Rig(clock, dut, device)


def fill_and_settle(r: Rig) -> None:
    """Write the whole drive once and let the engine advance the clock by its runtime."""
    result = SimBlockWorkload(r.device).run(
        WorkloadSpec(name="fill", rw="write", bs_split=((131072, 1.0),), size_bytes=CAPACITY, iodepth=32)
    )
    r.clock.sleep(result.runtime_s)


def bake(r: Rig, temp_c: float, hours: float) -> None:
    """Power the drive off, hold it at temp_c for `hours`, and bring it back to 25 °C."""
    r.dut.set_power(False)
    r.device.power_event(False, clean=True)
    r.dut.set_temperature(temp_c)
    r.clock.sleep(hours * 3600)
    r.device.sync()  # the lab syncs its drives at every chamber change, so a change starts a piece
    r.dut.set_temperature(25.0)


# Retention -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bake_h", [10.0, 96.0, 1000.0])
def test_a_66c_bake_ages_data_like_22_8_times_as_long_at_40c(bake_h: float) -> None:
    af = arrhenius_af(1.1, 40.0, 66.0)
    assert af == pytest.approx(22.8, abs=0.1)  # REFERENCE.md's JESD218 figure
    hot, warm = rig(), rig()
    for r in (hot, warm):
        fill_and_settle(r)
    before = hot.device.media_state()
    bake(hot, 66.0, bake_h)
    bake(warm, 40.0, bake_h * af)
    hot_state, warm_state = hot.device.media_state(), warm.device.media_state()
    # The bake added exactly AF × bake_h hours of 40 °C (the reference temperature) to the data's age.
    assert hot_state.retention_h - before.retention_h == pytest.approx(bake_h * af, rel=1e-9)
    assert hot_state.retention_h == pytest.approx(warm_state.retention_h, rel=1e-9)
    assert hot_state.rber_terms.retention == pytest.approx(warm_state.rber_terms.retention, rel=1e-9)
    assert hot_state.rber_terms.retention > before.rber_terms.retention
    assert hot_state.codeword_failure_probability == pytest.approx(
        warm_state.codeword_failure_probability, rel=1e-6
    )


def test_the_same_bake_at_40c_ages_data_22_8_times_less() -> None:
    hot, warm = rig(), rig()
    for r in (hot, warm):
        fill_and_settle(r)
    start = hot.device.media_state().retention_h
    bake(hot, 66.0, 96.0)
    bake(warm, 40.0, 96.0)
    hot_age = hot.device.media_state().retention_h - start
    warm_age = warm.device.media_state().retention_h - start
    assert hot_age / warm_age == pytest.approx(arrhenius_af(1.1, 40.0, 66.0), rel=1e-9)


def test_a_1000_hour_bake_of_64_drives_is_a_handful_of_temperature_lookups_each() -> None:
    clock = VirtualClock()
    lookups = 0

    class CountingDut(BenchDut):
        def temperature_at(self, t_s: float) -> float:
            nonlocal lookups
            lookups += 1
            return super().temperature_at(t_s)

    duts = [CountingDut(f"QSIM{i:04d}", clock, temp_c=25.0) for i in range(64)]
    drives = [make_ssd(dut, clock, 7)[0] for dut in duts]
    for dut, device in zip(duts, drives, strict=True):
        dut.set_power(False)
        device.power_event(False, clean=True)
        dut.set_temperature(66.0)
    lookups = 0
    clock.sleep(1000 * 3600)
    ages = [device.media_state().retention_h for device in drives]
    # One linear piece per drive: its two ends and three inner checks, however long the bake.
    assert lookups == 64 * 5
    assert ages == pytest.approx([1000 * arrhenius_af(1.1, 40.0, 66.0)] * 64, rel=1e-9)


def test_a_chamber_ramp_counts_its_ramp_and_its_hold() -> None:
    clock = VirtualClock()

    class RampDut(BenchDut):
        """25 °C, then a 41-minute linear ramp to 66 °C starting at t = 1 h, then a hold."""

        def temperature_at(self, t_s: float) -> float:
            ramp = min(max((t_s - 3600.0) / (41 * 60.0), 0.0), 1.0)
            return 25.0 + 41.0 * ramp

        def temperature_c(self) -> float:
            return self.temperature_at(clock.now())

    dut = RampDut("QSIM0001", clock)
    device, _ = make_ssd(dut, clock, 7)
    dut.set_power(False)
    device.power_event(False, clean=True)
    start = device.state.retention_clock_h
    clock.sleep(100 * 3600)
    device.sync()
    aged = device.state.retention_clock_h - start
    # Exact: 1 h at 25 °C, the ramp (∫ AF over a linear ramp), then the hold at 66 °C.
    ramp_h = 41 / 60
    steps = 20000
    ramp_af = sum(nand.arrhenius_af(1.1, 40.0, 25.0 + 41.0 * (i + 0.5) / steps) for i in range(steps)) / steps
    expected = (
        1.0 * nand.arrhenius_af(1.1, 40.0, 25.0)
        + ramp_h * ramp_af
        + (99.0 - ramp_h) * arrhenius_af(1.1, 40.0, 66.0)
    )
    assert aged == pytest.approx(expected, rel=1e-6)


# RBER ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pe", "t_h", "reads"),
    [(0, 0, 0), (1000, 0, 0), (3000, 2190, 0), (500, 100, 2000), (3000, 10, 1e6)],
)
def test_rber_is_the_composite_power_law_with_a_clamped_read_term(
    pe: float, t_h: float, reads: float
) -> None:
    p = MODEL.rber
    read_term = min(p.gamma * pe**p.p * reads**p.q, p.read_term_max)
    expected = p.epsilon + p.alpha * pe**p.k + p.beta * pe**p.m * t_h**p.n + read_term
    assert nand.rber(p, pe, t_h, reads) == pytest.approx(expected, rel=1e-12)
    # Coefficients as REFERENCE.md states them for a 72-layer TLC.
    assert (p.epsilon, p.alpha, p.k, p.beta, p.m, p.n, p.gamma, p.p, p.q) == (
        1.48e-3,
        3.90e-10,
        2.05,
        6.28e-5,
        0.14,
        0.54,
        3.73e-9,
        0.33,
        1.71,
    )


def test_the_read_disturb_term_saturates() -> None:
    p = MODEL.rber
    assert nand.rber_terms(p, 3000, 0, 1e9).read == p.read_term_max
    assert nand.rber_terms(p, 3000, 0, 10).read < p.read_term_max


def test_a_drive_reports_rber_from_its_wear_age_and_reads() -> None:
    r = rig()
    fill_and_settle(r)
    SimBlockWorkload(r.device).run(
        WorkloadSpec(name="wear", rw="write", io_bytes=200 * CAPACITY, size_bytes=CAPACITY)
    )
    state = r.device.media_state()
    pe = r.device.state.nand_write_bytes / MODEL.physical_bytes
    assert state.pe_cycles == pytest.approx(pe, rel=1e-12)
    assert pe == pytest.approx(201 / (1 + MODEL.nand.over_provisioning), rel=1e-6)
    expected = nand.rber(MODEL.rber, pe, state.retention_h, state.reads_per_block) * r.device.rber_factor
    assert state.rber == pytest.approx(expected, rel=1e-12)
    assert state.rber_terms.wear == pytest.approx(MODEL.rber.alpha * pe**MODEL.rber.k * r.device.rber_factor)


# ECC -------------------------------------------------------------------------------------------


def direct_binomial_tail(n: int, t: int, p: float) -> float:
    """Return P[Binomial(n, p) > t] by summing log-space terms (no scipy)."""
    logs = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
        for k in range(t + 1, n + 1)
    ]
    top = max(logs)
    return math.exp(top) * sum(math.exp(x - top) for x in logs)


@pytest.mark.parametrize(
    ("n", "t", "p"),
    [(40960, 1100, 1.9e-2), (40960, 1100, 2.4e-2), (40960, 300, 6.7e-3), (4608, 40, 2e-3), (1000, 5, 1e-4)],
)
def test_codeword_failure_is_the_binomial_tail(n: int, t: int, p: float) -> None:
    got = ecc_mod.codeword_failure_probability(n, t, p)
    assert got == pytest.approx(direct_binomial_tail(n, t, p), rel=1e-6)


def test_the_retry_ladder_escalates_latency_with_rber() -> None:
    code = MODEL.ecc
    low = ecc_mod.mean_retry_latency_us(code, 1.5e-3)
    high = ecc_mod.mean_retry_latency_us(code, 1.5e-2)
    assert low == pytest.approx(0.0, abs=1e-9)
    assert high > code.read_retry[0].latency_us  # most reads now need retry and soft decode
    exceed = ecc_mod.ladder_exceedance(code, 1.5e-2)
    assert exceed == sorted(exceed, reverse=True)
    assert exceed[-1] == ecc_mod.codeword_failure_probability(
        code.codeword_bits, code.correctable_bits, 1.5e-2
    )


def test_poisson_counts_follow_the_inverse_cdf() -> None:
    assert ecc_mod.poisson_quantile(0.5, 0.0) == 0
    assert ecc_mod.poisson_quantile(0.3, 0.1) == 0
    assert ecc_mod.poisson_quantile(0.99, 0.1) == 1
    assert ecc_mod.poisson_quantile(0.5, 1e6) == pytest.approx(1e6, abs=2)
    assert ecc_mod.poisson_quantile(0.8413, 1e6) == pytest.approx(1e6 + 1000, abs=3)


# Write amplification ---------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.07, 0.28])
def test_measured_waf_under_uniform_random_writes_matches_greedy_gc_formula(rho: float) -> None:
    measured = measure_waf(rho, WriteMix()).waf
    assert measured == pytest.approx(greedy_gc_waf(rho), rel=0.10)


def test_sequential_writes_do_not_amplify() -> None:
    assert measure_waf(0.07, WriteMix(sequential=True, bs_split=((131072, 1.0),))).waf == pytest.approx(
        1.0, abs=0.01
    )


def test_sub_4k_writes_pay_for_a_whole_mapping_unit() -> None:
    uniform = measure_waf(0.28, WriteMix()).waf
    small = measure_waf(0.28, WriteMix(bs_split=((512, 1.0),))).waf
    assert small == pytest.approx(8 * uniform, rel=0.05)


def test_writing_half_the_drive_acts_like_more_spare() -> None:
    half = measure_waf(0.07, WriteMix(region_fraction=0.5)).waf
    # The cold half sits in full blocks GC never picks; the hot half has all the spare.
    assert half == pytest.approx(greedy_gc_waf((1.07 - 0.5 - 0.5) / 0.5), rel=0.10)
    assert half < greedy_gc_waf(0.07)


def test_the_waf_measurement_is_cached_and_deterministic() -> None:
    first = measure_waf(0.28, WriteMix())
    assert measure_waf(0.28, WriteMix()) is first


def test_scaled_ftl_rejects_a_spare_factor_without_a_spare_block() -> None:
    with pytest.raises(ValueError, match="spare"):
        ScaledFtl(64, 64, 0.001)


def test_a_drive_writes_its_measured_waf_to_the_nand() -> None:
    r = rig()
    fill_and_settle(r)
    before = r.device.state.nand_write_bytes
    SimBlockWorkload(r.device).run(
        WorkloadSpec(name="rand", rw="randwrite", io_bytes=CAPACITY, size_bytes=CAPACITY)
    )
    waf = (r.device.state.nand_write_bytes - before) / CAPACITY
    assert waf == pytest.approx(measure_waf(MODEL.nand.over_provisioning, WriteMix()).waf, rel=1e-9)
    assert waf == pytest.approx(greedy_gc_waf(MODEL.nand.over_provisioning), rel=0.10)


def test_a_ringing_temperature_is_not_mistaken_for_a_flat_one() -> None:
    clock = VirtualClock()
    period_s = 3600.0

    class RingingDut(BenchDut):
        """A chamber swinging ±10 °C around 50 °C: ends and middle of a period sit on one line."""

        def temperature_at(self, t_s: float) -> float:
            return 50.0 + 10.0 * math.sin(2 * math.pi * t_s / period_s)

        def temperature_c(self) -> float:
            return self.temperature_at(clock.now())

    device, _ = make_ssd(RingingDut("QSIM0001", clock), clock, 7)
    clock.sleep(period_s)
    device.sync()
    steps = 20000
    exact_h = (
        sum(
            nand.arrhenius_af(1.1, 40.0, 50.0 + 10.0 * math.sin(2 * math.pi * (i + 0.5) / steps))
            for i in range(steps)
        )
        / steps
    )
    assert exact_h > 1.05 * nand.arrhenius_af(1.1, 40.0, 50.0)  # the swing matters: AF is convex
    assert device.state.retention_clock_h == pytest.approx(exact_h, rel=1e-4)
