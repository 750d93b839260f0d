"""Collection nodes: a plan file and its step items; each DUT's outcome is a sub-report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.subtests import SubtestContext, SubtestReport

from qualify.engine.items import ItemRef, plan_items
from qualify.errors import HarnessError
from qualify.plans.loader import load_plan

if TYPE_CHECKING:
    from qualify.engine.run import DutOutcome, Engine, ItemOutcome

_OUTCOME = {
    "pass": "passed",
    "fail": "failed",
    "error": "failed",
    "skipped": "skipped",
    "aborted": "failed",
}


class StepFailure(Exception):
    """An item in which the station or at least one DUT did not pass."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class PlanFile(pytest.File):
    """A YAML plan; collects one item per stage iteration step."""

    def collect(self) -> Iterator[pytest.Item]:
        """Yield the plan's items in run order."""
        loaded = load_plan(self.path)
        for ref in plan_items(loaded.plan):
            yield StepItem.from_parent(self, name=f"{ref.stage}[{ref.iteration}]/{ref.name}", ref=ref)


class StepItem(pytest.Item):
    """One step (or environment) of a stage iteration, run on every DUT by the engine."""

    def __init__(self, *, ref: ItemRef, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref

    def engine(self) -> Engine:
        """Return the run's engine."""
        from qualify.pytest_plugin.plugin import session_state

        engine = session_state(self.config).engine
        assert engine is not None
        return engine

    def runtest(self) -> None:
        """Run the item through the engine and report each DUT's outcome."""
        engine = self.engine()
        try:
            outcome = engine.run_item(self.ref)
        except HarnessError as exc:
            engine.abort(str(exc))
            raise StepFailure(
                [f"station: error: {exc}", "run aborted; station put in its safe state"]
            ) from None
        self._report_duts(outcome)
        if outcome.failed:
            raise StepFailure(_failure_lines(outcome))

    def _report_duts(self, outcome: ItemOutcome) -> None:
        with uncaptured(self.config):
            for dut in outcome.duts:
                self._report_dut(dut)

    def _report_dut(self, dut: DutOutcome) -> None:
        report = pytest.TestReport(
            nodeid=f"{self.nodeid}[{dut.serial}]",
            location=self.location,
            keywords={},
            outcome=_OUTCOME[dut.status],  # type: ignore[arg-type]
            longrepr=None if dut.status == "pass" else _longrepr(self, dut.status, dut.message),
            when="call",
        )
        sub = SubtestReport._new(report, SubtestContext(msg=dut.serial, kwargs={}), None, None)
        self.ihook.pytest_runtest_logreport(report=sub)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """Show which DUTs failed and why, without a traceback."""
        if isinstance(excinfo.value, StepFailure):
            return "\n".join(excinfo.value.lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Locate the item in its plan file."""
        return self.path, None, f"{self.ref.key}"


def _longrepr(item: StepItem, status: str, message: str | None) -> Any:
    if status == "skipped":
        return (str(item.path), 0, f"Skipped: {message or ''}")
    return f"{status}: {message or ''}"


def _failure_lines(outcome: ItemOutcome) -> list[str]:
    lines = []
    if outcome.station_status not in (None, "pass"):
        lines.append(f"station: {outcome.station_status}: {outcome.station_message}")
    for dut in outcome.duts:
        if dut.status in ("fail", "error", "aborted"):
            lines.append(f"{dut.serial}: {dut.status}: {dut.message}")
    return lines


def uncaptured(config: pytest.Config) -> AbstractContextManager[None]:
    """Suspend output capture so reports written during an item reach the terminal."""
    capman = config.pluginmanager.getplugin("capturemanager")
    return capman.global_and_fixture_disabled() if capman is not None else nullcontext()
