"""Protocol tests: the DIMM tester driver's exact conversation, then the same driver over real links.

Scripted first (tests/support/scripted.py fails on any other command or a leftover pair), then
pyvisa `@py` on loopback TCP against the simulated tester, then pyvisa-sim with the dialect's
device file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivers.dimm.tester import DimmTester, FailEntry, parse_log
from drivers.errors import InstrumentError, InstrumentTimeout, ProtocolError
from drivers.protocols import MemoryTester
from drivers.transport.visa import VisaTransport
from qualify.clock import VirtualClock
from qualify.resources import fixtures_dir
from sim_instruments.dimm import DimmTesterSim, SimDimm
from sim_instruments.servers import TcpLineServer
from tests.sim.test_dimm_faults import FakeDut, bare_params
from tests.support.scripted import ScriptedTransport

OK = ("SYST:ERR?", '+0,"No error"')
IDN = "Qualify Instruments,QDT-5R8,QDT5R8-0001,1.0.0"


def scripted(pairs: list[tuple[str, str | None]], slots: int = 8) -> tuple[DimmTester, ScriptedTransport]:
    transport = ScriptedTransport(pairs, address="TCPIP::tester::5025::SOCKET")
    return DimmTester(transport, slots=slots, sleep=lambda s: None), transport


def read(driver: DimmTester, transport: VisaTransport, name: str) -> Any:
    """Query one declared reading through the driver's table."""
    reading = driver.readings[name]
    return reading.decode(transport.query(reading.render()), driver.address)


def setting(command: str) -> list[tuple[str, str | None]]:
    return [(command, None), OK]


def test_driver_provides_the_memory_tester_capability() -> None:
    driver, _ = scripted([])
    assert isinstance(driver, MemoryTester)
    assert driver.slots == tuple(range(1, 9))


def test_identify_checks_four_fields_and_the_manufacturer() -> None:
    driver, transport = scripted([("*IDN?", IDN)])
    assert driver.identify() == IDN
    transport.assert_done()
    for reply in ("Qualify Instruments,QDT-5R8,1.0.0", "Acme,QDT-5R8,1,1.0"):
        driver, _ = scripted([("*IDN?", reply)])
        with pytest.raises(ProtocolError):
            driver.identify()


def test_run_test_holds_the_documented_conversation() -> None:
    pairs = [
        *setting("SLOT 2"),
        *setting('TEST:ALG "March C-"'),
        *setting("REFR:INT 64"),
        *setting("REFR:TCR OFF"),
        *setting("TEST:DEL 500"),
        *setting("VOLT:MARG -5"),
        *setting("SLOT 2"),
        *setting("RUN"),
        *setting("SLOT 2"),
        ("STAT?", "RUNNING"),
        ("PROG?", "40.0"),
        *setting("SLOT 2"),
        ("STAT?", "FAIL"),
        ("PROG?", "100.0"),
        *setting("SLOT 2"),
        ("STAT?", "FAIL"),
        ("ERR:COUN?", "2"),
        ("ERR:LOG? 0,64", "0x2000,0x0000000000000020,2,0;0x1000,0xFFFFFFFFFFFFFFFF,3,0"),
        ("TIME?", "9.3"),
        ("ERR:BITS?", "65"),
    ]
    driver, transport = scripted(pairs)
    failing = driver.run_test(2, "March C-", 64, delay_ms=500, vdd_margin_pct=-5, tcr=False)
    assert failing == [0x1000, 0x2000]
    transport.assert_done()


def test_results_read_the_fail_log_in_pages_until_the_count() -> None:
    page1 = ";".join(f"0x{a:X},0x1,1,0" for a in range(64))
    page2 = ";".join(f"0x{a:X},0x1,1,0" for a in range(64, 70))
    driver, transport = scripted(
        [
            *setting("SLOT 1"),
            ("STAT?", "FAIL"),
            ("ERR:COUN?", "70"),
            ("ERR:LOG? 0,64", page1),
            ("ERR:LOG? 64,64", page2),
            ("TIME?", "2.5"),
            ("ERR:BITS?", "70"),
        ]
    )
    result = driver.results(1, "SOLID0")
    assert len(result.failures) == 70 and result.failures[-1] == FailEntry(69, 1, 1, 0)
    assert (result.state, result.duration_s, result.error_bits, result.passed) == ("FAIL", 2.5, 70, False)
    transport.assert_done()


