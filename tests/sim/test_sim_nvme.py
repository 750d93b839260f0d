"""The NVMe driver against the simulated controller: pages round-trip, errors and faults."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

import pytest

from drivers.errors import DeviceCommandError, InstrumentError, InstrumentTimeout
from drivers.nvme import commands as cmds
from drivers.nvme.commands import NvmeCommand, ThresholdType
from drivers.nvme.controller import NvmeDriver
from drivers.nvme.structures import SmartLog
from drivers.protocols import NvmeController
from drivers.transport.nvme_passthrough import NvmePassthrough
from sim_instruments.nvme_ssd import (
    SimHealth,
    SimNvmeController,
    SimNvmeIdentity,
    SimNvmeTransport,
)

BIG = 2**64 + 7  # above 64 bits, to catch a side that drops the upper half of a u128

IDENTITY = SimNvmeIdentity(
    serial="QSIM0001",
    model="qualify sim enterprise NVMe 3.84TB",
    firmware="SIM1.0.3",
    capacity_bytes=3_840_755_982_336,
    vid=0x1E0F,
    ssvid=0x1E0F,
    lba_sizes_bytes=(512, 4096),
    active_lba_index=1,
    version=(1, 4, 0),
    wctemp_k=348,
    cctemp_k=361,
)

HEALTH = SimHealth(
    temperature_k=321,
    available_spare_pct=93,
    available_spare_threshold_pct=5,
    percentage_used_pct=42,
    endurance_group_critical_warning=0x01,
    data_units_read=BIG + 1,
    data_units_written=BIG + 2,
    host_read_commands=BIG + 3,
    host_write_commands=BIG + 4,
    controller_busy_time_min=4_321,
    power_cycles=77,
    power_on_hours=8_760,
    unsafe_shutdowns=3,
    media_errors=BIG + 5,
    num_err_log_entries=12,
    critical_warning=0b0000_0101,
    warning_temp_time_min=9,
    critical_temp_time_min=2,
    temperature_sensors_k=(318, 0, 325),
    thermal_mgmt_temp1_transitions=4,
    thermal_mgmt_temp2_transitions=1,
    thermal_mgmt_temp1_time_s=600,
    thermal_mgmt_temp2_time_s=60,
)


class World:
    """A stand-in for the lab world model: hands the controller the current health."""

    def __init__(self, health: SimHealth) -> None:
        self.health = health

    def __call__(self) -> SimHealth:
        return self.health


@pytest.fixture
def world() -> World:
    return World(HEALTH)


@pytest.fixture
def controller(world: World) -> SimNvmeController:
    return SimNvmeController(IDENTITY, world)


@pytest.fixture
def transport(controller: SimNvmeController) -> SimNvmeTransport:
    return SimNvmeTransport(controller)


@pytest.fixture
def driver(transport: SimNvmeTransport) -> NvmeDriver:
    return NvmeDriver(transport)


def test_driver_and_transport_implement_their_protocols(
    driver: NvmeDriver, transport: SimNvmeTransport
) -> None:
    assert isinstance(driver, NvmeController)
    assert isinstance(transport, NvmePassthrough)
    assert driver.address == transport.address == "sim-nvme:QSIM0001"


def test_identify_controller_reports_the_simulated_identity(driver: NvmeDriver) -> None:
    ident = driver.identify_controller()
    assert ident.serial_number == IDENTITY.serial
    assert ident.model_number == IDENTITY.model
    assert ident.firmware_revision == IDENTITY.firmware
    assert ident.vid == IDENTITY.vid
    assert ident.ssvid == IDENTITY.ssvid
    assert ident.ieee_oui == IDENTITY.ieee_oui
    assert ident.version == IDENTITY.version
    assert ident.wctemp_k == IDENTITY.wctemp_k
    assert ident.cctemp_k == IDENTITY.cctemp_k
    assert ident.tnvmcap_bytes == IDENTITY.capacity_bytes
    assert ident.cntlid == IDENTITY.cntlid
    assert ident.mdts == IDENTITY.mdts
    assert ident.sanicap == IDENTITY.sanicap
    assert ident.nn == 1
    assert ident.volatile_write_cache_present is IDENTITY.volatile_write_cache
    assert ident.smart_per_namespace is False
    assert IDENTITY.serial in ident.subnqn


def test_identify_namespace_reports_both_lba_formats(driver: NvmeDriver) -> None:
    ns = driver.identify_namespace(1)
    assert [f.block_size_bytes for f in ns.lba_formats] == [512, 4096]
    assert ns.formatted_lba_index == IDENTITY.active_lba_index
    assert ns.block_size_bytes == 4096
    assert ns.nsze_blocks == IDENTITY.capacity_bytes // 4096
    assert ns.ncap_blocks == ns.nsze_blocks
    assert ns.size_bytes == IDENTITY.capacity_bytes
    assert ns.nvmcap_bytes == IDENTITY.capacity_bytes


# How each SimHealth field reads back from the decoded SMART page.
ROUND_TRIP: dict[str, Callable[[SmartLog], Any]] = {
    "temperature_k": lambda s: s.temperature_k,
    "available_spare_pct": lambda s: s.available_spare_pct,
    "available_spare_threshold_pct": lambda s: s.available_spare_threshold_pct,
    "percentage_used_pct": lambda s: s.percentage_used_pct,
    "endurance_group_critical_warning": lambda s: s.endurance_group_critical_warning,
    "data_units_read": lambda s: s.data_units_read,
    "data_units_written": lambda s: s.data_units_written,
    "host_read_commands": lambda s: s.host_read_commands,
    "host_write_commands": lambda s: s.host_write_commands,
    "controller_busy_time_min": lambda s: s.controller_busy_time_min,
    "power_cycles": lambda s: s.power_cycles,
    "power_on_hours": lambda s: s.power_on_hours,
    "unsafe_shutdowns": lambda s: s.unsafe_shutdowns,
    "media_errors": lambda s: s.media_errors,
    "num_err_log_entries": lambda s: s.num_err_log_entries,
    "critical_warning": lambda s: int(s.critical_warning),
    "warning_temp_time_min": lambda s: s.warning_temp_time_min,
    "critical_temp_time_min": lambda s: s.critical_temp_time_min,
    "temperature_sensors_k": lambda s: tuple(t or 0 for t in s.temperature_sensors_k),
    "thermal_mgmt_temp1_transitions": lambda s: s.thermal_mgmt_temp1_transitions,
    "thermal_mgmt_temp2_transitions": lambda s: s.thermal_mgmt_temp2_transitions,
    "thermal_mgmt_temp1_time_s": lambda s: s.thermal_mgmt_temp1_time_s,
    "thermal_mgmt_temp2_time_s": lambda s: s.thermal_mgmt_temp2_time_s,
}


def test_round_trip_table_covers_every_sim_health_field() -> None:
    assert set(ROUND_TRIP) == {f.name for f in dataclasses.fields(SimHealth)}


def test_every_sim_health_field_round_trips_through_the_smart_page(driver: NvmeDriver) -> None:
    smart = driver.smart_log()
    expected_sensors = HEALTH.temperature_sensors_k + (0,) * (8 - 3)
    for name, read in ROUND_TRIP.items():
        expected = getattr(HEALTH, name)
        if name == "temperature_sensors_k":
            expected = expected_sensors
        assert read(smart) == expected, name
    assert smart.spare_below_threshold is True
    assert smart.reliability_degraded is True
    assert smart.temperature_warning is False
    assert smart.temperature_sensors_k[1] is None


def test_smart_log_follows_the_world_model(driver: NvmeDriver, world: World) -> None:
    assert driver.smart_log().power_on_hours == 8_760
    world.health = dataclasses.replace(HEALTH, power_on_hours=9_000, media_errors=0)
    smart = driver.smart_log()
    assert smart.power_on_hours == 9_000
    assert smart.media_errors == 0


def test_percentage_used_saturates_at_255(driver: NvmeDriver, world: World) -> None:
    world.health = dataclasses.replace(HEALTH, percentage_used_pct=312)
    assert driver.smart_log().percentage_used_pct == 255


def test_sim_smart_page_sits_at_spec_offsets(transport: SimNvmeTransport) -> None:
    completion, page = transport.admin(cmds.smart_log())
    assert completion.ok
    assert len(page) == 512
    assert page[0] == 0b0000_0101
    assert struct.unpack_from("<H", page, 1)[0] == 321
    assert tuple(page[3:7]) == (93, 5, 42, 0x01)
    assert int.from_bytes(page[32:48], "little") == BIG + 1
    assert int.from_bytes(page[160:176], "little") == BIG + 5
    assert struct.unpack_from("<II", page, 192) == (9, 2)
    assert struct.unpack_from("<8H", page, 200) == (318, 0, 325, 0, 0, 0, 0, 0)
    assert struct.unpack_from("<IIII", page, 216) == (4, 1, 600, 60)
    assert page[232:] == bytes(512 - 232)


def test_sim_identify_pages_sit_at_spec_offsets(transport: SimNvmeTransport) -> None:
    _, ctrl = transport.admin(cmds.identify_controller())
    assert struct.unpack_from("<HH", ctrl, 0) == (0x1E0F, 0x1E0F)
    assert ctrl[4:24] == b"QSIM0001".ljust(20, b" ")
    assert ctrl[64:72] == b"SIM1.0.3"
    assert struct.unpack_from("<I", ctrl, 80)[0] == 0x00010400
    assert struct.unpack_from("<HH", ctrl, 266) == (348, 361)
    assert int.from_bytes(ctrl[280:296], "little") == IDENTITY.capacity_bytes
    assert struct.unpack_from("<I", ctrl, 516)[0] == 1
    _, ns = transport.admin(cmds.identify_namespace(1))
    assert struct.unpack_from("<Q", ns, 0)[0] == IDENTITY.capacity_bytes // 4096
    assert (ns[25], ns[26]) == (1, 1)
    assert struct.unpack_from("<II", ns, 128) == ((9 << 16) | (2 << 24), 12 << 16)


def test_short_smart_read_returns_the_first_bytes(transport: SimNvmeTransport) -> None:
    _, full = transport.admin(cmds.smart_log())
    completion, head = transport.admin(cmds.get_log_page(0x02, 0xFFFFFFFF, length_bytes=64))
    assert completion.ok
    assert head == full[:64]


def test_smart_read_from_an_offset(transport: SimNvmeTransport) -> None:
    _, full = transport.admin(cmds.smart_log())
    _, part = transport.admin(cmds.get_log_page(0x02, 0xFFFFFFFF, length_bytes=32, offset_bytes=192))
    assert part == full[192:224]


def test_temperature_threshold_defaults_to_wctemp_and_can_be_set(driver: NvmeDriver) -> None:
    assert driver.get_temperature_threshold() == IDENTITY.wctemp_k
    assert driver.get_temperature_threshold(threshold_type=ThresholdType.UNDER) == 0
    driver.set_temperature_threshold(352)
    assert driver.get_temperature_threshold() == 352
    driver.set_temperature_threshold(280, sensor=3, threshold_type=ThresholdType.UNDER)
    assert driver.get_temperature_threshold(sensor=3, threshold_type=ThresholdType.UNDER) == 280
    assert driver.get_temperature_threshold(sensor=1) == 0xFFFF


def test_lowering_the_threshold_below_the_temperature_raises_the_warning(
    driver: NvmeDriver,
) -> None:
    assert driver.smart_log().temperature_warning is False
    driver.set_temperature_threshold(HEALTH.temperature_k)
    assert driver.smart_log().temperature_warning is True
    driver.set_temperature_threshold(IDENTITY.wctemp_k)
    assert driver.smart_log().temperature_warning is False


def test_threshold_for_an_absent_sensor_is_an_invalid_field(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError, match=r"Invalid Field in Command \(SCT 0, SC 02h\)"):
        driver.get_temperature_threshold(sensor=2)  # sensor 2 reads 0: not implemented


def test_unknown_admin_opcode_raises_invalid_command_opcode(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError) as excinfo:
        driver.admin_command(NvmeCommand(opcode=0x7C))
    assert "Invalid Command Opcode (SCT 0, SC 01h)" in str(excinfo.value)
    assert "do not retry" in str(excinfo.value)
    assert excinfo.value.status == 0x4001
    assert excinfo.value.address == "sim-nvme:QSIM0001"


def test_unsupported_cns_raises_invalid_field(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError, match=r"Identify \(06h\) failed: Invalid Field"):
        driver.admin_command(cmds.identify(0x55))


def test_unsupported_log_page_raises_invalid_field(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError) as excinfo:
        driver.admin_command(cmds.get_log_page(0x0D, 0xFFFFFFFF, length_bytes=512))
    assert excinfo.value.status == 0x4002


def test_per_namespace_smart_is_refused(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError, match="Invalid Field in Command"):
        driver.smart_log(nsid=1)


def test_unknown_namespace_raises_invalid_namespace(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError, match=r"Invalid Namespace or Format \(SCT 0, SC 0Bh\)"):
        driver.identify_namespace(2)


def test_unsupported_feature_raises_invalid_field(driver: NvmeDriver) -> None:
    with pytest.raises(DeviceCommandError, match="Invalid Field in Command"):
        driver.admin_result(cmds.get_features(cmds.FeatureId.ARBITRATION))


def test_without_a_backend_the_io_queue_has_no_commands(transport: SimNvmeTransport) -> None:
    completion, data = transport.io(NvmeCommand(opcode=0x02, nsid=1, data_len=4096))
    assert (completion.sct, completion.sc, completion.dnr) == (0, 0x01, True)
    assert completion.sq_id == 1
    assert data == bytes(4096)


def test_without_a_backend_drive_commands_and_pages_are_refused(transport: SimNvmeTransport) -> None:
    for opcode in (0x10, 0x11, 0x14, 0x80, 0x84):
        completion, _ = transport.admin(NvmeCommand(opcode=opcode, nsid=1))
        assert (completion.sct, completion.sc) == (0, 0x01), hex(opcode)
    for lid in (0x01, 0x03, 0x06, 0x07, 0x81, 0xC0):
        completion, _ = transport.admin(cmds.get_log_page(lid, 0xFFFFFFFF, length_bytes=512))
        assert (completion.sct, completion.sc) == (0, 0x02), hex(lid)


def test_controller_state_survives_a_snapshot(controller: SimNvmeController, world: World) -> None:
    driver = NvmeDriver(SimNvmeTransport(controller))
    driver.set_temperature_threshold(350, save=True)
    driver.set_temperature_threshold(352)
    state = controller.snapshot()
    clone = SimNvmeController(IDENTITY, world)
    clone.restore(state)
    assert clone.snapshot() == state
    first = SimNvmeTransport(controller).admin(cmds.smart_log())
    second = SimNvmeTransport(clone).admin(cmds.smart_log())
    assert first == second
    clone.reset()
    assert NvmeDriver(SimNvmeTransport(clone)).get_temperature_threshold() == 350  # saved value


def test_completions_echo_cid_and_advance_the_sq_head(transport: SimNvmeTransport) -> None:
    first, _ = transport.admin(dataclasses.replace(cmds.smart_log(), cid=0x1234))
    second, _ = transport.admin(dataclasses.replace(cmds.smart_log(), cid=0x0042))
    assert (first.cid, second.cid) == (0x1234, 0x0042)
    assert (first.sq_id, second.sq_id) == (0, 0)
    assert second.sq_head == (first.sq_head + 1) % 64
    assert first.phase is True


def test_phase_tag_inverts_when_the_completion_queue_wraps(transport: SimNvmeTransport) -> None:
    phases = [transport.admin(cmds.smart_log())[0].phase for _ in range(65)]
    assert phases[:64] == [True] * 64
    assert phases[64] is False


def test_drop_off_makes_every_command_time_out(driver: NvmeDriver, controller: SimNvmeController) -> None:
    driver.smart_log()
    controller.drop_off()
    assert controller.present is False
    for call in (driver.identify_controller, driver.smart_log, driver.get_temperature_threshold):
        with pytest.raises(InstrumentTimeout) as excinfo:
            call()
        assert excinfo.value.address == "sim-nvme:QSIM0001"


def test_closed_transport_refuses_commands(driver: NvmeDriver) -> None:
    driver.close()
    with pytest.raises(InstrumentError, match="closed"):
        driver.smart_log()


def test_transport_rejects_data_out_for_a_read_command(transport: SimNvmeTransport) -> None:
    with pytest.raises(ValueError, match="data out"):
        transport.admin(cmds.smart_log(), data=bytes(512))


def test_identity_rejects_fields_the_pages_cannot_hold() -> None:
    with pytest.raises(ValueError, match="serial"):
        SimNvmeIdentity(serial="X" * 21, model="m", firmware="f", capacity_bytes=4096)
    with pytest.raises(ValueError, match="multiple"):
        SimNvmeIdentity(serial="s", model="m", firmware="f", capacity_bytes=4096 + 512)


def test_health_rejects_values_the_page_cannot_hold() -> None:
    with pytest.raises(ValueError, match="temperature_k"):
        SimHealth(temperature_k=70_000)
    with pytest.raises(ValueError, match="power_on_hours"):
        SimHealth(power_on_hours=2**128)
