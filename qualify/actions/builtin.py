"""The built-in actions: station readings, DUT supply and temperature, NVMe health."""

from __future__ import annotations

from drivers.protocols import NvmeController, PowerSupply
from qualify.actions.base import (
    Action,
    ActionContext,
    ActionResult,
    CapabilityMissing,
    MeasurementSpec,
    NoParams,
    Reading,
    need,
)
from qualify.actions.registry import register
from qualify.plans.schema import Environment
from qualify.station.binding import BoundDut

_BOTH = frozenset({"ssd", "dimm"})
# A step that changes the station's environment mid-stage (temperature cycling alternates two
# in one repeated stage); the engine runs it like a stage environment.
ENVIRONMENT_ACTION = "station.environment"


def _nvme(dut: BoundDut) -> NvmeController:
    return need(dut, NvmeController, "NVMe controller")  # type: ignore[type-abstract]


def _supply(dut: BoundDut) -> tuple[PowerSupply, int]:
    psu = dut.capability(PowerSupply)  # type: ignore[type-abstract]
    if psu is None or dut.supply_binding is None:
        if dut.supply is not None:
            dut.supply.require()  # names the dead instrument and its address
        raise CapabilityMissing(f"{dut.label} has no supply channel in the station file")
    return psu, dut.supply_binding.channel


def chamber_air(ctx: ActionContext) -> float | None:
    """Return the chamber air temperature, or None on a station without a chamber."""
    found = ctx.station.chamber()
    return found[1].read_temperature() if found else None


def _station_chamber(ctx: ActionContext, params: NoParams) -> ActionResult:
    found = ctx.station.chamber()
    if found is None:
        raise CapabilityMissing("the station has no thermal chamber")
    chamber = found[1]
    temp_c = chamber.read_temperature()
    setpoint_c = chamber.read_setpoint()
    return ActionResult(
        readings=[
            Reading("temp_c", temp_c, unit="°C"),
            Reading("setpoint_c", setpoint_c, unit="°C"),
            Reading("error_c", temp_c - setpoint_c, unit="°C"),
        ],
        duration_s=1.0,
    )


def _dut_supply(ctx: ActionContext, params: NoParams) -> ActionResult:
    dut = ctx.require_dut()
    psu, channel = _supply(dut)
    volts = psu.measure_voltage(channel)
    amps = psu.measure_current(channel)
    readings = [
        Reading("voltage_v", volts, unit="V"),
        Reading("current_a", amps, unit="A"),
        Reading("power_w", volts * amps, unit="W"),
    ]
    if dut.supply_set_v:
        error_pct = (volts - dut.supply_set_v) / dut.supply_set_v * 100.0
        readings.append(Reading("voltage_error_pct", error_pct, unit="%"))
    return ActionResult(readings=readings, duration_s=1.0)


def _dut_temperature(ctx: ActionContext, params: NoParams) -> ActionResult:
    dut = ctx.require_dut()
    temp_c = _nvme(dut).smart_log().temperature_c
    readings = [Reading("temp_c", temp_c, unit="°C")]
    air_c = chamber_air(ctx)
    if air_c is not None:
        readings.append(Reading("rise_c", temp_c - air_c, unit="°C"))
    return ActionResult(readings=readings, duration_s=1.0)


def _nvme_smart(ctx: ActionContext, params: NoParams) -> ActionResult:
    log = _nvme(ctx.require_dut()).smart_log()
    return ActionResult(
        readings=[
            Reading("critical_warning", float(log.critical_warning), unit=None),
            Reading("temp_c", log.temperature_c, unit="°C"),
            Reading("available_spare_pct", float(log.available_spare_pct), unit="%"),
            Reading("percentage_used", float(log.percentage_used_pct), unit="%"),
            Reading("media_errors", float(log.media_errors), unit=None),
            Reading("unsafe_shutdowns", float(log.unsafe_shutdowns), unit=None),
            Reading("power_on_hours", float(log.power_on_hours), unit="h"),
        ],
        duration_s=1.0,
    )


