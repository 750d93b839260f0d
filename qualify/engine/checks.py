"""Check a plan against the action registry and a station's safe operating limits."""

from __future__ import annotations

from pydantic import ValidationError

from qualify.actions.base import MeasurementSpec
from qualify.actions.builtin import ENVIRONMENT_ACTION
from qualify.actions.registry import get_action
from qualify.errors import InputError
from qualify.plans.loader import LoadedPlan
from qualify.plans.schema import Environment
from qualify.station.schema import StationFile
from qualify.units import same_unit
from qualify.yamlsrc import raise_if_errors


def check_actions(loaded: LoadedPlan) -> None:
    """Raise InputError if a step names an unknown action, bad params, or unknown measurements."""
    errors: list[InputError] = []
    doc = loaded.doc
    for si, stage in enumerate(loaded.plan.stages):
        for pi, step in enumerate(stage.steps):
            where = ("stages", si, "steps", pi)
            action = get_action(step.action)
            if action is None:
                errors.append(doc.error((*where, "action"), f"unknown action {step.action!r}"))
                continue
            try:
                action.params.model_validate(step.params)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = tuple(str(part) for part in err.get("loc", ()))
                    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                    errors.append(doc.error((*where, "params", *loc), f"{step.action}: {message}"))
            for name, limit in step.limits.items():
                spec = action.measurement(name)
                if spec is None:
                    known = ", ".join(m.name for m in action.measurements)
                    errors.append(
                        doc.error(
                            (*where, "limits", name),
                            f"{step.action} has no measurement {name!r} (it measures: {known})",
                        )
                    )
                elif limit.unit is not None and not same_unit(limit.unit, spec.unit):
                    errors.append(
                        doc.error(
                            (*where, "limits", name, "unit"),
                            f"unit {limit.unit!r} does not match {name}'s unit {spec.unit!r}",
                        )
                    )
            if stage.repeat and stage.repeat.until and stage.repeat.until.step == step.name:
                until = stage.repeat.until
                if action.measurement(until.measurement) is None:
                    errors.append(
                        doc.error(
                            ("stages", si, "repeat", "until", "measurement"),
                            f"{step.action} has no measurement {until.measurement!r}",
                        )
                    )
    steps = {
        (step.name, m.name)
        for stage in loaded.plan.stages
        for step in stage.steps
        for m in _measurements_of(step.action)
    }
    for ci, criterion in enumerate(loaded.plan.criteria):
        for ref in criterion.references():
            step_name, _, measurement = ref.rpartition(".")
            if (step_name, measurement) not in steps:
                errors.append(
                    doc.error(
                        ("criteria", ci), f"{criterion.name}: no step {step_name!r} measures {measurement!r}"
                    )
                )
    raise_if_errors(errors)


def _measurements_of(action_name: str) -> list[MeasurementSpec]:
    action = get_action(action_name)
    return list(action.measurements) if action else []


def _environments(loaded: LoadedPlan) -> list[tuple[tuple[str | int, ...], Environment]]:
    """Return every environment of a plan with its key path: stage environments and steps."""
    found: list[tuple[tuple[str | int, ...], Environment]] = []
    for si, stage in enumerate(loaded.plan.stages):
        if stage.environment is not None:
            found.append((("stages", si, "environment"), stage.environment))
        for pi, step in enumerate(stage.steps):
            if step.action == ENVIRONMENT_ACTION:
                try:
                    env = Environment.model_validate(step.params)
                except ValueError:
                    continue  # check_actions reports the bad parameters
                found.append((("stages", si, "steps", pi, "params"), env))
    return found


def check_safe_limits(loaded: LoadedPlan, station: StationFile, station_file: str) -> None:
    """Refuse a plan whose setpoints exceed the station's safe limits for its DUT kinds."""
    errors: list[InputError] = []
    doc = loaded.doc
    kind = loaded.plan.applies_to
    duts = [d for d in station.duts if kind == "station" or d.kind == kind]
    kinds = sorted({d.kind for d in duts})
    for where, env in _environments(loaded):
        if env.chamber is not None:
            for dut_kind in kinds:
                lim = station.limits[dut_kind]
                temp_c = env.chamber.temp_c
                if temp_c > lim.max_case_temp_c or temp_c < lim.min_case_temp_c:
                    errors.append(
                        doc.error(
                            (*where, "chamber", "temp_c"),
                            f"{temp_c:g} °C is outside the station's safe range for {dut_kind} "
                            f"({lim.min_case_temp_c:g} to {lim.max_case_temp_c:g} °C, {station_file})",
                        )
                    )
        if env.supply is not None:
            for dut in duts:
                if dut.supply is None:
                    continue
                lim = station.limits[dut.kind]
                volts = supply_setting_v(env.supply.voltage_pct, env.supply.voltage_v, dut.supply.nominal_v)
                if volts > lim.max_supply_v:
                    key = "voltage_pct" if env.supply.voltage_pct is not None else "voltage_v"
                    errors.append(
                        doc.error(
                            (*where, "supply", key),
                            f"{volts:.3f} V on slot {dut.slot} exceeds the station's maximum "
                            f"{lim.max_supply_v:g} V for {dut.kind} ({station_file})",
                        )
                    )
                    break
    raise_if_errors(errors)


def supply_setting_v(voltage_pct: float | None, voltage_v: float | None, nominal_v: float) -> float:
    """Return the voltage a supply corner asks for on a DUT of the given nominal voltage."""
    if voltage_v is not None:
        return voltage_v
    return nominal_v * (1.0 + (voltage_pct or 0.0) / 100.0)
