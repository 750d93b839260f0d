"""Acceptance: each injected DIMM fault is found by the marches that should find it and missed by the rest.

The expected matrix comes from fault theory, not from running the simulator: van de Goor,
"Testing Semiconductor Memories" (1991) for SAF/TF/AF/CF coverage of MATS+, March X, March C-
and March B, and Hamdioui, van de Goor and Rodgers, "March SS" (MTDT 2002) for read disturbs.
Where a march covers only some instances of a fault class, the instance below is one it misses,
and the hand trace that proves it is in the comment. Notation: M0..M5 are elements, a the
aggressor (or the address decoder's faulty address), v the victim; ⇑ visits the lower address
first. Every run goes through the tester's dialect, so the algorithm names and the fail log
are exercised too.
"""

from __future__ import annotations

from typing import Any

import pytest

from qualify.clock import VirtualClock
from sim_instruments.dimm.device import SimDimm
from sim_instruments.dimm.params import DimmModelParams, RetentionParams, RowHammerParams, VminParams
from sim_instruments.dimm.tester import DimmTesterSim

ALGS = ("MATS+", "March X", "March C-", "March B", "March SS")
LOW, HIGH = 0x1000, 0x2000  # two words; ⇑ reaches LOW first
BIT = 5
MASK = 1 << BIT


class FakeDut:
    """A lab DUT at a fixed temperature on a 12 V slot drawing 4 W."""

    def __init__(self, serial: str = "DIMM0001", slot: int = 1, temp_c: float = 45.0) -> None:
        self.slot = slot
        self.serial = serial
        self.temp_c = temp_c
        self.on = True

    def temperature_c(self) -> float:
        return self.temp_c

    def powered(self) -> bool:
        return self.on

    def power_w(self) -> float:
        return 4.0 if self.on else 0.0

    def current_a(self) -> float:
        return 4.0 / 12.0 if self.on else 0.0


def bare_params(**overrides: Any) -> DimmModelParams:
    """Return a model with no weak, marginal or hammer cells: only injected faults can fail."""
    return DimmModelParams(
        name="bare",
        retention=RetentionParams(weak_cells=0),
        vmin=VminParams(marginal_cells=0),
        rowhammer=RowHammerParams(vulnerable_cells=0),
        **overrides,
    )


def run(fault: dict[str, Any], alg: str, delay_ms: float = 0.0) -> list[tuple[int, int, int, int]]:
    """Inject `fault` into a fresh bare DIMM, run `alg` on the tester, return its fail log."""
    clock = VirtualClock()
    dimm = SimDimm(FakeDut(), clock, 1, bare_params())
    dimm.inject_fault(fault)
    tester = DimmTesterSim({1: dimm}, clock)
    for line in (f'TEST:ALG "{alg}"', f"TEST:DEL {delay_ms:g}", "REFR:INT 32", "RUN"):
        assert tester.handle(line) is None
    assert tester.handle("SYST:ERR?") == '+0,"No error"'
    count = int(tester.handle("ERR:COUN?") or "")
    log = tester.handle("ERR:LOG? 0,64") or ""
    entries = [
        (int(a, 16), int(m, 16), int(e), int(o)) for a, m, e, o in (p.split(",") for p in log.split(";") if p)
    ]
    assert count == len(entries)
    return entries


def cell(address: int, bit: int = BIT) -> dict[str, int]:
    return {"address": address, "bit": bit}


