"""Drive a started engine through pytest in-process and map the outcome to an exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qualify.engine.run import Engine, RunOptions
from qualify.errors import EXIT_BAD_INPUT, HarnessError, QualifyError
from qualify.pytest_plugin.plugin import EngineHolder, exit_code_of

_RUN_INI = Path(__file__).resolve().parent.parent / "pytest_plugin" / "run.ini"


def start_and_run(options: RunOptions, pytest_args: list[str], echo: Callable[[str], None]) -> int:
    """Start a new run and execute it; return qualify's exit code."""
    return _drive(Engine.start(options), pytest_args, echo)


def resume_and_run(
    run_id: str, db_path: str, echo: Callable[[str], None], pytest_args: list[str] | None = None
) -> int:
    """Resume an interrupted run and execute the rest; return qualify's exit code."""
    return _drive(Engine.resume(run_id, db_path), list(pytest_args or []), echo)


def _drive(engine: Engine, pytest_args: list[str], echo: Callable[[str], None]) -> int:
    holder = EngineHolder(engine)
    plan_path = Path(engine.options.plan_path)
    args = [
        "-c",
        str(_RUN_INI),
        "--rootdir",
        str(plan_path.parent),
        "-p",
        "no:cacheprovider",
        "-v",
        "-o",
        "verbosity_subtests=1",
        "-o",
        "console_output_style=classic",
        *pytest_args,
        str(plan_path),
    ]
    try:
        try:
            pytest_code = pytest.main(args, plugins=[holder])
        except Exception as exc:
            if holder.state.outcome is None:
                raise
            # pytest failed after the run was closed (seen: its interrupt handling, rendering a
            # traceback through a frame with no line number); the run's outcome stands.
            echo(f"warning: pytest failed after the run ended: {type(exc).__name__}: {exc}")
            pytest_code = pytest.ExitCode.INTERNAL_ERROR
    finally:
        if holder.state.outcome is None and holder.state.error is None and not engine.closed:
            # pytest ended before its session finished (bad pytest arguments): close the run.
            engine.abort("pytest did not run the plan (see its message above)")
            holder.state.outcome = engine.finish()
            engine.close()
    if pytest_code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_BAD_INPUT
    if engine.store_failure is not None:
        # The station is safe and every committed item is kept; a report would be written to
        # the same full file system, and the user needs one line: what, where, what next.
        raise HarnessError(engine.store_failure)
    outcome = holder.state.outcome
    if outcome is not None:
        from qualify.report.render import write_run_report

        report = engine.options.report_path or str(
            Path(engine.options.db_path).resolve().parent / f"qualify-report-{outcome.run_id[:8]}.html"
        )
        echo(f"run:      {outcome.run_id} ({outcome.status})")
        echo(f"database: {Path(engine.options.db_path).resolve()}")
        try:
            write_run_report(Path(engine.options.db_path), outcome.run_id, Path(report))
        except QualifyError as exc:
            raise HarnessError(
                f"{exc}; the run's results are kept in the database: write the report later with "
                f"'qualify report {outcome.run_id} --db {engine.options.db_path} -o FILE.html'"
            ) from None
        echo(f"report:   {Path(report).resolve()}")
    return exit_code_of(holder.state)