def test_a_full_fail_memory_stops_the_paging() -> None:
    driver, transport = scripted(
        [
            *setting("SLOT 1"),
            ("STAT?", "FAIL"),
            ("ERR:COUN?", "5000"),
            ("ERR:LOG? 0,64", ""),
            ("TIME?", "1"),
            ("ERR:BITS?", "5000"),
        ]
    )
    assert driver.results(1).error_count == 5000
    transport.assert_done()


def test_a_rejected_setting_raises_with_the_queued_errors() -> None:
    driver, transport = scripted(
        [
            *setting("SLOT 1"),
            ("REFR:INT 64", None),
            ("SYST:ERR?", '-221,"Settings conflict; slot 1 is running"'),
            OK,
        ]
    )
    with pytest.raises(InstrumentError, match="Settings conflict; slot 1 is running"):
        driver.configure(1, refresh_ms=64)
    transport.assert_done()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "March Z"}, "unknown march algorithm"),
        ({"refresh_ms": 0.5}, "refresh interval 0.5 ms is outside 1 to 10000 ms"),
        ({"vdd_margin_pct": 12}, "VDD margin 12 % is outside -10 to 10 %"),
        ({"pattern": "STRIPES"}, "unknown pattern"),
    ],
)
def test_bad_settings_are_refused_before_sending(kwargs: dict, message: str) -> None:
    driver, transport = scripted(setting("SLOT 1"))
    with pytest.raises(ValueError, match=message):
        driver.configure(1, **kwargs)
    transport.assert_done()


def test_two_kinds_of_test_at_once_are_refused_before_anything_is_sent() -> None:
    driver, transport = scripted([])
    with pytest.raises(ValueError, match="one of algorithm, notation or pattern"):
        driver.configure(1, algorithm="MATS+", pattern="SOLID0")
    transport.assert_done()


def test_a_slot_the_tester_does_not_have_is_refused_before_sending() -> None:
    driver, transport = scripted([], slots=4)
    with pytest.raises(ValueError, match=r"slots 1\.\.4, not 5"):
        driver.start(5)
    transport.assert_done()


def test_a_run_that_ends_in_error_raises() -> None:
    driver, _ = scripted(
        [
            *setting("SLOT 1"),
            *setting('TEST:ALG "MATS+"'),
            *setting("SLOT 1"),
            *setting("RUN"),
            *setting("SLOT 1"),
            ("STAT?", "ERROR"),
            ("PROG?", "0.0"),
        ]
    )
    with pytest.raises(InstrumentError, match="ended in ERROR"):
        driver.run(1, algorithm="MATS+")


def test_waiting_gives_up_after_the_run_timeout() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 60.0
        return now[0]

    pairs = [p for _ in range(3) for p in (*setting("SLOT 1"), ("STAT?", "RUNNING"), ("PROG?", "1.0"))]
    transport = ScriptedTransport(pairs)
    driver = DimmTester(transport, sleep=lambda s: None, clock=clock, run_timeout_s=100.0)
    with pytest.raises(InstrumentTimeout, match=r"still running after 100\.0 s"):
        driver.wait(1)


def test_a_garbled_fail_log_is_a_protocol_error() -> None:
    driver, _ = scripted(
        [*setting("SLOT 1"), ("STAT?", "FAIL"), ("ERR:COUN?", "1"), ("ERR:LOG? 0,64", "0x1?0")]
    )
    with pytest.raises(ProtocolError, match="ERR:LOG"):
        driver.results(1)
    assert parse_log("") == []


def test_safe_state_aborts_and_restores_nominal_vdd_on_occupied_slots() -> None:
    driver, transport = scripted(
        [
            *setting("SLOT 1"),
            ("SLOT:PRES?", "1"),
            ("ABOR", None),
            *setting("VOLT:MARG 0"),
            *setting("SLOT 2"),
            ("SLOT:PRES?", "0"),
        ],
        slots=2,
    )
    driver.safe_state()
    transport.assert_done()


def test_settings_and_readings_are_declared_as_data_with_docstrings() -> None:
    driver, _ = scripted([])
    for entry in [*driver.settings.values(), *driver.readings.values()]:
        assert entry.doc.split()[0] in {"Set", "Get", "Measure", "Control"}


