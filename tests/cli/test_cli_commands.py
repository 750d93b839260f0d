"""The other commands as a user runs them: validate, plans, results, report, abort paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qualify.cli.app import app
from tests.cli.conftest import REPO, query, run_qualify

SMOKE = str(REPO / "test_plans" / "common" / "station_smoke.yaml")
runner = CliRunner()


def test_every_command_has_help_and_an_example() -> None:
    import typer.main

    click_app = typer.main.get_command(app)
    commands: list[tuple[str, Any]] = []
    for name, cmd in click_app.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        if sub:
            commands += [(f"{name} {n}", c) for n, c in sub.items()]
        else:
            commands.append((name, cmd))
    assert {"run", "resume", "validate", "plans list", "results show", "report"} <= {n for n, _ in commands}
    for name, cmd in commands:
        assert cmd.help and cmd.help.strip(), f"{name} has no help"
        assert "Example: qualify " in cmd.help, f"{name} has no example"
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_validate_reports_each_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SMOKE).read_text().replace("action: dut.supply", "action: dut.suply"))
    result = runner.invoke(app, ["validate", SMOKE, str(bad)])
    assert result.exit_code == 2
    assert f"ok: {SMOKE}" in result.output
    # The step list is a YAML anchor reused by later stages: each use is named, at the anchor's line.
    for stage in (0, 1, 2):
        assert f"{bad}:27: stages[{stage}].steps[1].action: unknown action 'dut.suply'" in result.output


def test_plans_list_show_schema() -> None:
    result = runner.invoke(app, ["plans", "list", "--json"])
    assert result.exit_code == 0
    names = {p["name"] for p in json.loads(result.output)}
    assert "station_smoke" in names
    shown = runner.invoke(app, ["plans", "show", "station_smoke"])
    assert shown.exit_code == 0 and shown.output == Path(SMOKE).read_text()
    missing = runner.invoke(app, ["plans", "show", "no_such_plan"])
    assert missing.exit_code == 2 and "no plan file or library plan named 'no_such_plan'" in missing.output
    schema = json.loads(runner.invoke(app, ["plans", "schema"]).output)
    assert schema["properties"]["spec"]["const"] == "qualify.plan/1"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the smoke plan once with an HTML-bearing serial; share it across the read-only tests."""
    folder = tmp_path_factory.mktemp("run")
    station = folder / "station.yaml"
    evil = '<script>"x"</script>'
    text = (REPO / "fixtures" / "stations" / "sim-lab.yaml").read_text()
    station.write_text(text.replace("serial: QSIM0003", f"serial: '{evil}'"))
    proc = run_qualify(folder, "run", SMOKE, "--station", str(station), "--lot", "LOT-A", "--operator", "ana")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_id = query(folder / "qualify.db", "SELECT id FROM runs")[0][0]
    return folder, run_id


def test_results_list_and_show(finished_run: tuple[Path, str]) -> None:
    folder, run_id = finished_run
    db = str(folder / "qualify.db")
    listed = runner.invoke(app, ["results", "list", "--db", db, "--json"])
    assert listed.exit_code == 0
    runs = json.loads(listed.output)
    assert [(r["id"], r["duts"], r["passed"], r["lot"]) for r in runs] == [(run_id, 4, 4, "LOT-A")]
    shown = runner.invoke(app, ["results", "show", run_id[:8], "--db", db, "--json"])
    summary = json.loads(shown.output)
    assert summary["run"]["operator"] == "ana"
    assert {d["verdict"] for d in summary["duts"]} == {"pass"}
    text = runner.invoke(app, ["results", "show", run_id, "--db", db])
    assert "station_smoke" in text.output and "QSIM0001" in text.output
    gone = runner.invoke(app, ["results", "show", "ffff", "--db", db])
    assert gone.exit_code == 2 and "no run 'ffff'" in gone.output


