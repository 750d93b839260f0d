"""Harness overhead per DUT-step against OpenHTF's per-phase overhead, same trivial measurement.

Ours: a plan of 100 steps, each a trivial action (`bench.constant`, registered here, returns
one reading and no device time) with a limit, on 64 simulated SSDs of the sim lot. Each step
is recorded, judged and committed with its checkpoint (SQLite, WAL) as in any run; the figure
is the item loop's wall time over 100 × 64 DUT-steps (run start and finish excluded). The
telemetry interval is set past the plan's end so no sampling is counted.

OpenHTF: a test of 100 phases, each setting one measurement with an in_range validator, the
record written to JSON by an output callback; the figure is the marginal cost of a phase, the
difference between a 101-phase and a 1-phase test over 100, best of three.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import Figure, ssd_station

from qualify.actions.base import Action, ActionContext, ActionResult, MeasurementSpec, NoParams, Reading
from qualify.actions.registry import get_action, register
from qualify.engine.run import Engine, RunOptions

STEPS, DUTS = 100, 64


def _constant(ctx: ActionContext, params: NoParams) -> ActionResult:
    return ActionResult([Reading("value", 1.0)], duration_s=0.0)


def _register() -> None:
    if get_action("bench.constant") is None:
        register(
            Action(
                "bench.constant",
                "dut",
                frozenset({"ssd", "dimm"}),
                NoParams,
                (MeasurementSpec("value", None, "Return 1.0"),),
                _constant,
                "Return a constant reading (benchmark of the harness's own overhead).",
            )
        )


def _plan(path: Path) -> Path:
    steps = "\n".join(
        f"      - {{name: s{i:03d}, action: bench.constant, limits: {{value: {{low: 0, high: 10}}}}}}"
        for i in range(STEPS)
    )
    path.write_text(
        "spec: qualify.plan/1\nname: bench_overhead\nversion: '1'\napplies_to: ssd\n"
        "telemetry: {interval_s: 1.0e12}\n"
        f"stages:\n  - name: trivial\n    steps:\n{steps}\n"
    )
    return path


def ours_per_dut_step(duts: int = DUTS) -> float:
    """Return our wall seconds per DUT-step for the trivial plan on `duts` simulated SSDs."""
    _register()
    tmp = Path(tempfile.mkdtemp(prefix="qualify-overhead-"))
    options = RunOptions(
        plan_path=str(_plan(tmp / "plan.yaml")),
        station_path=str(ssd_station(duts, tmp / "station.yaml")),
        db_path=str(tmp / "q.db"),
    )
    engine = Engine.start(options)
    try:
        start = time.perf_counter()
        for ref in engine.items:
            if engine.should_run(ref):
                engine.run_item(ref)
        elapsed = time.perf_counter() - start
        outcome = engine.finish()
    finally:
        engine.close()
    if outcome.exit_code != 0:
        raise RuntimeError(f"the trivial plan did not pass: {outcome}")
    return elapsed / (len(engine.items) * duts)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for a while (OpenHTF's banner bypasses sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def openhtf_per_phase() -> float | None:
    """Return OpenHTF's marginal wall seconds per trivial phase, or None without OpenHTF."""
    try:
        import openhtf as htf
        from openhtf.output.callbacks import json_factory
    except ImportError:
        return None
    logging.disable(logging.CRITICAL)
    tmp = Path(tempfile.mkdtemp(prefix="qualify-openhtf-"))

    def phase_n(i: int):  # type: ignore[no-untyped-def]
        @htf.measures(htf.Measurement("value").in_range(0, 10))
        def phase(test):  # type: ignore[no-untyped-def]
            test.measurements.value = 1.0

        return htf.PhaseOptions(name=f"s{i:03d}")(phase)

    def run(n: int) -> float:
        test = htf.Test(*[phase_n(i) for i in range(n)])
        test.add_output_callbacks(json_factory.OutputToJSON(str(tmp / "{dut_id}.{start_time_millis}.json")))
        with _quiet():  # OpenHTF prints a banner per test straight to the terminal
            start = time.perf_counter()
            test.execute(test_start=lambda: "DUT1")
            return time.perf_counter() - start

    run(5)  # warm up imports and threads
    best = float("inf")
    for _ in range(3):
        best = min(best, (run(STEPS + 1) - run(1)) / STEPS)
    logging.disable(logging.NOTSET)
    return best


def measure() -> list[Figure]:
    """Return our overhead per DUT-step against OpenHTF's per phase (in microseconds)."""
    ours = min(ours_per_dut_step() for _ in range(2))
    htf_s = openhtf_per_phase()
    notes = [f"ours: {STEPS} steps x {DUTS} sim SSDs, record + verdict + commit + checkpoint"]
    notes.append(
        "OpenHTF 1.6: marginal per phase, JSON output callback"
        if htf_s is not None
        else "openhtf not installed (pip install openhtf): no anchor"
    )
    return [
        Figure(
            "harness overhead per DUT-step vs OpenHTF phase",
            ours * 1e6,
            None if htf_s is None else htf_s * 1e6,
            "us",
            2.0,
            higher_is_better=False,
            target_text="<= 0.5x",
            notes=notes,
        )
    ]
