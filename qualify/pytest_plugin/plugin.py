"""Hooks of the qualify pytest plugin; inert unless a run is given (--qualify-plan or resume).

`qualify run` drives pytest in-process and hands over an engine it has started; a plain
`pytest PLAN.yaml --qualify-plan PLAN.yaml --qualify-station FILE` builds the engine here.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from drivers.errors import InstrumentError
from qualify.errors import EXIT_HARNESS, QualifyError
from qualify.pytest_plugin.fixtures import MEASURED_KEY, chamber, measure, psu, station
from qualify.pytest_plugin.items import PlanFile, StepItem, uncaptured
from qualify.store.db import utc_now

if TYPE_CHECKING:
    from qualify.engine.run import Engine, RunOutcome


@dataclass
class SessionState:
    """The run this pytest session executes, and how it ended."""

    engine: Engine | None = None
    outcome: RunOutcome | None = None
    error: QualifyError | None = None
    stopped: str | None = None


class EngineHolder:
    """A plugin object through which `qualify run` hands its started engine to pytest."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.state = SessionState(engine=engine)


_STATE_KEY = pytest.StashKey[SessionState]()


def session_state(config: pytest.Config) -> SessionState:
    """Return the session's run state."""
    return config.stash[_STATE_KEY]


def has_state(config: pytest.Config) -> bool:
    """Return whether this pytest session runs a qualify run."""
    return _STATE_KEY in config.stash


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the qualify options."""
    group = parser.getgroup("qualify", "qualify qualification runs")
    group.addoption("--qualify-plan", metavar="PLAN", help="run this plan (YAML)")
    group.addoption("--qualify-station", metavar="FILE", help="station file to run on")
    group.addoption("--qualify-db", metavar="PATH", default="qualify.db", help="results database")
    group.addoption("--qualify-seed", metavar="N", type=int, default=0, help="simulation seed")
    group.addoption("--qualify-lot", metavar="ID", help="lot id")


def _holder(config: pytest.Config) -> EngineHolder | None:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, EngineHolder):
            return plugin
    return None


def _active(config: pytest.Config) -> bool:
    return _STATE_KEY in config.stash


def pytest_configure(config: pytest.Config) -> None:
    """Attach the run state when qualify drives this session."""
    holder = _holder(config)
    if holder is not None:
        config.stash[_STATE_KEY] = holder.state
    elif config.getoption("qualify_plan", None):
        config.stash[_STATE_KEY] = SessionState()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the engine for a plain-pytest run (qualify run starts its own)."""
    config = session.config
    if not _active(config):
        return
    state = session_state(config)
    if state.engine is not None:
        return
    from qualify.engine.run import Engine, RunOptions
    from qualify.resources import sim_station_path

    try:
        state.engine = Engine.start(
            RunOptions(
                plan_path=config.getoption("qualify_plan"),
                station_path=config.getoption("qualify_station") or str(sim_station_path()),
                db_path=config.getoption("qualify_db"),
                seed=config.getoption("qualify_seed"),
                lot=config.getoption("qualify_lot"),
            )
        )
    except QualifyError as exc:
        state.error = exc
        raise pytest.UsageError(str(exc)) from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the run's YAML plan as a PlanFile."""
    if not _active(parent.config) or file_path.suffix not in (".yaml", ".yml"):
        return None
    engine = session_state(parent.config).engine
    if engine is None or file_path.resolve() != Path(engine.options.plan_path).resolve():
        return None
    return PlanFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """Run the plan's items in order, skipping done or no-longer-needed ones."""
    if not _active(session.config):
        return None
    state = session_state(session.config)
    engine = state.engine
    if engine is None or session.config.option.collectonly:
        return None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    last_stage: tuple[str, int] | None = None

    def progress(line: str) -> None:
        if reporter is not None:
            with uncaptured(session.config):
                reporter.ensure_newline()
                reporter.write_line(line)

    items = session.items
    try:
        for i, item in enumerate(items):
            if isinstance(item, StepItem):
                if not engine.should_run(item.ref):
                    continue
            elif item.nodeid in engine.done_tests:
                continue  # recorded before the run was interrupted
            if isinstance(item, StepItem):
                current = (item.ref.stage, item.ref.iteration)
                engine.progress = progress if current != last_stage else (lambda line: None)
                last_stage = current
            nextitem = items[i + 1] if i + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if engine.aborted:
                break
            if session.shouldfail or session.shouldstop:
                state.stopped = str(session.shouldfail or session.shouldstop)
                break
    except BaseException as exc:
        # Record the interrupt here, not from pytest's exit status: pytest's own interrupt
        # handling can fail (rendering a traceback through a frame with no line number) and
        # then finishes the session with status 0, which would close the run as completed.
        interrupt = isinstance(exc, KeyboardInterrupt)
        engine.abort("interrupted (Ctrl-C or SIGTERM)" if interrupt else f"{type(exc).__name__}: {exc}")
        raise
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a custom test once per DUT of the run when it asks for `dut`."""
    if "dut" not in metafunc.fixturenames or not has_state(metafunc.config):
        return
    engine = session_state(metafunc.config).engine
    if engine is None:
        return
    metafunc.parametrize("dut", engine.duts, ids=[d.serial for d in engine.duts])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Record each custom test as a step; a failed measurement fails the test."""
    report = yield
    if not has_state(item.config) or isinstance(item, StepItem):
        return report
    engine = session_state(item.config).engine
    if engine is None or not _records(report):
        return report
    measured = item.stash.get(MEASURED_KEY, None)
    failures = measured.failures() if measured else []
    if report.passed and failures:
        report.outcome = "failed"
        report.longrepr = "measurement out of limits: " + "; ".join(failures)
    status, message = _status_of(report, call, failures)
    callspec = getattr(item, "callspec", None)
    dut = callspec.params.get("dut") if callspec is not None else None
    name = getattr(item, "originalname", item.name)
    start = item.stash.get(_START_KEY, (engine.clock.now(), utc_now()))
    engine.record_test(item.nodeid, name, dut, status, message, measured.rows if measured else [], *start)
    return report