def test_report_escapes_device_strings(finished_run: tuple[Path, str], tmp_path: Path) -> None:
    folder, run_id = finished_run
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", run_id, "--db", str(folder / "qualify.db"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;&#34;x&#34;&lt;/script&gt;" in html
    assert "ana" in html and "LOT-A" in html


@pytest.mark.parametrize("pytest_breaks", [False, True], ids=["clean", "pytest-interrupt-handling-fails"])
def test_sigterm_aborts_with_safe_state(tmp_path: Path, pytest_breaks: bool) -> None:
    env = {"QUALIFY_TERM_BEFORE_ITEM": "6"}
    if pytest_breaks:  # pytest then ends the session with status 0: the run must still be aborted
        env["QUALIFY_BREAK_INTERRUPT_HOOK"] = "1"
    proc = run_qualify(tmp_path, "run", SMOKE, "--sim", "--", "-p", "tests.support.killer", env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    assert query(db, "SELECT status, message FROM runs")[0] == ("aborted", "interrupted (Ctrl-C or SIGTERM)")
    assert set(query(db, "SELECT verdict FROM duts")) == {("aborted",)}
    events = [m for (m,) in query(db, "SELECT message FROM events WHERE source = 'station'")]
    assert "safe state: supplies off, chamber to ambient" in events
    assert "Traceback" not in proc.stderr


def test_dead_chamber_aborts_the_run(tmp_path: Path, station_variant: Callable[..., Path]) -> None:
    def dead_chamber(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["faults"] = [{"target": "chamber", "kind": "no_reply", "at_s": 700.0}]
        data["instruments"][0]["timeout_ms"] = 200

    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station_variant(dead_chamber)))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    status, message = query(db, "SELECT status, message FROM runs")[0]
    assert status == "aborted" and "chamber (" in message and "no reply" in message
    env = query(db, "SELECT status FROM steps WHERE stage = 'hot_low_supply' AND name = 'environment'")
    assert env == [("error",)]
    assert query(db, "SELECT COUNT(*) FROM steps WHERE stage = 'hot_high_supply'")[0][0] == 0


def test_x_stops_after_first_failing_step_and_resume_finishes(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def hot_slot_1(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["duts"][0]["rth_c_per_w"] = 5.0

    station = station_variant(hot_slot_1)
    proc = run_qualify(tmp_path, "run", SMOKE, "--station", str(station), "--", "-x")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    db = tmp_path / "qualify.db"
    status, run_id = query(db, "SELECT status, id FROM runs")[0]
    assert status == "stopped"
    assert query(db, "SELECT MAX(stage) FROM steps")[0][0] == "ambient"
    resumed = run_qualify(tmp_path, "resume", run_id)
    assert resumed.returncode == 1
    assert query(db, "SELECT status FROM runs")[0][0] == "completed"
    # 3 stages x (environment + chamber on the station, supply + temperature on 4 DUTs)
    assert query(db, "SELECT COUNT(*) FROM steps")[0][0] == 3 * (2 + 2 * 4)


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    proc = run_qualify(tmp_path, "run", SMOKE)
    assert proc.returncode == 2 and "give exactly one of --station FILE or --sim" in proc.stderr
    proc = run_qualify(tmp_path, "run", SMOKE, "--station", "nope.yaml")
    assert proc.returncode == 2 and "nope.yaml: station file not found" in proc.stderr
    proc = run_qualify(tmp_path, "run", SMOKE, "--sim", "--dut", "NOPE")
    assert proc.returncode == 2 and "--dut NOPE: not on station sim-lab" in proc.stderr


def test_export_through_the_cli(finished_run: tuple[Path, str], tmp_path: Path) -> None:
    folder, run_id = finished_run
    db = str(folder / "qualify.db")
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["export", run_id[:8], "--db", db, "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["run"]["id"] == run_id and len(record["duts"]) == 4
    bad = runner.invoke(app, ["export", run_id, "--db", db, "--format", "xlsx", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "xlsx" in bad.output