# Over a real link: pyvisa @py on loopback TCP against the simulated tester.


@pytest.fixture
def served() -> Iterator[tuple[DimmTester, dict[int, SimDimm], VisaTransport]]:
    clock = VirtualClock()
    dimms = {slot: SimDimm(FakeDut(serial=f"D{slot}", slot=slot), clock, 4, bare_params()) for slot in (1, 3)}
    server = TcpLineServer(DimmTesterSim(dimms, clock).handle)
    server.start()
    transport = VisaTransport(server.address, timeout_ms=2000)
    try:
        yield DimmTester(transport, sleep=lambda s: None), dimms, transport
    finally:
        transport.close()
        server.stop()


def test_the_driver_runs_marches_on_the_simulated_tester_over_tcp(
    served: tuple[DimmTester, dict[int, SimDimm], VisaTransport],
) -> None:
    driver, dimms, transport = served
    assert driver.identify() == IDN
    dimms[3].inject_fault(
        {
            "kind": "coupling_state",
            "aggressor": {"address": 16, "bit": 0},
            "victim": {"address": 32, "bit": 7},
        }
        | {"state": 0, "value": 0}
    )
    # The state coupling fault escapes March X but not March C- (tests/sim/test_dimm_faults.py).
    assert driver.run_test(3, "March X", 32) == []
    assert driver.run_test(3, "March C-", 32) == [32]
    assert driver.error_log(3) == [(32, 0x80, 2, 0)]
    assert driver.last_duration_s(3) == pytest.approx(10 * dimms[3].word_count * dimms[3].word_op_s, rel=1e-5)
    assert driver.run_test(1, "March C-", 32) == []
    result = driver.run(3, notation="any(w1); del(10); any(r1)", refresh_ms=16)
    assert result.passed and result.duration_s > 0.01
    assert read(driver, transport, "notation") == "any(w1); del(10); any(r1)"
    with pytest.raises(InstrumentError, match="-241,Hardware missing; no module in slot 2"):
        driver.start(2)


def test_the_driver_polls_a_tester_that_paces_runs_with_the_clock() -> None:
    clock = VirtualClock()
    dimm = SimDimm(FakeDut(), clock, 4, bare_params())
    server = TcpLineServer(DimmTesterSim({1: dimm}, clock, pace_with_clock=True).handle)
    server.start()
    transport = VisaTransport(server.address, timeout_ms=2000)
    try:
        polls: list[float] = []

        def sleep(seconds: float) -> None:
            polls.append(clock.now())
            clock.sleep(2.0)

        driver = DimmTester(transport, sleep=sleep)
        driver.configure(1, algorithm="March C-")
        driver.start(1)
        assert driver.status(1)[0] == "RUNNING"
        with pytest.raises(InstrumentError, match="Settings conflict"):
            driver.configure(1, refresh_ms=64)
        assert driver.wait(1) == "PASS"
        duration = driver.last_duration_s(1)
        assert len(polls) == int(duration // 2.0) + 1
        assert driver.status(1) == ("PASS", 100.0)
    finally:
        transport.close()
        server.stop()


def test_the_dialect_device_file_drives_the_same_driver_under_pyvisa_sim() -> None:
    pytest.importorskip("pyvisa_sim", reason="pyvisa-sim is not installed (pip install pyvisa-sim)")
    path = fixtures_dir() / "pyvisa_sim" / "dimm_tester.yaml"
    transport = VisaTransport("TCPIP::localhost::5025::SOCKET", backend=f"{path}@sim", timeout_ms=500)
    try:
        driver = DimmTester(transport, sleep=lambda s: None)
        assert driver.identify().startswith("Qualify Instruments,QDT-5R8,")
        driver.configure(2, algorithm="March SS", refresh_ms=8, tcr=False, vdd_margin_pct=-5, delay_ms=0)
        expected = {"algorithm": "March SS", "refresh_ms": 8.0, "tcr": False, "vdd_margin_pct": -5.0}
        for name, value in expected.items():
            assert read(driver, transport, name) == value
        assert driver.run_test(2, "March B", 32) == []
        assert driver.last_duration_s(2) == pytest.approx(7.45654)
        transport.write("TEST:FOO 1")
        assert transport.query("SYST:ERR?") == '-113,"Undefined header"'
    finally:
        transport.close()
