"""SPD5118 hub and PMIC drivers against the simulated sideband: byte-exact transactions and behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.dimm.pmic import Pmic5000
from drivers.dimm.spd import decode_spd
from drivers.dimm.spd5118 import Spd5118Hub, WriteProtectedError
from drivers.dimm.spd5118 import decode_temperature as driver_decode
from drivers.dimm.spd5118 import encode_temperature as driver_encode
from drivers.errors import InstrumentError
from drivers.protocols import Pmic, SpdHub
from drivers.transport.i2c import BusPirateI2c, I2cNack, I2cTransport
from qualify.clock import VirtualClock
from qualify.resources import fixtures_dir
from sim_instruments.dimm import DimmTesterSim, SimDimm, make_dimm
from sim_instruments.dimm.buspirate import BusPiratePty
from sim_instruments.dimm.device import stamp_serial
from sim_instruments.dimm.i2c_bus import I2cTransaction
from sim_instruments.dimm.params import DimmModelParams
from sim_instruments.dimm.spd_hub import decode_temperature as sim_decode
from sim_instruments.dimm.spd_hub import encode_temperature as sim_encode
from sim_instruments.lab import Lab
from tests.sim.test_dimm_faults import FakeDut

IMAGES = sorted((fixtures_dir() / "spd").glob("*.rdimm.bin"))
HUB, PMIC = 0x50, 0x48


def module(dut: FakeDut | None = None, *, write_protect_override: bool = False) -> SimDimm:
    return make_dimm(
        dut or FakeDut(), VirtualClock(), 2, "rdimm_healthy", write_protect_override=write_protect_override
    )


def sent(dimm: SimDimm) -> list[tuple[int, bytes, int]]:
    """Return the bus log as (address, bytes written, bytes read) and clear it."""
    out = [(t.addr, t.written, len(t.read)) for t in dimm.bus.log]
    dimm.bus.log.clear()
    return out


def test_drivers_provide_their_capabilities_and_the_bus_is_an_i2c_transport() -> None:
    dimm = module()
    assert isinstance(dimm.bus, I2cTransport)
    assert isinstance(Spd5118Hub(dimm.bus), SpdHub)
    assert isinstance(Pmic5000(dimm.bus), Pmic)
    assert Spd5118Hub(dimm.bus, hid=3).address == "sim-i2c://slot1@0x53"


@pytest.mark.parametrize("image_path", IMAGES, ids=lambda p: p.name)
def test_every_rdimm_image_reads_back_through_the_hub_with_a_valid_crc(image_path: Path) -> None:
    dut = FakeDut()
    # The module carries its DUT's serial, so the image differs from the file only there.
    image = stamp_serial(image_path.read_bytes(), dut.serial)
    dimm = SimDimm(dut, VirtualClock(), 2, DimmModelParams(name="img", spd_image=image_path.name))
    hub = Spd5118Hub(dimm.bus)
    assert hub.read_spd() == image
    spd = hub.read_decoded()
    assert spd.crc_valid and spd.crc_stored == decode_spd(image).crc_computed
    assert spd.serial_number == decode_spd(image).serial_number
    assert hub.identify().startswith("SPD5118 vendor ")


def test_reading_the_spd_selects_each_page_then_returns_to_page_0() -> None:
    dimm = module()
    Spd5118Hub(dimm.bus).read_spd()
    expected = []
    for page in range(8):
        expected += [(HUB, bytes((0x0B, page)), 0), (HUB, b"\x80", 128)]
    assert sent(dimm) == [*expected, (HUB, b"\x0b\x00", 0)]
    assert dimm.hub.page == 0


def test_a_hub_left_on_another_page_hides_its_volatile_registers() -> None:
    dimm = module()
    dimm.bus.write(HUB, b"\x0b\x03")
    assert dimm.bus.write_read(HUB, b"\x31", 2) == b"\x00\x00"
    assert dimm.bus.write_read(HUB, b"\x0b", 1) == b"\x03"
    dimm.bus.write(HUB, b"\x0b\x00")
    assert dimm.bus.write_read(HUB, b"\x00", 2) == b"\x51\x18"


@pytest.mark.parametrize(
    ("temp_c", "word"),
    [
        (25.0, 0x0190),
        (-40.0, 0x1D80),
        (-0.25, 0x1FFC),
        (0.0, 0x0000),
        (85.25, 0x0554),
        (255.75, 0x0FFC),
        (-256.0, 0x1000),
    ],
)
def test_temperature_encoding_matches_the_register_format_both_ways(temp_c: float, word: int) -> None:
    # 11-bit two's complement in bits 12:2, 0.25 °C per LSB: -40 °C is -160 = 0x760 → 0x1D80.
    assert driver_encode(temp_c) == sim_encode(temp_c) == word
    assert driver_decode(word) == sim_decode(word) == temp_c


def test_temperature_encoding_round_trips_over_the_whole_range_in_quarter_degrees() -> None:
    for raw in range(-1024, 1024):
        temp_c = raw / 4
        assert driver_decode(sim_encode(temp_c)) == temp_c


def test_the_hub_reads_the_lab_temperature_including_below_zero() -> None:
    clock = VirtualClock()
    lab = Lab(
        clock,
        11,
        {
            "chamber": {"name": "chamber", "ambient_c": 25, "min_c": -40, "max_c": 150},
            "supplies": [{"name": "psu1", "model": "E36313A"}],
            "duts": [{"slot": 1, "kind": "dimm", "serial": "DIMM0001", "supply": "psu1", "channel": 2}],
        },
    )
    dut = lab.dut(1)
    dimm = make_dimm(dut, clock, 11, "rdimm_healthy")
    lab.attach_device(1, dimm)
    hub = Spd5118Hub(dimm.bus)
    with pytest.raises(I2cNack, match="not powered"):
        hub.read_temperature()
    for line in ("VOLT 12,(@2)", "CURR 1,(@2)", "OUTP ON,(@2)"):
        lab.command("psu1", line)
    readings = []
    for setpoint in (85, -30):
        lab.command("chamber", f"TEMP, S{setpoint}")
        lab.command("chamber", "MODE, CONSTANT")
        clock.sleep(4 * 3600)
        reading = hub.read_temperature()
        assert reading == pytest.approx(dut.temperature_c(), abs=0.125)
        readings.append(reading)
    assert readings[0] > 80 and readings[1] < -20
    lab.command("psu1", "OUTP OFF,(@2)")
    with pytest.raises(I2cNack):
        hub.read_spd()


def test_temperature_limits_latch_alarms_until_cleared() -> None:
    dut = FakeDut(temp_c=90.0)
    dimm = module(dut)
    # Power-on limits: high 55 °C, critical 85 °C; MR51 bit 0 high, bit 2 critical.
    assert dimm.bus.write_read(HUB, b"\x33", 1) == b"\x05"
    dut.temp_c = 40.0
    assert dimm.bus.write_read(HUB, b"\x33", 1) == b"\x05"
    dimm.bus.write(HUB, b"\x13\x05")
    assert dimm.bus.write_read(HUB, b"\x33", 1) == b"\x00"


def test_factory_protection_covers_blocks_0_to_9_and_leaves_the_end_user_area_open() -> None:
    assert Spd5118Hub(module().bus).write_protection() == 0x03FF


def test_end_user_writes_persist_and_survive_snapshot_and_restore() -> None:
    dut = FakeDut()
    dimm = module(dut)
    hub = Spd5118Hub(dimm.bus)
    data = bytes(range(40))
    hub.write_end_user(0x2F8, data)
    image = hub.read_spd()
    assert image[0x2F8:0x320] == data
    assert decode_spd(image).crc_valid  # the end-user area lies outside the CRC
    fresh = module(dut)
    assert Spd5118Hub(fresh.bus).read_spd() != image
    fresh.restore(dimm.snapshot())
    assert Spd5118Hub(fresh.bus).read_spd() == image


def test_end_user_writes_go_in_16_byte_rows_per_page_and_are_verified() -> None:
    dimm = module()
    hub = Spd5118Hub(dimm.bus)
    hub.write_end_user(0x2F8, bytes(range(40)))
    rows = [(t[1][0], len(t[1]) - 1) for t in sent(dimm) if t[1][:1] and t[1][0] & 0x80 and t[2] == 0]
    # 0x2F8..0x2FF on page 5 (offset 0x78), then 0x300..0x30F and 0x310..0x31F on page 6.
    assert rows == [(0x80 | 0x78, 8), (0x80 | 0x00, 16), (0x80 | 0x10, 16)]


def test_writes_outside_the_end_user_area_are_refused_before_sending() -> None:
    dimm = module()
    hub = Spd5118Hub(dimm.bus)
    with pytest.raises(ValueError, match=r"end-user writes lie in 0x280\.\.0x3FF"):
        hub.write_end_user(0x27F, b"\x01\x02")
    assert sent(dimm) == []


def test_the_hub_refuses_protected_writes_on_the_bus() -> None:
    dimm = module()
    before = bytes(dimm.hub.nvm)
    dimm.bus.write(HUB, b"\x0b\x02")  # page 2: bytes 0x100..0x17F, protected
    with pytest.raises(I2cNack, match="write-protected block 4"):
        dimm.bus.write(HUB, b"\x80" + bytes(16))
    assert bytes(dimm.hub.nvm) == before


def test_protection_changes_only_in_write_protect_override() -> None:
    hub = Spd5118Hub(module().bus)
    assert not hub.write_protect_override()
    with pytest.raises(InstrumentError, match="override is off"):
        hub.set_write_protection(0xFFFF)
    assert hub.write_protection() == 0x03FF


def test_protecting_an_end_user_block_makes_the_driver_refuse_writes_to_it() -> None:
    dimm = module(write_protect_override=True)
    hub = Spd5118Hub(dimm.bus)
    assert hub.write_protect_override()
    hub.set_write_protection(0x07FF)  # block 10 = 0x280..0x2BF
    sent(dimm)
    with pytest.raises(WriteProtectedError, match=r"blocks \[10\]"):
        hub.write_end_user(0x2B0, b"\xaa" * 4)
    assert [t for t in sent(dimm) if t[1][:1] == b"\xb0"] == []
    hub.write_end_user(0x2C0, b"\xbb" * 4)
    hub.set_write_protection(0x03FF)
    hub.write_end_user(0x2B0, b"\xcc" * 4)


def test_pmic_telemetry_reads_rails_input_and_follows_the_module_power() -> None:
    dut = FakeDut()
    dimm = module(dut)
    pmic = Pmic5000(dimm.bus, adc_settle_s=0)
    rails = pmic.read_rails()
    assert set(rails) == {"VDD", "VDDQ", "VPP"}
    # ADC: 15 mV per LSB, so 1.1 V reads 73 LSB = 1.095 V and 1.8 V reads 1.800 V.
    assert rails["VDD"][0] == pytest.approx(1.095)
    assert rails["VDDQ"][0] == pytest.approx(1.095)
    assert rails["VPP"][0] == pytest.approx(1.8)
    assert pmic.read_input_voltage() == pytest.approx(11.97)
    out_w = sum(volts * amps for volts, amps in rails.values())
    assert out_w == pytest.approx(0.88 * 0.90 * dut.power_w(), abs=0.4)  # 125 mA telemetry steps
    assert pmic.identify() == "PMIC vendor 00:33"


def test_pmic_margining_changes_the_rail_and_is_byte_exact() -> None:
    dimm = module()
    pmic = Pmic5000(dimm.bus, adc_settle_s=0)
    sent(dimm)
    pmic.set_rail_voltage("VDDQ", 1.2)
    # 1.2 V on SWC: VID (1.2 - 0.8) / 0.005 = 80, register 0xA0; R2F enters and leaves programmable mode.
    assert sent(dimm) == [
        (PMIC, b"\x2f", 1),
        (PMIC, b"\x2f\x04", 0),
        (PMIC, b"\x25", 1),
        (PMIC, b"\x25\xa0", 0),
        (PMIC, b"\x25", 1),
        (PMIC, b"\x2f\x00", 0),
    ]
    assert pmic.rail_setpoint("VDDQ") == pytest.approx(1.2)
    assert pmic.read_rails()["VDDQ"][0] == pytest.approx(1.2)
    pmic.set_rail_voltage("VDD", 1.045)
    assert pmic.rail_setpoint("SWA") == pmic.rail_setpoint("SWB") == pytest.approx(1.045)
    assert pmic.read_rails()["VDD"][0] == pytest.approx(1.05)  # 70 LSB of 15 mV


@pytest.mark.parametrize(("rail", "volts"), [("VDD", 1.047), ("VDD", 1.5), ("VPP", 1.45), ("VCC", 1.1)])
def test_pmic_refuses_settings_off_the_grid_or_range_before_sending(rail: str, volts: float) -> None:
    dimm = module()
    sent(dimm)
    with pytest.raises(ValueError):
        Pmic5000(dimm.bus).set_rail_voltage(rail, volts)
    assert sent(dimm) == []


def test_a_pmic_in_secure_mode_that_ignores_the_setting_is_reported() -> None:
    dimm = module()

    class SecureOnly:
        """Drops the writes that would leave secure mode, as a locked PMIC does."""

        address = "secure"

        def write(self, addr: int, data: bytes) -> None:
            if data[:1] != b"\x2f":
                dimm.bus.write(addr, data)

        def write_read(self, addr: int, data: bytes, n: int) -> bytes:
            return dimm.bus.write_read(addr, data, n)

        def close(self) -> None:
            pass

    with pytest.raises(InstrumentError, match=r"SWA did not take 1\.050 V"):
        Pmic5000(SecureOnly()).set_rail_voltage("VDD", 1.05)


def test_pmic_margining_moves_the_modules_vmin_behaviour() -> None:
    dut = FakeDut(temp_c=95.0)
    dimm = module(dut)
    tester = DimmTesterSim({1: dimm}, VirtualClock())
    pmic = Pmic5000(dimm.bus, adc_settle_s=0)

    def failures() -> int:
        tester.handle('TEST:ALG "March C-"')
        tester.handle("RUN")
        return int(tester.handle("ERR:COUN?") or "")

    assert failures() == 0
    pmic.set_rail_voltage("VDD", 1.0)
    assert tester.handle("VOLT:VDD?") == "1.0000"
    hot = failures()
    assert hot > 0
    dut.temp_c = 25.0
    assert failures() < hot
    pmic.set_rail_voltage("VDD", 1.1)
    dut.temp_c = 95.0
    assert failures() == 0


def test_a_shut_down_pmic_or_hung_sideband_shows_on_the_bus() -> None:
    dimm = module()
    pmic = Pmic5000(dimm.bus, adc_settle_s=0)
    dimm.inject("pmic_shutdown", at_s=1.0)
    assert not pmic.regulators_enabled()
    assert pmic.read_rails()["VDD"] == (0.0, 0.0)
    dimm.inject("sideband_hang", at_s=2.0)
    with pytest.raises(I2cNack, match="hung"):
        Spd5118Hub(dimm.bus).read_temperature()


def test_the_drivers_work_unchanged_through_an_emulated_bus_pirate_on_a_pty() -> None:
    dimm = module()
    pirate = BusPiratePty(dimm.bus)
    pirate.start()
    try:
        transport = BusPirateI2c(pirate.address, timeout_s=2.0)
        try:
            hub = Spd5118Hub(transport)
            assert hub.read_spd() == bytes(dimm.hub.nvm)
            assert hub.read_temperature() == 45.0
            hub.write_end_user(0x3F0, b"bus pirate!")
            assert bytes(dimm.hub.nvm[0x3F0:0x3FB]) == b"bus pirate!"
            assert Pmic5000(transport, adc_settle_s=0).read_rails()["VPP"][0] == pytest.approx(1.8)
            with pytest.raises(I2cNack, match="0x57 did not acknowledge its address"):
                transport.write_read(0x57, b"\x00", 1)
        finally:
            transport.close()
    finally:
        pirate.stop()


def test_bus_log_records_what_a_transaction_carried() -> None:
    dimm = module()
    dimm.bus.write_read(HUB, b"\x00", 2)
    assert dimm.bus.log == [I2cTransaction(HUB, b"\x00", b"\x51\x18")]
    with pytest.raises(I2cNack, match="no device"):
        dimm.bus.write(0x30, b"\x00")


def test_the_hub_driver_reads_the_temperature_even_if_someone_left_another_page() -> None:
    dimm = module(FakeDut(temp_c=61.5))
    dimm.bus.write(HUB, b"\x0b\x05")
    sent(dimm)
    assert Spd5118Hub(dimm.bus).read_temperature() == 61.5
    assert sent(dimm) == [(HUB, b"\x0b\x00", 0), (HUB, b"\x31", 2)]