def _dut_identify(ctx: ActionContext, params: NoParams) -> ActionResult:
    dut = ctx.require_dut()
    ident = _nvme(dut).identify_controller()
    return ActionResult(
        readings=[
            Reading("serial", text=ident.serial_number),
            Reading("model", text=ident.model_number),
            Reading("firmware", text=ident.firmware_revision),
        ],
        duration_s=1.0,
    )


def _environment_by_engine(ctx: ActionContext, params: Environment) -> ActionResult:
    raise RuntimeError("station.environment steps are run by the engine, not called")


for _action in (
    Action(
        name=ENVIRONMENT_ACTION,
        scope="station",
        kinds=_BOTH,
        params=Environment,
        measurements=(
            MeasurementSpec("chamber_temp_c", "°C", "Measure the air temperature once reached"),
            MeasurementSpec("ramp_s", "s", "Measure how long reaching the setpoint took"),
        ),
        run=_environment_by_engine,
        doc="Set the station environment (chamber, supply corner, DUT power, hold) within a stage.",
    ),
    Action(
        name="station.chamber",
        scope="station",
        kinds=_BOTH,
        params=NoParams,
        measurements=(
            MeasurementSpec("temp_c", "°C", "Measure the chamber air temperature"),
            MeasurementSpec("setpoint_c", "°C", "Read the active setpoint"),
            MeasurementSpec("error_c", "°C", "Measure air temperature minus setpoint"),
        ),
        run=_station_chamber,
        doc="Read the chamber's air temperature and setpoint.",
    ),
    Action(
        name="dut.supply",
        scope="dut",
        kinds=_BOTH,
        params=NoParams,
        measurements=(
            MeasurementSpec("voltage_v", "V", "Measure the DUT's supply voltage at the supply"),
            MeasurementSpec("current_a", "A", "Measure the DUT's supply current"),
            MeasurementSpec("power_w", "W", "Compute the DUT's input power"),
            MeasurementSpec("voltage_error_pct", "%", "Measure the voltage's deviation from its setting"),
        ),
        run=_dut_supply,
        doc="Measure each DUT's rail voltage and current on its supply channel.",
    ),
    Action(
        name="dut.temperature",
        scope="dut",
        kinds=frozenset({"ssd"}),
        params=NoParams,
        measurements=(
            MeasurementSpec("temp_c", "°C", "Read the DUT's own temperature sensor"),
            MeasurementSpec("rise_c", "°C", "Compute the DUT's temperature above the chamber air"),
        ),
        run=_dut_temperature,
        doc="Read each DUT's temperature from its own sensor (NVMe composite temperature).",
    ),
    Action(
        name="nvme.smart",
        scope="dut",
        kinds=frozenset({"ssd"}),
        params=NoParams,
        measurements=(
            MeasurementSpec("critical_warning", None, "Read the critical warning bits"),
            MeasurementSpec("temp_c", "°C", "Read the composite temperature"),
            MeasurementSpec("available_spare_pct", "%", "Read the available spare"),
            MeasurementSpec("percentage_used", "%", "Read the endurance used estimate"),
            MeasurementSpec("media_errors", None, "Read media and data integrity errors"),
            MeasurementSpec("unsafe_shutdowns", None, "Read the unsafe shutdown count"),
            MeasurementSpec("power_on_hours", "h", "Read the power-on hours"),
        ),
        run=_nvme_smart,
        doc="Read the NVMe SMART / Health log (LID 02h).",
    ),
    Action(
        name="dut.identify",
        scope="dut",
        kinds=frozenset({"ssd"}),
        params=NoParams,
        measurements=(
            MeasurementSpec("serial", None, "Read the serial number"),
            MeasurementSpec("model", None, "Read the model number"),
            MeasurementSpec("firmware", None, "Read the firmware revision"),
        ),
        run=_dut_identify,
        doc="Read each DUT's identity (NVMe Identify Controller).",
    ),
):
    register(_action)
