"""The simulated tester's dialect (docs/dimm_tester_dialect.md) and the DIMM station wiring in a lab."""

from __future__ import annotations

import threading

import pytest

from drivers.dimm.spd5118 import Spd5118Hub
from drivers.dimm.tester import DimmTester
from drivers.errors import InstrumentError
from drivers.transport.i2c import I2cNack, open_i2c
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from qualify.march import MARCH_C_MINUS
from sim_instruments.dimm import DimmTesterSim, SimDimm, i2c_endpoint, start_dimm_station
from sim_instruments.lab import Lab
from tests.sim.test_dimm_faults import FakeDut, bare_params


def rig(pace: bool = False, dut: FakeDut | None = None) -> tuple[DimmTesterSim, SimDimm, VirtualClock]:
    clock = VirtualClock()
    dimm = SimDimm(dut or FakeDut(slot=2), clock, 9, bare_params())
    return DimmTesterSim({2: dimm}, clock, pace_with_clock=pace), dimm, clock


def errors(tester: DimmTesterSim) -> list[str]:
    out = []
    while (reply := tester.handle("SYST:ERR?")) != '+0,"No error"':
        assert reply is not None
        out.append(reply)
    return out


def test_common_commands() -> None:
    tester, _, _ = rig()
    fields = (tester.handle("*IDN?") or "").split(",")
    assert fields == ["Qualify Instruments", "QDT-5R8", "QDT5R8-0001", "1.0.0"]
    assert tester.handle("*OPC?") == "1"
    tester.handle("BOGUS")
    tester.handle("*CLS")
    assert errors(tester) == []


def test_headers_take_short_or_long_forms_in_any_case() -> None:
    tester, _, _ = rig()
    for line in ("SLOT 2", "refresh:interval 64", ":Test:Algorithm 'MATS+'", "REFR:TCR off"):
        assert tester.handle(line) is None
    assert errors(tester) == []
    assert tester.handle("REFResh:INTerval?") == "64"
    assert tester.handle("test:alg?") == '"MATS+"'
    assert tester.handle("REFR:TCR?") == "0"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("REFR:SPEED 3", '-113,"Undefined header; REFR:SPEED"'),
        ("REFR:INT fast", "-102,\"Syntax error; expected a number, got 'fast'\""),
        ("REFR:INT 0.5", '-222,"Data out of range; 0.5 is outside 1..10000"'),
        ('TEST:ALG "March Z"', "-224,\"Illegal parameter value; unknown algorithm 'March Z'\""),
        ("TEST:PATT PLAID", "-224,\"Illegal parameter value; unknown pattern 'PLAID'\""),
        ("REFR:TCR MAYBE", "-224,\"Illegal parameter value; REFR:TCR takes ON or OFF, not 'MAYBE'\""),
        ("SLOT 9", '-222,"Data out of range; slot 9 is outside 1..8"'),
        ("HAMM:SIDE 65", '-222,"Data out of range; 65 is outside 1..64"'),
        ("ERR:LOG? 3", '-109,"Missing parameter; ERR:LOG? takes <first>,<count>"'),
        ("ERR:LOG? 0,65", '-222,"Data out of range; ERR:LOG? first >= 0 and count 1..64"'),
    ],
)
def test_rejected_commands_queue_the_documented_error_and_do_not_answer(line: str, error: str) -> None:
    tester, _, _ = rig()
    tester.handle("SLOT 2")
    assert tester.handle(line) is None
    assert errors(tester) == [error]


def test_an_empty_slot_is_hardware_missing() -> None:
    tester, _, _ = rig()
    tester.handle("SLOT 1")
    assert tester.handle("SLOT:PRES?") == "0"
    tester.handle("RUN")
    assert errors(tester) == ['-241,"Hardware missing; no module in slot 1"']
    tester.handle("SLOT 2")
    assert tester.handle("SLOT:PRES?") == "1"
    assert tester.handle("SLOT:COUN?") == "8"


def test_the_error_queue_holds_ten_and_marks_an_overflow() -> None:
    tester, _, _ = rig()
    for _ in range(12):
        tester.handle("NOPE")
    queued = errors(tester)
    assert len(queued) == 10 and queued[-1] == '-350,"Queue overflow"'


def test_reset_returns_every_slot_to_its_defaults() -> None:
    tester, _, _ = rig()
    for line in ("SLOT 2", "REFR:INT 500", 'TEST:ALG "March SS"', "RUN", "*RST"):
        tester.handle(line)
    assert tester.handle("SLOT?") == "1"
    tester.handle("SLOT 2")
    assert tester.handle("REFR:INT?") == "32"
    assert tester.handle("TEST:ALG?") == '"March C-"'
    assert tester.handle("STAT?") == "IDLE"


def test_run_time_is_ops_per_cell_times_words_at_the_modules_rate_plus_pauses() -> None:
    tester, dimm, _ = rig()
    for line in ("SLOT 2", 'TEST:ALG "March C-"', "TEST:DEL 250", "RUN"):
        tester.handle(line)
    expected = MARCH_C_MINUS.ops_per_cell * dimm.word_count * dimm.word_op_s + 5 * 0.25
    assert float(tester.handle("TIME?") or "") == pytest.approx(expected, rel=1e-5)
    # DDR5-5600 at 60 % bus efficiency moves a 64-bit word in 1 / 3.36 GHz.
    assert dimm.word_op_s == pytest.approx(1 / 3.36e9)