# (fault, the set of algorithms that detect it, the (address, element, op) that first catches it
# where the theory pins it down).
MATRIX: dict[str, tuple[dict[str, Any], set[str], dict[str, tuple[int, int, int]]]] = {
    # SAF: every march reads each cell as 0 and as 1.
    "stuck-at-0": (
        {"kind": "stuck_at", "address": HIGH, "bit": BIT, "value": 0},
        set(ALGS),
        {"MATS+": (HIGH, 2, 0)},  # first r1 is M2 ⇓(r1,w0)
    ),
    "stuck-at-1": (
        {"kind": "stuck_at", "address": HIGH, "bit": BIT, "value": 1},
        set(ALGS),
        {"MATS+": (HIGH, 1, 0), "March SS": (HIGH, 1, 0)},  # first r0 is M1
    ),
    # TF↑: w1 in M1 fails, the r1 of the next element sees 0 in every march.
    "transition up": (
        {"kind": "transition", "address": HIGH, "bit": BIT, "transition": "up"},
        set(ALGS),
        {"MATS+": (HIGH, 2, 0)},
    ),
    # TF↓: MATS+'s only 1→0 write is the last op of M2 and nothing reads after it: missed.
    # March X's M3 ⇕(r0) reads the 1 that stayed; March B's M1 reads it at op 4 (r0 after w0).
    "transition down": (
        {"kind": "transition", "address": HIGH, "bit": BIT, "transition": "down"},
        {"March X", "March C-", "March B", "March SS"},
        {"March X": (HIGH, 3, 0), "March B": (HIGH, 1, 4)},
    ),
    # AF (address LOW reaches HIGH's cell, LOW's own cell unreachable): MATS+ conditions
    # ⇑(r0,...,w1) and ⇓(r1,...,w0) hold in every algorithm, so all detect it. In MATS+ M1, LOW
    # writes 1 into HIGH's cell, then HIGH reads that 1 as a 0 expected: caught at (HIGH, 1, 0).
    "address decoder": (
        {"kind": "address_decoder", "address": LOW, "maps_to": HIGH},
        set(ALGS),
        {"MATS+": (HIGH, 1, 0)},
    ),
    # CFin, a↓ inverts v, a=LOW < v=HIGH. MATS+: M1 ⇑ ends with a=1, v=1; M2 ⇓ visits v first
    # (r1 ok, w0) then a (r1, w0: a↓ inverts v to 1); no read follows: missed. March X: M3 ⇕(r0)
    # reads v=1. March C-: M2 ⇑(r1,w0) visits a first, a↓ flips v to 0, then v's r1 fails.
    "coupling inversion": (
        {
            "kind": "coupling_inversion",
            "aggressor": cell(LOW, 3),
            "victim": cell(HIGH),
            "transition": "down",
        },
        {"March X", "March C-", "March B", "March SS"},
        {
            "March X": (HIGH, 3, 0),
            "March C-": (HIGH, 2, 0),
            "March B": (HIGH, 1, 0),
            "March SS": (HIGH, 2, 0),
        },
    ),
    # CFid, a↑ forces v to 1, a=HIGH > v=LOW. MATS+/March X: the only a↑ is in M1 ⇑, after v
    # already wrote 1; M2 ⇓ visits a first (r1, w0: no ↑), then v (r1 ok, w0); M3 reads 0s: missed.
    # March C-: M3 ⇓(r0,w1) visits a first, a↑ sets v to 1, then v's r0 fails.
    # March B: M4 ⇓(r0,w1,w0) does the same. March SS: M3 ⇓(r0,r0,w0,r0,w1) likewise.
    "coupling idempotent": (
        {
            "kind": "coupling_idempotent",
            "aggressor": cell(HIGH, 3),
            "victim": cell(LOW),
            "transition": "up",
            "value": 1,
        },
        {"March C-", "March B", "March SS"},
        {"March C-": (LOW, 3, 0), "March B": (LOW, 4, 0), "March SS": (LOW, 3, 0)},
    ),
    # CFst, a=0 forces v=0, a=LOW < v=HIGH. MATS+/March X: M1 ⇑ sets a=1 before v is written 1;
    # M2 ⇓ writes v=0 before a returns to 0; M3 reads 0 anyway: missed. March C-: M2 ⇑(r1,w0)
    # returns a to 0 first, forcing v to 0, and v's r1 fails.
    "coupling state": (
        {"kind": "coupling_state", "aggressor": cell(LOW, 3), "victim": cell(HIGH), "state": 0, "value": 0},
        {"March C-", "March B", "March SS"},
        {"March C-": (HIGH, 2, 0), "March B": (HIGH, 2, 0), "March SS": (HIGH, 2, 0)},
    ),
    # RDF0: reading a 0 flips the cell and returns 1: the first r0 of any march catches it.
    "read disturb": (
        {"kind": "read_disturb", "address": HIGH, "bit": BIT, "value": 0, "variant": "rdf"},
        set(ALGS),
        {"MATS+": (HIGH, 1, 0)},
    ),
    # IRF1: reading a 1 returns 0 and leaves the cell alone: every march reads 1 somewhere.
    "incorrect read": (
        {"kind": "read_disturb", "address": HIGH, "bit": BIT, "value": 1, "variant": "irf"},
        set(ALGS),
        {},
    ),
    # DRDF0: reading a 0 returns 0 but flips the cell; only two reads in a row expose it. In
    # MATS+, X, C- and B every r0 is followed by a w1 (masking the flip) or ends the test; March
    # SS's M1 ⇑(r0,r0,...) reads the flipped cell at op 1.
    "deceptive read disturb": (
        {"kind": "read_disturb", "address": HIGH, "bit": BIT, "value": 0, "variant": "drdf"},
        {"March SS"},
        {"March SS": (HIGH, 1, 1)},
    ),
    # DRF: no march without a delay element finds it (REFERENCE.md): with refresh running every
    # 32 ms no cell goes unrestored for its 500 ms.
    "retention of 1": (
        {"kind": "retention", "address": HIGH, "bit": BIT, "value": 1, "retention_ms": 500},
        set(),
        {},
    ),
    "retention of 0": (
        {"kind": "retention", "address": HIGH, "bit": BIT, "value": 0, "retention_ms": 500},
        set(),
        {},
    ),
}


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("fault_name", list(MATRIX))
def test_fault_is_found_exactly_by_the_marches_that_cover_it(fault_name: str, alg: str) -> None:
    fault, detected_by, caught = MATRIX[fault_name]
    log = run(fault, alg)
    if alg in detected_by:
        assert log, f"{alg} should detect {fault_name}"
        assert all(mask for _, mask, _, _ in log)
    else:
        assert log == [], f"{alg} should miss {fault_name} but logged {log}"
    if alg in caught:
        address, element, op = caught[alg]
        first = {entry[0]: entry for entry in log}
        assert first[address][2:] == (element, op)
        assert first[address][1] & MASK


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("value", [0, 1])
def test_retention_faults_are_found_once_delay_elements_pause_refresh(alg: str, value: int) -> None:
    # with_retention_delays holds both backgrounds for the pause before reading them back; a
    # 1000 ms pause with refresh suspended outlasts the cell's 500 ms.
    fault = {"kind": "retention", "address": HIGH, "bit": BIT, "value": value, "retention_ms": 500}
    log = run(fault, alg, delay_ms=1000)
    assert [(a, m) for a, m, _, _ in log] == [(HIGH, MASK)]