_START_KEY = pytest.StashKey[tuple[float, str]]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note when a custom test starts, in run time and wall time."""
    if has_state(item.config) and not isinstance(item, StepItem):
        engine = session_state(item.config).engine
        if engine is not None:
            item.stash[_START_KEY] = (engine.clock.now(), utc_now())


def _records(report: pytest.TestReport) -> bool:
    # One record per test: its call, or its setup when setup failed or skipped it.
    return report.when == "call" or (report.when == "setup" and not report.passed)


def _status_of(
    report: pytest.TestReport, call: pytest.CallInfo[None], failures: list[str]
) -> tuple[str, str | None]:
    if report.skipped:
        return "skipped", _text(report.longrepr)
    if report.passed:
        return "pass", None
    if failures:
        return "fail", "; ".join(failures)
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, AssertionError):
        return "fail", str(exc) or "assertion failed"
    if isinstance(exc, InstrumentError):
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}" if exc else _text(report.longrepr)


def _text(longrepr: object) -> str | None:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr) if longrepr else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Finish the run: safe state, verdicts, criteria; record an interrupt as an abort."""
    if not _active(session.config):
        return
    state = session_state(session.config)
    engine = state.engine
    if engine is None or state.outcome is not None:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        engine.abort("interrupted (Ctrl-C or SIGTERM)")
    try:
        state.outcome = engine.finish(stopped=state.stopped)
    except QualifyError as exc:
        state.error = exc
    finally:
        engine.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print each DUT's verdict and the run's outcome."""
    if not _active(config):
        return
    state = session_state(config)
    if state.outcome is None:
        return
    out = state.outcome
    terminalreporter.write_sep("=", f"qualify run {out.run_id}: {out.status}")
    for serial, verdict in out.verdicts.items():
        terminalreporter.write_line(f"  {serial:24} {verdict}")
    if out.message:
        terminalreporter.write_line(f"  {out.message}")
    if out.safe_state:
        terminalreporter.write_line(f"  safe state: {out.safe_state}")


def exit_code_of(state: SessionState) -> int:
    """Map a finished session to qualify's exit code."""
    if state.error is not None:
        return state.error.exit_code
    if state.outcome is None:
        return EXIT_HARNESS
    return state.outcome.exit_code


__all__ = ["EngineHolder", "chamber", "exit_code_of", "measure", "psu", "session_state", "station"]
