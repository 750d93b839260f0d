"""Slot assignment: free slots of the plan's kind, shared instruments, the chamber, real stations."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualify.errors import InputError
from qualify.plans.library import find_plan
from qualify.plans.loader import load_any_plan
from qualify.service.station import SlotInfo, StationInfo, assign, read_station
from tests.cli.conftest import SIM_LAB

PLANS = Path(__file__).parent / "plans"
QUICK = load_any_plan(PLANS / "quick_ssd.yaml")
SMOKE = load_any_plan(find_plan("station_smoke"))


def bench(simulated: bool = True) -> StationInfo:
    slots = (
        SlotInfo(1, "ssd", "A", None, frozenset({"psu1"})),
        SlotInfo(2, "ssd", "B", None, frozenset({"psu1"})),
        SlotInfo(3, "ssd", "C", None, frozenset({"psu2"})),
        SlotInfo(4, "ssd", "D", "no answer", frozenset({"psu2"})),
        SlotInfo(5, "dimm", "M1", None, frozenset({"tester"})),
    )
    return StationInfo(
        "bench",
        Path("b.yaml"),
        simulated,
        slots,
        frozenset({"chamber", "psu1", "psu2", "tester"}),
        frozenset({"chamber"}),
    )


def test_count_takes_free_working_slots_of_the_kind() -> None:
    got = assign(bench(), QUICK, False, None, 2, frozenset())
    assert got is not None and [s.slot for s in got.slots] == [1, 2] and got.duts == ("A", "B")
    assert got.claims == {"slot:1", "slot:2", "inst:psu1"}
    # psu1 busy: slots 1 and 2 are not free, slot 3 is the only working free one.
    assert assign(bench(), QUICK, False, None, 2, frozenset({"inst:psu1"})) is None
    one = assign(bench(), QUICK, False, None, 1, frozenset({"inst:psu1"}))
    assert one is not None and one.duts == ("C",)


def test_named_duts_and_all() -> None:
    named = assign(bench(), QUICK, False, ["C", "A"], None, frozenset())
    assert named is not None and named.duts == ("C", "A")
    every = assign(bench(), QUICK, False, None, "all", frozenset())
    assert every is not None and every.duts == ("A", "B", "C", "D")
    assert assign(bench(), QUICK, False, None, None, frozenset({"slot:4"})) is None


def test_impossible_requests_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"duts Z: not on station bench \(present: A, B, C, D\)"):
        assign(bench(), QUICK, False, ["Z"], None, frozenset())
    with pytest.raises(InputError, match="4 ssd slots asked for, station bench has 3 working"):
        assign(bench(), QUICK, False, None, 4, frozenset())


def test_station_plan_and_real_station_claim_everything() -> None:
    whole = assign(bench(), SMOKE, False, None, None, frozenset())
    assert whole is not None and whole.duts == () and whole.claims == bench().everything()
    real = assign(bench(simulated=False), QUICK, False, None, 1, frozenset())
    assert real is not None and real.claims == bench().everything()
    assert assign(bench(simulated=False), QUICK, False, None, 1, frozenset({"inst:tester"})) is None


def test_read_station_binds_the_sim_lab() -> None:
    info = read_station(SIM_LAB)
    assert info.name == "sim-lab" and info.simulated and info.chambers == {"chamber"}
    assert [(s.slot, s.serial, sorted(s.instruments)) for s in info.slots] == [
        (1, "QSIM0001", ["psu1"]),
        (2, "QSIM0002", ["psu1"]),
        (3, "QSIM0003", ["psu2"]),
        (4, "QSIM0004", ["psu2"]),
    ]


def test_a_plan_that_drives_the_chamber_claims_it() -> None:
    hot = load_any_plan(find_plan("jesd218_enterprise"))
    got = assign(bench(), hot, False, None, 1, frozenset())
    assert got is not None and "inst:chamber" in got.claims
    assert assign(bench(), hot, False, None, 1, frozenset({"inst:chamber"})) is None
    # The quick plan leaves the chamber alone, so it may run beside a hot one.
    assert (
        assign(bench(), QUICK, False, None, 1, frozenset({"inst:chamber", "slot:1", "inst:psu1"})) is not None
    )
