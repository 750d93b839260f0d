"""The DIMM cell model: retention tail (temperature, refresh, data pattern, VRT), Vmin, RowHammer/TRR.

Runs go through the tester's dialect on the shipped model files, as a plan would drive them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualify.clock import VirtualClock
from sim_instruments.dimm import DimmTesterSim, SimDimm, make_dimm
from sim_instruments.dimm.params import SPEC, load_model
from tests.sim.test_dimm_faults import FakeDut

HEALTHY = "rdimm_healthy"
WEAK = "rdimm_weak_retention"


def rig(model: str, temp_c: float = 45.0, seed: int = 3, t0_s: float = 0.0) -> DimmTesterSim:
    """Return a one-slot tester holding a fresh module of `model` at `temp_c`."""
    clock = VirtualClock(t0_s)
    return DimmTesterSim({1: make_dimm(FakeDut(temp_c=temp_c), clock, seed, model)}, clock)


def failing_words(tester: DimmTesterSim) -> set[int]:
    """Return every failing word the last run logged, reading the log page by page."""
    count = int(tester.handle("ERR:COUN?") or "")
    out: set[int] = set()
    for first in range(0, count, 64):
        page = tester.handle(f"ERR:LOG? {first},64") or ""
        out |= {int(entry.split(",")[0], 16) for entry in page.split(";")}
    assert len(out) == count
    return out


def profile(
    tester: DimmTesterSim, refresh_ms: float, patterns: tuple[str, ...] = ("CHECKER", "CHECKER_INV")
) -> set[int]:
    """Run a REAPER-style retention profile: each pattern held 1 s at `refresh_ms`, no TCR."""
    failing: set[int] = set()
    for line in ("REFR:TCR OFF", f"REFR:INT {refresh_ms:g}", "TEST:HOLD 1000"):
        tester.handle(line)
    for pattern in patterns:
        tester.handle(f"TEST:PATT {pattern}")
        tester.handle("RUN")
        assert tester.handle("SYST:ERR?") == '+0,"No error"'
        failing |= failing_words(tester)
    return failing


def march(tester: DimmTesterSim, alg: str = "March C-", margin_pct: float = 0.0) -> int:
    for line in (f"VOLT:MARG {margin_pct:g}", f'TEST:ALG "{alg}"', "RUN"):
        tester.handle(line)
    assert tester.handle("SYST:ERR?") == '+0,"No error"'
    return int(tester.handle("ERR:COUN?") or "")


REFRESH_MS = (32, 64, 128, 256, 512, 1024)


def test_weak_cell_count_grows_with_refresh_interval_and_temperature() -> None:
    rigs = {temp: rig(WEAK, temp) for temp in (45, 65, 85)}
    counts = {
        temp: [len(profile(tester, refresh)) for refresh in REFRESH_MS] for temp, tester in rigs.items()
    }
    for temp, row in counts.items():
        assert row == sorted(row), f"{temp} °C: counts fall as the interval grows: {row}"
    for index in range(len(REFRESH_MS)):
        column = [counts[temp][index] for temp in (45, 65, 85)]
        assert column == sorted(column), f"{REFRESH_MS[index]} ms: counts fall as it heats: {column}"
    # Retention halves every 10 °C, so 85 °C at R fails what 65 °C fails at 4R.
    assert counts[85][2] == counts[65][4]
    assert counts[85][-1] > 3 * counts[65][-1] > 0
    assert counts[45][0] == counts[85][0] == 0


def test_the_weak_tail_follows_its_documented_distribution() -> None:
    # RetentionParams: the fraction of tail cells below t is (t - min) / (max - min) for k = 1.
    # At 85 °C a 1024 ms interval is 16384 ms at 45 °C; with the data-pattern factor averaging
    # 0.9 the threshold is ~18200 ms: (18200 - 1000) / 59000 of 3000 cells ≈ 875 words.
    params = load_model(WEAK).retention
    threshold_ms = 1024 * 2 ** ((85 - params.reference_temp_c) / params.doubling_c) / 0.9
    expected = (
        params.weak_cells * (threshold_ms - params.weak_min_ms) / (params.weak_max_ms - params.weak_min_ms)
    )
    assert len(profile(rig(WEAK, 85), 1024)) == pytest.approx(expected, rel=0.1)


def test_weak_model_passes_the_specified_refresh_and_fails_an_extended_one_when_hot() -> None:
    assert profile(rig(WEAK, 85), 32) == set()
    assert profile(rig(WEAK, 85), 64)
    assert profile(rig(HEALTHY, 85), 128) == set()


def test_temperature_compensated_refresh_halves_the_interval_above_85c() -> None:
    tester = rig(WEAK, 95)
    tester.handle("TEST:PATT CHECKER")
    tester.handle("REFR:INT 32")
    tester.handle("REFR:TCR ON")
    tester.handle("RUN")
    assert tester.handle("ERR:COUN?") == "0"
    tester.handle("REFR:TCR OFF")
    tester.handle("RUN")
    assert int(tester.handle("ERR:COUN?") or "") > 0


def test_opposing_neighbour_data_shortens_retention() -> None:
    solid = profile(rig(WEAK, 85), 256, ("SOLID0", "SOLID1"))
    checker = profile(rig(WEAK, 85), 256, ("CHECKER", "CHECKER_INV"))
    assert solid < checker


def test_true_and_anti_cells_need_both_data_polarities_to_be_found() -> None:
    tester = rig(WEAK, 85)
    zeros = profile(tester, 1024, ("SOLID0",))
    ones = profile(tester, 1024, ("SOLID1",))
    assert zeros and ones and not zeros & ones


def test_variable_retention_cells_change_state_between_epochs_but_not_within_one() -> None:
    dwell_s = load_model(WEAK).retention.vrt_dwell_s
    first = profile(rig(WEAK, 85, t0_s=0.0), 256)
    again = profile(rig(WEAK, 85, t0_s=0.0), 256)
    later = [profile(rig(WEAK, 85, t0_s=epoch * dwell_s), 256) for epoch in range(1, 6)]
    assert first == again
    assert any(other != first for other in later)
    module = make_dimm(FakeDut(), VirtualClock(), 3, WEAK)
    vrt_words = {cell.address for cell in module.cells.weak if cell.vrt}
    for other in later:
        assert first ^ other <= vrt_words


@pytest.mark.parametrize(
    ("temp_c", "margin_pct", "fails"),
    [(25, -10, False), (95, 0, False), (95, -5, False), (95, -7, True), (85, -10, True)],
)
def test_vmin_failures_appear_only_at_low_vdd_and_high_temperature(
    temp_c: float, margin_pct: float, fails: bool
) -> None:
    assert (march(rig(HEALTHY, temp_c), margin_pct=margin_pct) > 0) is fails


def test_lower_vdd_and_higher_temperature_make_more_vmin_failures() -> None:
    by_margin = [march(rig(HEALTHY, 95), margin_pct=m) for m in (-6, -7, -8, -10)]
    assert by_margin == sorted(by_margin) and by_margin[-1] > by_margin[0]
    by_temp = [march(rig(HEALTHY, t), margin_pct=-10) for t in (45, 65, 85, 95)]
    assert by_temp == sorted(by_temp) and by_temp[-1] > by_temp[0]


def test_margin_programs_the_pmic_on_its_5mv_grid() -> None:
    tester = rig(HEALTHY)
    tester.handle("VOLT:MARG -3")
    # 1.1 V × 0.97 = 1.067 V, rounded to the PMIC's 5 mV grid: 1.065 V, -3.18 %.
    assert tester.handle("VOLT:VDD?") == "1.0650"
    assert tester.handle("VOLT:MARG?") == "-3.18"
    tester.handle("VOLT:MARG 12")
    assert tester.handle("SYST:ERR?") == '-222,"Data out of range; VDD margin 12 % is outside ±10 %"'


def hammer(tester: DimmTesterSim, sides: int, count: int) -> int:
    for line in ("TEST:PATT HAMMER", f"HAMM:SIDE {sides}", f"HAMM:COUN {count}", "RUN"):
        tester.handle(line)
    assert tester.handle("SYST:ERR?") == '+0,"No error"'
    return int(tester.handle("ERR:COUN?") or "")


def test_trr_stops_patterns_with_few_aggressors_and_many_sided_patterns_defeat_it() -> None:
    trr_rows = load_model(HEALTHY).rowhammer.trr_tracked_rows
    assert hammer(rig(HEALTHY), 2, 200_000) == 0
    assert hammer(rig(HEALTHY), trr_rows, 200_000) == 0
    assert hammer(rig(HEALTHY), trr_rows + 4, 100_000) > 0


def test_rowhammer_flips_need_the_threshold_count_within_one_refresh_window() -> None:
    hcfirst_min = load_model(HEALTHY).rowhammer.hcfirst_min
    # Double-sided: a victim sees both neighbours, so half the threshold per aggressor is below it.
    assert hammer(rig(HEALTHY), 8, hcfirst_min // 2 - 1000) == 0
    flips = [hammer(rig(HEALTHY), 8, count) for count in (25_000, 40_000, 80_000)]
    assert flips == sorted(flips) and flips[-1] > flips[0]
    # At a shorter refresh window fewer activations fit: 8 ms holds ~166 K at tRC 48 ns.
    tester = rig(HEALTHY)
    tester.handle("REFR:INT 8")
    assert hammer(tester, 8, 80_000) < flips[-1]


def test_same_seed_same_results_and_another_seed_or_serial_differs() -> None:
    def log(seed: int, serial: str) -> tuple[set[int], list[int]]:
        clock = VirtualClock()
        module = make_dimm(FakeDut(serial=serial, temp_c=85), clock, seed, WEAK)
        tester = DimmTesterSim({1: module}, clock)
        return profile(tester, 512), [cell.address for cell in module.cells.weak]

    first, cells = log(7, "A1")
    assert log(7, "A1") == (first, cells)
    assert log(8, "A1")[1] != cells
    assert log(7, "A2")[1] != cells
    assert first


def test_snapshot_and_restore_reproduce_the_module_and_its_tester_record() -> None:
    clock = VirtualClock(100.0)
    dut = FakeDut(temp_c=85)
    module = make_dimm(dut, clock, 5, HEALTHY)
    module.inject_fault({"kind": "stuck_at", "address": 0x4000, "bit": 1, "value": 1})
    module.inject("stuck_bit", at_s=50.0)
    tester = DimmTesterSim({1: module}, clock)
    for line in ("VOLT:MARG -8", "REFR:INT 64", 'TEST:ALG "March B"', "RUN"):
        tester.handle(line)
    before = failing_words(tester)
    assert 0x4000 in before
    state = json.loads(json.dumps(module.snapshot()))

    fresh = make_dimm(dut, clock, 5, HEALTHY)
    fresh.restore(state)
    assert fresh.snapshot() == state
    again = DimmTesterSim({1: fresh}, clock)
    assert again.handle("TEST:ALG?") == '"March B"'
    assert again.handle("REFR:INT?") == "64"
    assert failing_words(again) == before
    again.handle("RUN")
    assert failing_words(again) == before


def test_restore_refuses_another_modules_state() -> None:
    clock = VirtualClock()
    state = make_dimm(FakeDut(serial="A"), clock, 5, HEALTHY).snapshot()
    with pytest.raises(ValueError, match="this module is rdimm_healthy/B"):
        make_dimm(FakeDut(serial="B"), clock, 5, HEALTHY).restore(state)
    with pytest.raises(ValueError, match="spec"):
        make_dimm(FakeDut(serial="A"), clock, 5, HEALTHY).restore({**state, "spec": "other/9"})


def test_lab_device_faults_reach_the_module() -> None:
    clock = VirtualClock()
    module = make_dimm(FakeDut(), clock, 5, HEALTHY)
    tester = DimmTesterSim({1: module}, clock)
    assert march(tester) == 0
    module.inject("stuck_bit", at_s=10.0)
    assert march(tester) == 1
    module.inject("pmic_shutdown", at_s=20.0)
    tester.handle("RUN")
    assert tester.handle("SYST:ERR?") == '-240,"Hardware error; slot 1: module not powered"'
    assert tester.handle("STAT?") == "ERROR"
    with pytest.raises(ValueError, match="not one of"):
        module.inject("melt", at_s=0.0)


def test_shipped_model_files_load_and_name_their_spec() -> None:
    for name in (HEALTHY, WEAK):
        model = load_model(name)
        assert model.name == name
        assert isinstance(make_dimm(FakeDut(), VirtualClock(), 1, name), SimDimm)
    assert SPEC == "qualify.dimm_model/1"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"retention": {"weak_cels": 10}}, "retention.weak_cels: unknown key"),
        ({"vmin": {"spread_v": "wide"}}, "vmin.spread_v: expected a number"),
        ({"rowhammer": {"vulnerable_cells": 1.5}}, "rowhammer.vulnerable_cells: expected an integer"),
        ({"spec": "qualify.dimm_model/2"}, "spec: expected 'qualify.dimm_model/1'"),
        (
            {"faults": [{"kind": "stuck_at", "address": 1, "bit": 2, "value": 0, "oops": 1}]},
            r"faults\[0\].oops",
        ),
        ({"faults": [{"kind": "gremlin"}]}, r"faults\[0\].kind"),
        ({"faults": [{"kind": "transition", "address": 1, "bit": 64, "transition": "up"}]}, "bit 64"),
        ({"retention": {"weak_min_ms": 9e9}}, "weak_min_ms < weak_max_ms"),
    ],
)
def test_model_files_reject_bad_keys_naming_file_and_key(tmp_path: Path, edit: dict, message: str) -> None:
    import yaml

    data = yaml.safe_load(Path(load_model_path(HEALTHY)).read_text())
    data.update(edit)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message) as raised:
        load_model(str(path))
    assert str(path) in str(raised.value)


def load_model_path(name: str) -> Path:
    from sim_instruments.dimm.params import model_path

    return model_path(name)


def test_a_fault_outside_the_module_is_refused() -> None:
    module = make_dimm(FakeDut(), VirtualClock(), 1, HEALTHY)
    with pytest.raises(ValueError, match="the module has 2147483648 words"):
        module.inject_fault({"kind": "stuck_at", "address": 2**31, "bit": 0, "value": 0})