def test_a_paced_run_reports_progress_refuses_changes_and_can_be_aborted() -> None:
    tester, _, clock = rig(pace=True)
    for line in ("SLOT 2", 'TEST:ALG "March C-"', "RUN"):
        tester.handle(line)
    duration = float(tester.handle("TIME?") or "")
    assert tester.handle("STAT?") == "RUNNING"
    clock.sleep(duration / 4)
    assert float(tester.handle("PROG?") or "") == pytest.approx(25.0)
    tester.handle("REFR:INT 64")
    assert tester.handle("ERR:COUN?") is None
    assert errors(tester) == [
        '-221,"Settings conflict; slot 2 is running"',
        '-221,"Settings conflict; the run has not finished"',
    ]
    tester.handle("ABOR")
    assert tester.handle("STAT?") == "ABORTED"
    assert tester.handle("ERR:COUN?") == "0"
    tester.handle("RUN")
    clock.sleep(duration + 1)
    assert (tester.handle("STAT?"), tester.handle("PROG?")) == ("PASS", "100.0")


def test_an_unpowered_module_cannot_be_margined_or_run() -> None:
    dut = FakeDut(slot=2)
    tester, _, _ = rig(dut=dut)
    dut.on = False
    for line in ("SLOT 2", "VOLT:MARG -5", "RUN"):
        tester.handle(line)
    assert errors(tester) == [
        '-240,"Hardware error; slot 2: module not powered"',
        '-240,"Hardware error; slot 2: module not powered"',
    ]
    assert tester.handle("STAT?") == "ERROR"


def test_the_station_wires_dimms_buses_and_tester_into_a_lab() -> None:
    clock = VirtualClock()
    lab = Lab(
        clock,
        21,
        {
            "supplies": [{"name": "psu1", "model": "E36313A"}],
            "duts": [
                {"slot": 1, "kind": "dimm", "serial": "R1", "supply": "psu1", "channel": 2},
                {
                    "slot": 2,
                    "kind": "dimm",
                    "serial": "R2",
                    "supply": "psu1",
                    "channel": 3,
                    "model": "rdimm_weak_retention",
                },
                {"slot": 3, "kind": "ssd", "serial": "S3", "supply": "psu1", "channel": 1},
            ],
            "faults": [{"target": "slot2", "kind": "pmic_shutdown", "at_s": 600.0}],
        },
    )
    station = start_dimm_station(lab, clock, 21)
    try:
        assert sorted(station.dimms) == [1, 2]
        assert station.dimms[2].params.name == "rdimm_weak_retention"
        assert (
            set(station.endpoints)
            == {i2c_endpoint(1), i2c_endpoint(2)}
            == {"sim-i2c://slot1", "sim-i2c://slot2"}
        )
        for line in ("VOLT 12,(@2)", "VOLT 12,(@3)", "CURR 1,(@2)", "CURR 1,(@3)", "OUTP ON,(@2,3)"):
            lab.command("psu1", line)
        hub = Spd5118Hub(open_i2c("sim-i2c://slot2", endpoints=station.endpoints))
        assert hub.read_decoded().part_number.startswith("KF552C40")
        transport = VisaTransport(station.address, timeout_ms=2000)
        try:
            driver = DimmTester(transport, sleep=lambda s: None)
            assert driver.run_test(1, "March C-", 32) == []
            assert lab.snapshot()["devices"]["2"]["serial"] == "R2"
            clock.sleep(700.0)
            lab.command("psu1", "OUTP? (@2)")  # any lab activity hands due device faults over
            with pytest.raises(InstrumentError, match="module not powered"):
                driver.run_test(2, "March C-", 32)
        finally:
            transport.close()
        lab.command("psu1", "OUTP OFF,(@2,3)")
        with pytest.raises(I2cNack, match="not powered"):
            hub.read_temperature()
    finally:
        station.stop()


def test_the_tester_answers_the_labs_fault_hooks() -> None:
    tester, _, _ = rig()
    assert tester.is_measurement("TEMP?") and tester.is_measurement(":volt:vdd?")
    assert not tester.is_measurement("RUN") and not tester.is_measurement("ERR:COUN?")
    assert tester.impostor_reply("*IDN?") == "Qualify Instruments,QDT-5R4,QDT5R8-0001,1.0.0"
    assert tester.impostor_reply("STAT?") is None


def test_sideband_traffic_and_a_tester_run_inside_the_labs_lock_do_not_deadlock() -> None:
    # A tester served through Lab.respond runs with the lab's lock held and takes the module's;
    # a hub read takes the module's lock and needs the lab's temperature. The module samples the
    # lab before locking itself, so neither waits on the other.
    clock = VirtualClock()
    lab = Lab(
        clock,
        5,
        {
            "supplies": [{"name": "psu1", "model": "E36313A"}],
            "duts": [{"slot": 1, "kind": "dimm", "serial": "R1", "supply": "psu1", "channel": 2}],
        },
    )
    station = start_dimm_station(lab, clock, 5, serve=False)
    for line in ("VOLT 12,(@2)", "CURR 1,(@2)", "OUTP ON,(@2)"):
        lab.command("psu1", line)
    hub = Spd5118Hub(station.endpoints["sim-i2c://slot1"])
    failures: list[BaseException] = []

    def sideband() -> None:
        try:
            for _ in range(1000):
                hub.read_temperature()
        except BaseException as exc:
            failures.append(exc)

    def tester_in_lab_lock() -> None:
        try:
            for _ in range(20):
                with lab._lock:  # what Lab.respond holds while an instrument handles a line
                    station.tester.handle('TEST:ALG "MATS+"')
                    station.tester.handle("RUN")
                lab.snapshot()
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=sideband, daemon=True),
        threading.Thread(target=tester_in_lab_lock, daemon=True),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "deadlock between the lab and the module"
    assert failures == []
