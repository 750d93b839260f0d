"""Typer application: each command parses arguments, calls one library function, prints."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from qualify import __version__
from qualify.errors import EXIT_BAD_INPUT, EXIT_HARNESS, InputError, QualifyError
from qualify.files import keep_going_when_output_fails

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="qualify",
    help="Qualify DDR5 RDIMMs and NVMe SSDs: run plans on a station or the simulated lab, "
    "keep results in SQLite, and write qualification reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plans_app = typer.Typer(help="The plan library.", no_args_is_help=True)
results_app = typer.Typer(help="Browse recorded runs.", no_args_is_help=True)
station_app = typer.Typer(help="Station files and the instruments they bind.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")
app.add_typer(results_app, name="results")
app.add_typer(station_app, name="station")
sim_app = typer.Typer(help="The simulated lab.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
telemetry_app = typer.Typer(help="Telemetry kept in a results database.", no_args_is_help=True)
app.add_typer(telemetry_app, name="telemetry")

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite results database (default: $QUALIFY_DB or ./qualify.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SourceOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite results database (default: $QUALIFY_DB or ./qualify.db), or the fleet "
        "database as a postgresql:// URL.",
    ),
]


def default_db(db: Path | None) -> Path:
    """Return the database path: the option, else $QUALIFY_DB, else ./qualify.db."""
    if db is not None:
        return db
    return Path(os.environ.get("QUALIFY_DB", "qualify.db"))


def default_source(db: str | None) -> str:
    """Return the results source: the --db option (a path or a postgresql:// URL), else the default."""
    return db if db is not None else str(default_db(None))


def friendly(func: F) -> F:
    """Turn QualifyError into one message on stderr and its exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except QualifyError as exc:
            lines = exc.all_lines() if isinstance(exc, InputError) else [str(exc)]
            for line in lines:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _raise_interrupt(signum: int, frame: Any) -> None:
    # The first SIGTERM or Ctrl-C starts the abort; further ones are ignored, since one raised
    # inside pytest's interrupt handling ends the session as passed and the run as completed.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


@app.command()
@friendly
def run(
    plan: Annotated[str, typer.Argument(help="Plan file, or the name of a library plan.")],
    pytest_args: Annotated[
        list[str] | None,
        typer.Argument(help="Arguments for pytest, after `--` (e.g. -- -x -k hot)."),
    ] = None,
    station: Annotated[Path | None, typer.Option("--station", help="Station file.")] = None,
    sim: Annotated[
        bool, typer.Option("--sim", help="Run on the shipped simulated station for the plan's DUT kind.")
    ] = False,
    db: DbOption = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Lot id the DUTs belong to.")] = None,
    dut: Annotated[
        list[str] | None, typer.Option("--dut", help="Run only this DUT serial (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 0,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the HTML report.")] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Who runs it.")] = None,
    scan: Annotated[
        bool,
        typer.Option(
            "--scan",
            help="Scan each DUT's barcode in slot order (a blank line ends); each must match the "
            "serial its device reports. Needs --operator.",
        ),
    ] = False,
) -> None:
    """Run a plan on a station and write its report.

    Example: qualify run station_smoke --sim --lot L1 -- -x
    """
    from qualify.engine.run import RunOptions
    from qualify.plans.library import find_plan

    plan_path = find_plan(plan)
    station_path = _station_path(station, sim, _applies_to(plan_path))
    options = RunOptions(
        plan_path=str(plan_path),
        station_path=str(station_path),
        db_path=str(default_db(db)),
        seed=seed,
        lot=lot,
        operator=operator,
        duts=list(dut or []),
        report_path=str(report) if report else None,
    )
    if scan:
        import sys

        from qualify.service.scan import scan_for_run

        if not operator:
            raise InputError("--scan needs --operator NAME: who scanned the DUTs")
        if dut:
            raise InputError("give --scan or --dut, not both")
        options.duts = scan_for_run(
            str(station_path),
            _applies_to(plan_path),
            lambda: sys.stdin.readline() or None,
            lambda line: typer.echo(line, err=True),
            seed,
        )
    from qualify.engine.session import start_and_run

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    code = start_and_run(options, list(pytest_args or []), echo=typer.echo)
    raise typer.Exit(code)


@app.command()
@friendly
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (a unique prefix will do).")],
    pytest_args: Annotated[
        list[str] | None, typer.Argument(help="Arguments for pytest, after `--` (e.g. -- -x).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Continue an interrupted run from its last checkpoint.

    Example: qualify resume 3f2a9c
    """
    from qualify.engine.session import resume_and_run

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    raise typer.Exit(resume_and_run(run_id, str(default_db(db)), echo=typer.echo, pytest_args=pytest_args))


@app.command()
def validate(plans: Annotated[list[Path], typer.Argument(help="Plan files to check.")]) -> None:
    """Check plans: schema, actions, parameters and limits; every error with file, key and line.

    Example: qualify validate test_plans/common/*.yaml
    """
    from qualify.engine.checks import check_actions
    from qualify.plans.loader import load_plan

    bad = 0
    for path in plans:
        try:
            check_actions(load_plan(path))
        except InputError as exc:
            bad += 1
            for line in exc.all_lines():
                typer.echo(f"error: {line}", err=True)
        else:
            typer.echo(f"ok: {path}")
    raise typer.Exit(EXIT_BAD_INPUT if bad else 0)


@plans_app.command("list")
@friendly
def plans_list(json_out: JsonOption = False) -> None:
    """List the shipped plans.

    Example: qualify plans list
    """
    from qualify.plans.library import list_plans

    entries = list_plans()
    if json_out:
        typer.echo(json.dumps([{**e.__dict__, "path": str(e.path)} for e in entries], indent=2))
        return
    for e in entries:
        typer.echo(f"{e.name:28} {e.version:8} {e.applies_to:8} {e.description}")


@plans_app.command("show")
@friendly
def plans_show(name: Annotated[str, typer.Argument(help="Plan name or file.")]) -> None:
    """Print a plan's file.

    Example: qualify plans show station_smoke
    """
    from qualify.plans.library import find_plan

    typer.echo(find_plan(name).read_text(encoding="utf-8"), nl=False)


@plans_app.command("schema")
def plans_schema() -> None:
    """Print the JSON Schema of the plan format.

    Example: qualify plans schema > plan.schema.json
    """
    from qualify.plans.library import plan_schema

    typer.echo(plan_schema())


@results_app.command("list")
@friendly
def results_list(
    db: SourceOption = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Only this lot.")] = None,
    json_out: JsonOption = False,
) -> None:
    """List recorded runs, newest first.

    Example: qualify results list --lot L1
    """
    from qualify.results import list_runs

    runs = list_runs(default_source(db), lot=lot)
    if json_out:
        typer.echo(json.dumps(runs, indent=2))
        return
    for r in runs:
        typer.echo(
            f"{r['id'][:8]}  {r['started_at']}  {r['status']:9} {r['plan']:24} "
            f"lot={r['lot'] or '-':8} DUTs {r['duts']} pass {r['passed']} fail {r['failed']}"
        )


@results_app.command("show")
@friendly
def results_show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    db: SourceOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one run: provenance, DUT verdicts, failing steps and criteria.

    Example: qualify results show 3f2a9c --json
    """
    from qualify.results import format_run, run_summary

    summary = run_summary(default_source(db), run_id)
    typer.echo(json.dumps(summary, indent=2) if json_out else format_run(summary))


@app.command("report")
@friendly
def report_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")],
    run_id: Annotated[str | None, typer.Argument(help="Run id or a unique prefix.")] = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Report every run of this lot.")] = None,
    db: SourceOption = None,
) -> None:
    """Write the qualification report of a run or a lot as one self-contained HTML file.

    Example: qualify report 3f2a9c -o report.html
    """
    from qualify.report.render import write_lot_report, write_run_report

    if (run_id is None) == (lot is None):
        raise InputError("give a RUN_ID or --lot ID")
    if lot is not None:
        path = write_lot_report(default_source(db), lot, output)
    else:
        assert run_id is not None
        path = write_run_report(default_source(db), run_id, output)
    typer.echo(f"report: {path}")


@app.command("export")
@friendly
def export_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    fmt: Annotated[str, typer.Option("--format", help="junit, csv, parquet, stdf or json.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="File (junit, stdf, json) or folder (csv, parquet).")
    ],
    db: DbOption = None,
    telemetry: Annotated[
        bool, typer.Option("--telemetry", help="JSON: include every telemetry sample.")
    ] = False,
) -> None:
    """Export a run: JUnit XML, CSV or Parquet tables, an STDF V4 file, or a JSON run record.

    Example: qualify export 3f2a9c --format stdf -o run.stdf
    """
    from qualify.export import export_run

    path = export_run(default_db(db), run_id, fmt, output, include_telemetry=telemetry)
    typer.echo(f"{fmt}: {path}")


@station_app.command("check")
@friendly
def station_check(
    station: Annotated[Path | None, typer.Option("--station", help="Station file.")] = None,
    sim: Annotated[bool, typer.Option("--sim", help="Check the shipped simulated lab.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Probe every instrument and DUT of a station; exit 3 if any is dead.

    Example: qualify station check --station fixtures/stations/real-lab-example.yaml
    """
    from qualify.station.check import check_station, format_rows

    rows = check_station(_station_path(station, sim))
    if json_out:
        typer.echo(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        typer.echo(format_rows(rows))
    dead = [r for r in rows if not r.ok]
    for r in dead:
        typer.echo(f"error: {r.kind} {r.name} at {r.address}: {r.detail}", err=True)
    raise typer.Exit(EXIT_HARNESS if dead else 0)


@station_app.command("serve")
@friendly
def station_serve(
    station: Annotated[Path, typer.Option("--station", help="Station file.")],
    queue: Annotated[Path, typer.Option("--queue", help="Queue file (qualify.queue/1): runs and schedules.")],
    db: DbOption = None,
    http_host: Annotated[
        str | None,
        typer.Option("--http-host", help="Status page address (default: the queue file's, else 127.0.0.1)."),
    ] = None,
    http_port: Annotated[
        int, typer.Option("--http-port", help="Status page port; 0 picks a free one, -1 serves none.")
    ] = 8470,
) -> None:
    """Serve a station: run its queue and schedules on free slots until SIGTERM; resume interrupted runs.

    Example: qualify station serve --station station.yaml --queue queue.yaml --db /var/lib/qualify/q.db
    """
    from qualify.service.serve import serve_station

    if not station.is_file():
        raise InputError("station file not found", file=str(station))
    serve_station(
        station,
        queue,
        default_db(db),
        http_port=None if http_port < 0 else http_port,
        http_host=http_host,
        echo=typer.echo,
    )


@station_app.command("status")
@friendly
def station_status_cmd(
    db: DbOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Only this station.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Show served stations: slots, runs with progress and ETA, recent failures.

    Example: qualify station status --db /var/lib/qualify/qualify.db
    """
    from qualify.service.status import format_status, station_status

    status = station_status(default_db(db), name)
    typer.echo(json.dumps(status, indent=2) if json_out else format_status(status))


@app.command("sync")
@friendly
def sync_cmd(
    to: Annotated[str, typer.Option("--to", help="Fleet database, postgresql://USER@HOST:PORT/DB.")],
    db: DbOption = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows per transaction.")] = 5000,
) -> None:
    """Ship runs changed since the last sync to the fleet database; safe to repeat, safe to cut.

    Example: qualify sync --to postgresql://qualify@fleet.example:5432/qualify
    """
    from qualify.store.postgres import is_postgres_url
    from qualify.sync.ship import sync_to_postgres

    if not is_postgres_url(to):
        raise InputError(f"--to {to!r}: give a postgresql:// URL")
    result = sync_to_postgres(default_db(db), to, batch_rows=batch_rows)
    typer.echo(
        f"synced {result.runs} run(s), {result.rows} rows in {result.batches} batches to {result.target} "
        f"({result.rows_per_s:.0f} rows/s)"
    )


@app.command("archive")
@friendly
def archive_cmd(
    before: Annotated[
        str, typer.Option("--before", help="Move runs started before this ISO-8601 date or time (UTC).")
    ],
    to: Annotated[Path, typer.Option("--to", help="Archive SQLite database (created if missing).")],
    db: DbOption = None,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="VACUUM the database afterwards to give the space back.")
    ] = False,
) -> None:
    """Move ended runs started before a date, with all their rows, into an archive database.

    Example: qualify archive --db station.db --before 2026-01-01 --to archive-2025.db --vacuum
    """
    from qualify.service.maintenance import archive_runs, parse_before

    source = default_db(db)
    moved = archive_runs(source, before, to, vacuum=vacuum)
    typer.echo(
        f"archived {moved['runs']} run(s) started before {parse_before(before)} from {source} to {to} "
        f"({moved.get('steps', 0)} steps, {moved.get('measurements', 0)} measurements, "
        f"{moved.get('telemetry', 0)} telemetry rows)" + (", vacuumed" if vacuum else "")
    )


@telemetry_app.command("rollup")
@friendly
def telemetry_rollup(
    raw_days: Annotated[
        float, typer.Option("--raw-days", help="Keep raw samples of the last N days of each run's time.")
    ],
    window_s: Annotated[
        float, typer.Option("--window-s", help="Older samples become min/max/mean per window of S seconds.")
    ] = 600.0,
    db: DbOption = None,
) -> None:
    """Roll raw telemetry older than N days of each run into per-window min/max/mean rows.

    Example: qualify telemetry rollup --db station.db --raw-days 7 --window-s 600
    """
    from qualify.service.maintenance import downsample_telemetry
    from qualify.store.db import Store

    path = default_db(db)
    if not path.is_file():
        raise InputError(f"no database at {path}")
    store = Store(path)
    try:
        done = downsample_telemetry(store, raw_days=raw_days, window_s=window_s)
    finally:
        store.close()
    typer.echo(
        f"rolled {done['raw_deleted']} raw samples into {done['rollup_rows']} rollup rows in {path} "
        f"(raw kept for the last {raw_days:g} days of each run, windows of {window_s:g} s)"
    )


def _applies_to(plan_path: Path) -> str:
    from qualify.plans.loader import load_any_plan

    return load_any_plan(plan_path).plan.applies_to


def _station_path(station: Path | None, sim: bool, applies_to: str = "station") -> Path:
    from qualify.resources import sim_station_path

    if (station is None) == (not sim):
        raise InputError("give exactly one of --station FILE or --sim")
    path = sim_station_path(applies_to) if sim else station
    assert path is not None
    if not path.is_file():
        raise InputError("station file not found", file=str(path))
    return path


@sim_app.command("serve")
def sim_serve(
    station: Annotated[
        Path | None,
        typer.Option(
            "--station", help="Station file whose simulated lab to serve (default: the shipped one)."
        ),
    ] = None,
    speed: Annotated[float, typer.Option("--speed", help="Virtual seconds per wall second.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for noise, serials and random faults.")] = 0,
) -> None:
    """Run the simulated lab as its own process, print every instrument's address, serve until stopped.

    Example: qualify sim serve --speed 60
    """
    import sys

    from sim_instruments.serve import serve

    try:
        serve(station, speed, seed, sys.stdout)  # stops cleanly on SIGINT or SIGTERM
    except (ValueError, InputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command()
def version() -> None:
    """Print qualify's version.

    Example: qualify version
    """
    typer.echo(__version__)


def main() -> None:
    """Run the CLI."""
    keep_going_when_output_fails()
    app(prog_name="qualify")


if __name__ == "__main__":
    main()
