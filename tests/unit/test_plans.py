"""Plan schema, parameter substitution, action checks and the shipped library."""

from __future__ import annotations

import json
import textwrap

import pytest

from qualify.engine.checks import check_actions
from qualify.errors import InputError
from qualify.plans.library import list_plans, plan_schema
from qualify.plans.loader import parse_plan
from qualify.resources import plans_dir

GOOD = textwrap.dedent(
    """\
    spec: qualify.plan/1
    name: demo
    version: "2.1"
    applies_to: ssd
    parameters: {hot_c: 70, tmax: 80}
    stages:
      - name: hot
        environment:
          chamber: {temp_c: "${hot_c}", soak_s: 60}
          supply: {voltage_pct: -5}
        steps:
          - name: temp
            action: dut.temperature
            limits:
              temp_c: {high: "${tmax}", marginal: 2, unit: degC}
        repeat: {until: {step: temp, measurement: temp_c, high: 90}, max: 3}
    criteria:
      - {name: lot_yield, kind: yield, limit: 0.95}
    """
)


def _errors(text: str) -> list[str]:
    with pytest.raises(InputError) as err:
        check_actions(parse_plan(text, "p.yaml"))
    return err.value.all_lines()


def test_good_plan_loads_with_parameters_substituted() -> None:
    loaded = parse_plan(GOOD, "p.yaml")
    stage = loaded.plan.stages[0]
    assert stage.environment is not None and stage.environment.chamber is not None
    assert stage.environment.chamber.temp_c == 70
    assert stage.steps[0].limits["temp_c"].high == 80
    assert stage.iterations == 3
    assert loaded.plan.criteria[0].confidence == 0.6
    check_actions(loaded)


def test_every_error_is_reported_with_line_and_key() -> None:
    bad = GOOD.replace("soak_s: 60", "soak_s: -1, bogus: 2").replace(
        "temp_c: {high:", "temp_c: {low: 100, high:"
    )
    lines = _errors(bad)
    assert any(line.startswith("p.yaml:9: stages[0].environment.chamber.soak_s:") for line in lines)
    assert any("p.yaml:9: stages[0].environment.chamber.bogus: unknown key 'bogus'" in line for line in lines)
    assert any(
        line.startswith("p.yaml:15: stages[0].steps[0].limits.temp_c:") and "above high" in line
        for line in lines
    )


def test_unknown_parameter_names_key_and_line() -> None:
    lines = _errors(GOOD.replace("${tmax}", "${tmux}"))
    assert lines == [
        "p.yaml:15: stages[0].steps[0].limits.temp_c.high: unknown parameter ${tmux} "
        "(plan parameters: hot_c, tmax)"
    ]


def test_unknown_action_and_measurement_and_unit() -> None:
    assert _errors(GOOD.replace("action: dut.temperature", "action: dut.nope")) == [
        "p.yaml:13: stages[0].steps[0].action: unknown action 'dut.nope'"
    ]
    lines = _errors(GOOD.replace("temp_c: {high", "tempc: {high"))
    assert lines[0].startswith(
        "p.yaml:15: stages[0].steps[0].limits.tempc: dut.temperature has no measurement"
    )
    lines = _errors(GOOD.replace("unit: degC", "unit: V"))
    assert "unit 'V' does not match temp_c's unit '°C'" in lines[0]


def test_spec_and_missing_keys() -> None:
    assert _errors(GOOD.replace("qualify.plan/1", "qualify.plan/9"))[0].startswith(
        "p.yaml:1: spec: spec must be"
    )
    lines = _errors(GOOD.replace('version: "2.1"\n', ""))
    assert lines == ["p.yaml:1: version: missing required key 'version'"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{until: {step: temp, measurement: temp_c, high: 90}, max: 3}",
            "{count: 2, max: 3}",
            "either count",
        ),
        (
            "{until: {step: temp, measurement: temp_c, high: 90}, max: 3}",
            "{until: {step: temp, measurement: temp_c, high: 90}}",
            "needs max",
        ),
        ("step: temp, measurement", "step: other, measurement", "not in this stage"),
        ("voltage_pct: -5", "voltage_pct: -5, voltage_v: 12", "exactly one of"),
        ("limit: 0.95", "limit: 0.95, confidence: 1.5", "less than 1"),
    ],
)
def test_structural_rules(old: str, new: str, message: str) -> None:
    assert old in GOOD
    lines = _errors(GOOD.replace(old, new))
    assert any(message in line for line in lines), lines


def test_shipped_plans_validate() -> None:
    entries = list_plans()
    assert "station_smoke" in {e.name for e in entries}
    for entry in entries:
        check_actions(parse_plan(entry.path.read_text(), str(entry.path)))
    assert (plans_dir() / "common" / "station_smoke.yaml").is_file()


def test_schema_is_json_schema_of_plan() -> None:
    schema = json.loads(plan_schema())
    assert schema["title"] == "Plan"
    assert {"spec", "name", "version", "applies_to", "stages"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("power", ["on", "off", "cut"])
def test_dut_power_is_on_an_orderly_off_or_a_cut(power: str) -> None:
    loaded = parse_plan(GOOD.replace("supply: {voltage_pct: -5}", f'dut_power: "{power}"'), "p.yaml")
    environment = loaded.plan.stages[0].environment
    assert environment is not None and environment.dut_power == power


def test_dut_power_names_its_three_choices_when_wrong() -> None:
    lines = _errors(GOOD.replace("supply: {voltage_pct: -5}", 'dut_power: "pull"'))
    assert lines == ["p.yaml:10: stages[0].environment.dut_power: Input should be 'on', 'off' or 'cut'"]