@pytest.mark.parametrize("alg", ALGS)
def test_a_pause_shorter_than_the_retention_time_still_misses(alg: str) -> None:
    fault = {"kind": "retention", "address": HIGH, "bit": BIT, "value": 1, "retention_ms": 500}
    assert run(fault, alg, delay_ms=200) == []


def test_a_fault_free_module_passes_every_algorithm_with_and_without_delays() -> None:
    clock = VirtualClock()
    dimm = SimDimm(FakeDut(), clock, 1, bare_params())
    tester = DimmTesterSim({1: dimm}, clock)
    for alg in ALGS:
        for delay in (0, 1000):
            tester.handle(f'TEST:ALG "{alg}"')
            tester.handle(f"TEST:DEL {delay}")
            tester.handle("RUN")
            assert tester.handle("STAT?") == "PASS"
            assert tester.handle("ERR:COUN?") == "0"


def test_a_custom_notation_with_its_own_delay_finds_a_retention_fault() -> None:
    clock = VirtualClock()
    dut = FakeDut()
    dimm = SimDimm(dut, clock, 1, bare_params())
    dimm.inject_fault({"kind": "retention", "address": HIGH, "bit": BIT, "value": 1, "retention_ms": 500})
    tester = DimmTesterSim({1: dimm}, clock)
    tester.handle('TEST:NOT "any(w1); del(800); any(r1)"')
    assert tester.handle("TEST:ALG?") == '"CUSTOM"'
    tester.handle("RUN")
    assert tester.handle("ERR:LOG? 0,4") == f"0x{HIGH:X},0x{MASK:016X},2,0"
    # The retention fault scales with temperature like any leakage: at 25 °C it holds 2000 ms.
    dut.temp_c = 25.0
    tester.handle("RUN")
    assert tester.handle("ERR:COUN?") == "0"
