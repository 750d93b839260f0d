"""The engine: runs plan items across DUTs, judges limits, records, checkpoints, finishes.

Per-DUT work in a step runs concurrently; station-level environment changes synchronise all
DUTs. Only the engine advances the clock. Every item ends in one transaction that holds its
rows and the checkpoint, so a killed run resumes without losing or repeating a measurement.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sqlite3
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from drivers.errors import InstrumentError, InstrumentTimeout
from drivers.protocols import NvmeController, PowerOffNotice, PowerSupply
from qualify import __version__
from qualify.actions.base import Action, ActionContext, ActionResult, CapabilityMissing, Reading
from qualify.actions.builtin import ENVIRONMENT_ACTION
from qualify.actions.registry import get_action
from qualify.clock import Clock, RealClock, VirtualClock
from qualify.engine.checks import check_actions, check_safe_limits, supply_setting_v
from qualify.engine.criteria import evaluate_criteria
from qualify.engine.items import ItemRef, plan_items
from qualify.engine.limits import describe_violation, in_window, judge
from qualify.errors import EXIT_DUT_FAILED, EXIT_HARNESS, EXIT_PASS, HarnessError, InputError
from qualify.plans.loader import LoadedPlan, load_any_plan
from qualify.plans.schema import Environment, Limit, Step
from qualify.station.binding import BoundDut, BoundStation, bind_station, load_station
from qualify.store.db import Batch, Store, StoreWriteError, utc_now

log = logging.getLogger(__name__)

RESUMABLE = ("running", "aborted", "stopped")
RETRY_BACKOFF_S = (0.05, 0.25)
T = TypeVar("T")
TelemetryRow = tuple[str | None, str, float, str]


@dataclass
class RunOptions:
    """Everything `qualify run` needs to start a run; stored so `resume` can continue it."""

    plan_path: str
    station_path: str
    db_path: str
    seed: int = 0
    lot: str | None = None
    operator: str | None = None
    duts: list[str] = field(default_factory=list)
    report_path: str | None = None

    def to_json(self) -> str:
        """Serialise for the runs table."""
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class DutOutcome:
    """One DUT's result in one item."""

    serial: str
    status: str
    message: str | None = None


@dataclass
class ItemOutcome:
    """An item's result: the station's (environment or station step) and each DUT's."""

    ref: ItemRef
    station_status: str | None = None
    station_message: str | None = None
    duts: list[DutOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Return whether any DUT or the station step did not pass."""
        bad = {"fail", "error", "aborted"}
        return self.station_status in bad or any(d.status in bad for d in self.duts)


@dataclass
class RunOutcome:
    """How a run ended: status, each DUT's verdict, and the exit code."""

    run_id: str
    status: str
    verdicts: dict[str, str]
    exit_code: int
    message: str | None = None
    safe_state: str | None = None  # what putting the station safe did, for the terminal


@dataclass
class _Call:
    status: str
    result: ActionResult | None
    message: str | None
    t_start: float
    started_at: str
    timed_out: str | None = None  # the address that stopped answering


def git_commit() -> str | None:
    """Return the git commit of the qualify checkout, if it is one."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Engine:
    """Runs one plan on one bound station, recording into the store."""

    def __init__(
        self,
        loaded: LoadedPlan,
        station: BoundStation,
        store: Store,
        clock: Clock,
        run_id: str,
        options: RunOptions,
    ) -> None:
        self.loaded = loaded
        self.plan = loaded.plan
        self.station = station
        self.store = store
        self.clock = clock
        self.run_id = run_id
        self.options = options
        self.is_module = Path(options.plan_path).suffix == ".py"
        self.items = [] if self.is_module else plan_items(self.plan)
        self.done_tests: set[str] = set()
        self.next_index = 0
        self.until_met: dict[int, int] = {}
        self.dut_flags: dict[str, list[str]] = {}
        self.env_blocked: dict[str, str] = {}
        self.dropped: dict[str, str] = {}
        self._telemetry_cache: dict[str, tuple[tuple[PowerSupply, int] | None, NvmeController | None]] = {}
        self.seq = 0
        self.last_sample_t = -1e300
        self.telemetry_failing: set[str] = set()
        self.duts_powered = True
        self._history_lock = threading.Lock()
        self._retry_lock = threading.Lock()
        self.retries: list[str] = []
        self._reader: sqlite3.Connection | None = None
        self.aborted: str | None = None
        self.closed = False
        self.store_failure: str | None = None  # why the database refused a write, with what to do
        self.progress: Callable[[str], None] = lambda line: None
        self._wall_start = time.monotonic()
        self._items_run = 0
        self.duts = self._select_duts()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(32, len(self.duts))), thread_name_prefix="dut")

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def start(cls, options: RunOptions) -> Engine:
        """Validate inputs, bind the station, and record a new run."""
        loaded = load_any_plan(options.plan_path)
        check_actions(loaded)
        station_file, _ = load_station(options.station_path)
        check_safe_limits(loaded, station_file, options.station_path)
        clock: Clock = VirtualClock() if station_file.simulation is not None else RealClock()
        store = Store(options.db_path, synchronous=station_file.synchronous)
        station = bind_station(options.station_path, clock, options.seed)
        run_id = str(uuid.uuid4())
        try:
            engine = cls(loaded, station, store, clock, run_id, options)
            engine._record_start()
        except BaseException:
            station.close()
            store.close()
            raise
        return engine

    @classmethod
    def resume(cls, run_id: str, db_path: str) -> Engine:
        """Continue an interrupted run from its last checkpoint, refusing if anything changed."""
        store = Store(db_path)
        try:
            row = store.run(run_id)
            run_id = row["id"]
            if row["status"] not in RESUMABLE:
                raise InputError(
                    f"run {run_id} is {row['status']}; only running, stopped or aborted runs resume"
                )
            options = RunOptions(**json.loads(row["options_json"]))
            _refuse_changes(row, options)
            loaded = load_any_plan(options.plan_path)
            station_file, _ = load_station(options.station_path)
            state = store.checkpoint(run_id) or {}
            t_s = float(state.get("t", 0.0))
            clock: Clock = VirtualClock(t_s) if station_file.simulation is not None else RealClock(t_s)
            station = bind_station(options.station_path, clock, int(row["seed"]))
        except BaseException:
            store.close()
            raise
        try:
            engine = cls(loaded, station, store, clock, run_id, options)
            engine._restore(state)
            store.update_run(run_id, status="running", message=None)
            engine._event("info", "engine", f"resumed at item {engine.next_index} of {len(engine.items)}")
        except BaseException:
            station.close()
            store.close()
            raise
        return engine

    def _select_duts(self) -> list[BoundDut]:
        """Take the station's DUTs of the plan's kind (all for a station plan), or those named."""
        kind = self.plan.applies_to
        eligible = [d for d in self.station.duts if kind == "station" or d.kind == kind]
        if not eligible:
            raise InputError(f"station {self.station.name} has no {kind} DUT for plan {self.plan.name}")
        wanted = self.options.duts
        if not wanted:
            return eligible
        by_serial = {d.serial: d for d in eligible}
        missing = [s for s in wanted if s not in by_serial]
        if missing:
            present = ", ".join(sorted(by_serial))
            raise InputError(
                f"--dut {', '.join(missing)}: not on station {self.station.name} (present: {present})"
            )
        return [by_serial[s] for s in wanted]

    def _record_start(self) -> None:
        """Record the run, its DUTs and instruments, and the first checkpoint in one transaction."""
        plan = self.plan
        runs = (
            "runs",
            [
                {
                    "id": self.run_id,
                    "plan": plan.name,
                    "plan_version": plan.version,
                    "plan_sha256": self.loaded.sha256,
                    "station": self.station.name,
                    "lot": self.options.lot,
                    "seed": self.options.seed,
                    "status": "running",
                    "started_at": utc_now(),
                    "ended_at": None,
                    "software_version": __version__,
                    "git_commit": git_commit(),
                    "host": platform.node(),
                    "operator": self.options.operator,
                    "plan_path": str(Path(self.options.plan_path).resolve()),
                    "station_path": str(Path(self.options.station_path).resolve()),
                    "station_sha256": self.station.sha256,
                    "options_json": self.options.to_json(),
                    "message": None,
                }
            ],
        )
        duts = (
            "duts",
            [
                {
                    "run_id": self.run_id,
                    "serial": d.serial,
                    "kind": d.kind,
                    "model": d.model,
                    "firmware": d.firmware,
                    "slot": d.slot,
                    "verdict": "running",
                    "address": d.address,
                }
                for d in self.duts
            ],
        )
        instruments = (
            "instruments",
            [
                {
                    "run_id": self.run_id,
                    "name": i.name,
                    "driver": i.driver_name,
                    "address": i.address,
                    "idn": i.idn,
                }
                for i in self.station.instruments.values()
            ],
        )
        batch = Batch()
        self._event("info", "engine", f"run of {plan.name} {plan.version} on {len(self.duts)} DUTs", batch)
        for inst in self.station.instruments.values():
            if inst.error:
                self._event("error", inst.name, f"{inst.address}: {inst.error}", batch)
        for dut in self.duts:
            if dut.error:
                self._event("error", f"slot {dut.slot}", f"{dut.address}: {dut.error}", batch)
        try:
            self.store.write_run_start([runs, duts, instruments], batch, self._checkpoint())
        except StoreWriteError as exc:
            raise StoreWriteError(exc.path, f"{exc.reason}; the run was not started") from None

    def _restore(self, state: dict[str, Any]) -> None:
        self.next_index = int(state.get("next_index", 0))
        self.until_met = {int(k): int(v) for k, v in state.get("until_met", {}).items()}
        self.dut_flags = {k: list(v) for k, v in state.get("dut_flags", {}).items()}
        self.env_blocked = dict(state.get("env_blocked", {}))
        self.dropped = dict(state.get("dropped", {}))
        self.seq = int(state.get("seq", 0))
        self.done_tests = set(state.get("done_tests", []))
        self.last_sample_t = float(state.get("last_sample_t", -1e300))
        for dut in self.duts:
            dut.supply_set_v = state.get("supply_set_v", {}).get(dut.serial)
        self.duts_powered = bool(state.get("duts_powered", True))
        self.station.restore(state.get("station", {}))

    def _checkpoint(self) -> tuple[str, int, float, dict[str, Any]]:
        t = self.clock.now()
        state = {
            "next_index": self.next_index,
            "until_met": {str(k): v for k, v in self.until_met.items()},
            "dut_flags": self.dut_flags,
            "env_blocked": self.env_blocked,
            "dropped": self.dropped,
            "seq": self.seq,
            "done_tests": sorted(self.done_tests),
            "t": t,
            "last_sample_t": self.last_sample_t,
            "supply_set_v": {d.serial: d.supply_set_v for d in self.duts},
            "duts_powered": self.duts_powered,
            "station": self.station.snapshot(),
        }
        return (self.run_id, self.next_index, t, state)

    # -- the item loop --------------------------------------------------------------------

    def should_run(self, ref: ItemRef) -> bool:
        """Return whether an item still has to run (not done before a resume, not past until)."""
        if self.aborted or ref.index < self.next_index:
            return False
        met = self.until_met.get(ref.stage_index)
        return met is None or ref.iteration <= met

    def run_item(self, ref: ItemRef) -> ItemOutcome:
        """Run one item on every DUT, record it with a checkpoint, and return its outcome."""
        batch = Batch()
        if ref.first_of_iteration:
            self.env_blocked = {}
            self.telemetry_failing = set()  # retry silent telemetry sources once per iteration
            self._event("info", "engine", f"stage {ref.stage} iteration {ref.iteration}", batch)
        self._report_progress(ref)
        run = self._run_environment if self._is_environment(ref) else self._run_step
        outcome = run(ref, batch)
        for retry in self.retries:
            self._event("warning", "engine", f"retried after a transient fault: {retry}", batch)
        self.retries = []
        self.next_index = ref.index + 1
        self._items_run += 1
        try:
            self.store.write_batch(batch, self._checkpoint())
        except StoreWriteError as exc:
            self.next_index = ref.index  # the checkpoint on disk still points at this item
            raise HarnessError(
                self._store_failed(exc, f"results up to item {ref.index} of {len(self.items)}")
            ) from None
        return outcome

    def _store_failed(self, exc: StoreWriteError, kept: str) -> str:
        """Note that the database refused a write; return what failed, what is kept and what to do."""
        if self.store_failure is None:
            self.store_failure = (
                f"{exc}; {kept} are kept; free space and run "
                f"'qualify resume {self.run_id} --db {self.store.path}'"
            )
        return self.store_failure

    def _report_progress(self, ref: ItemRef) -> None:
        done = self._items_run
        remaining = len(self.items) - ref.index
        elapsed = time.monotonic() - self._wall_start
        eta = f", ETA {elapsed / done * remaining:.0f} s" if done else ""
        self.progress(
            f"[{ref.index + 1}/{len(self.items)}] {ref.key} · {len(self.duts)} DUTs · "
            f"t = {self.clock.now() / 3600:.2f} h{eta}"
        )

    # -- environment ----------------------------------------------------------------------

    def _run_environment(self, ref: ItemRef, batch: Batch) -> ItemOutcome:
        env = self._environment_of(ref)
        t_start, started_at = self.clock.now(), utc_now()
        readings: list[Reading] = []
        problems: list[str] = []
        if env.supply is not None or env.dut_power is not None:
            problems += self._apply_supply(env, readings)
        if env.dut_power == "on":
            self.dropped = {}  # a power cycle brings back a drive that only hung
        status, message = "pass", None
        try:
            if env.chamber is not None:
                readings += self._reach_chamber(env, batch)
            if env.chamber is not None and env.chamber.soak_s:
                self._advance(env.chamber.soak_s, batch)
            if env.hold_s:
                self._advance(env.hold_s, batch)
            if env.hold_equivalent is not None and env.chamber is not None:
                readings += self._equivalent_hold(env, batch)
        except HarnessError as exc:
            status, message = "error", str(exc)
            self._record_station_step(ref, "error", message, readings, t_start, started_at, batch)
            try:
                self.store.write_batch(batch, None)
            except StoreWriteError as full:
                kept = f"results up to item {ref.index} of {len(self.items)}"
                raise HarnessError(f"{exc}; then {self._store_failed(full, kept)}") from None
            raise
        if problems:
            status, message = "error", "; ".join(problems)
        self._record_station_step(ref, status, message, readings, t_start, started_at, batch)
        return ItemOutcome(ref, station_status=status, station_message=message)

    def _is_environment(self, ref: ItemRef) -> bool:
        if ref.is_environment:
            return True
        return self.plan.stages[ref.stage_index].steps[ref.step_index].action == ENVIRONMENT_ACTION

    def _environment_of(self, ref: ItemRef) -> Environment:
        """Return the stage's environment, or the one an environment step carries."""
        stage = self.plan.stages[ref.stage_index]
        if ref.is_environment:
            assert stage.environment is not None
            return stage.environment
        return Environment.model_validate(stage.steps[ref.step_index].params)

    def _apply_supply(self, env: Environment, readings: list[Reading]) -> list[str]:
        problems: list[str] = []
        power_on = env.dut_power not in ("off", "cut")
        self.duts_powered = power_on
        # An orderly power-off tells every DUT first, so none is switched off mid-shutdown of
        # another on a shared channel; a DUT that cannot be told is not judged in this stage.
        told: set[str] = set()
        if env.dut_power == "off":
            on_supply = [dut.serial for dut in self.duts if dut.supply_binding and dut.supply]
            told = self._tell_duts("prepare_power_off", problems, only=on_supply)
        switched = []
        for dut in self.duts:
            binding = dut.supply_binding
            if binding is None or dut.supply is None:
                continue
            try:
                psu = dut.supply.require()
                if env.supply is not None:
                    volts = supply_setting_v(env.supply.voltage_pct, env.supply.voltage_v, binding.nominal_v)
                    amps = env.supply.current_limit_a or binding.current_limit_a
                    psu.set_current_limit(binding.channel, amps)
                    psu.set_voltage(binding.channel, volts)
                    dut.supply_set_v = volts
                    readings.append(Reading(f"slot{dut.slot}.supply_set_v", volts, unit="V"))
                psu.set_output(binding.channel, power_on)
                switched.append(dut.serial)
            except InstrumentError as exc:
                msg = f"supply {dut.supply.name} ({dut.supply.address}): {exc.message}"
                self.env_blocked[dut.serial] = msg
                problems.append(f"{dut.label}: {msg}")
        if env.dut_power == "on":
            self._tell_duts("after_power_on", problems, only=switched)
            readings.append(Reading("power_on", len(switched)))
        elif env.dut_power is not None:
            orderly = sum(serial in told for serial in switched)
            readings.append(Reading("orderly_power_off", orderly))
            readings.append(Reading("unsafe_power_off", len(switched) - orderly))
        return problems

    def _tell_duts(self, method: str, problems: list[str], only: list[str] | None = None) -> set[str]:
        """Call a PowerOffNotice `method` of every DUT at once; return the serials it worked on.

        A DUT it failed on is blocked for the stage, with the reason in `problems`.
        """
        calls = []
        for dut in self.duts:
            notice = dut.capability(PowerOffNotice)  # type: ignore[type-abstract]
            if notice is not None and (only is None or dut.serial in only):
                calls.append((dut, self._pool.submit(getattr(notice, method))))
        done = set()
        for dut, call in calls:
            try:
                call.result()
            except InstrumentError as exc:
                msg = f"{method}: {self.station.describe_error(exc)}"
                self.env_blocked[dut.serial] = msg
                problems.append(f"{dut.label}: {msg}")
            else:
                done.add(dut.serial)
        return done

    def _reach_chamber(self, env: Environment, batch: Batch) -> list[Reading]:
        setting = env.chamber
        assert setting is not None
        found = self._chamber()
        inst, chamber = found
        t0 = self.clock.now()
        # Poll as finely as the plan samples telemetry, between 10 s and a minute: a coarse
        # plan (a 1000-cycle ramp schedule) need not pay for ten-second resolution.
        poll_s = min(60.0, max(10.0, self.plan.telemetry.interval_s / 60.0))
        try:
            self._retrying(inst.name, lambda: chamber.set_temperature(setting.temp_c))
            temp_c = self._retrying(inst.name, chamber.read_temperature)
            while abs(temp_c - setting.temp_c) > setting.tolerance_c:
                if self.clock.now() - t0 > setting.timeout_s:
                    raise HarnessError(
                        f"chamber {inst.name} ({inst.address}) did not reach {setting.temp_c:g} °C "
                        f"within {setting.timeout_s:g} s (at {temp_c:.1f} °C)"
                    )
                self._advance(poll_s, batch)
                temp_c = self._retrying(inst.name, chamber.read_temperature)
        except InstrumentError as exc:
            raise HarnessError(self.station.describe_error(exc)) from None
        self._event("info", inst.name, f"reached {temp_c:.2f} °C (setpoint {setting.temp_c:g} °C)", batch)
        return [
            Reading("chamber_temp_c", temp_c, unit="°C"),
            Reading("ramp_s", self.clock.now() - t0, unit="s"),
        ]

    def _equivalent_hold(self, env: Environment, batch: Batch) -> list[Reading]:
        """Hold as long as the plan's use condition needs at this chamber temperature."""
        from qualify.stats import arrhenius_af

        eq, chamber = env.hold_equivalent, env.chamber
        assert eq is not None and chamber is not None
        af = arrhenius_af(eq.ea_ev, eq.temp_c, chamber.temp_c)
        hold_h = eq.hours / af
        self._event(
            "info",
            "engine",
            f"holding {hold_h:.4g} h at {chamber.temp_c:g} °C ≡ {eq.hours:g} h at {eq.temp_c:g} °C "
            f"(Arrhenius AF {af:.4g}, Ea {eq.ea_ev:g} eV)",
            batch,
        )
        self._advance(hold_h * 3600.0, batch)
        return [Reading("acceleration_factor", af), Reading("equivalent_hold_h", hold_h, unit="h")]

    def _chamber(self) -> Any:
        try:
            found = self.station.chamber()
        except InstrumentError as exc:
            raise HarnessError(f"chamber: {exc}") from None
        if found is None:
            raise HarnessError(
                f"the plan sets a chamber temperature but station {self.station.name} has no chamber"
            )
        return found

    def _advance(self, duration_s: float, batch: Batch) -> None:
        """Let run time pass, sampling telemetry at the plan's interval."""
        self._advance_to(self.clock.now() + duration_s, batch)

    def _advance_to(self, end: float, batch: Batch) -> None:
        """Let run time reach `end` (no-op if it already has), sampling telemetry on the way."""
        interval = self.plan.telemetry.interval_s
        while True:
            due = max(self.last_sample_t + interval, self.clock.now())
            if due > end:
                break
            self._sleep_to(due)
            self._sample(batch)
        self._sleep_to(end)

    def _sleep_to(self, t_s: float) -> None:
        if isinstance(self.clock, VirtualClock):
            self.clock.advance_to(t_s)
        else:
            self.clock.sleep(max(0.0, t_s - self.clock.now()))

    def _sample(self, batch: Batch) -> None:
        t = self.clock.now()
        self.last_sample_t = t
        rows: list[TelemetryRow] = []
        try:
            found = self.station.chamber()
        except InstrumentError:
            found = None
        if found is not None:
            inst, chamber = found
            self._try_sample(
                inst.name,
                batch,
                rows,
                lambda: [
                    (None, "chamber_temp_c", chamber.read_temperature(), "°C"),
                    (None, "chamber_setpoint_c", chamber.read_setpoint(), "°C"),
                ],
            )
        self._sample_duts(batch, rows)
        batch.telemetry.extend((self.run_id, s, t, n, v, u) for s, n, v, u in rows)

    def _sample_duts(self, batch: Batch, rows: list[TelemetryRow]) -> None:
        """Read every DUT's supply and NVMe telemetry concurrently; record it in DUT order.

        One task per supply reads its DUTs' channels in turn (a supply answers one query at a
        time anyway), measuring a channel that several DUTs share once per sample; one task
        per DUT reads its drive. Rows, failures and their events come out in the same order,
        with the same values, as reading the DUTs one after another.
        """
        sources: list[tuple[str, Callable[[dict[Any, Any]], list[TelemetryRow]]]] = []
        groups: dict[Any, list[int]] = {}
        for dut in self.duts:
            if dut.error:
                continue
            supply = self._telemetry_devices(dut)[0]
            groups.setdefault(("psu", id(supply[0]) if supply else dut.serial), []).append(len(sources))
            sources.append((f"slot {dut.slot} supply", partial(_supply_telemetry, dut.serial, supply)))
            if self.duts_powered:  # a powered-off drive has nothing to say; asking only times out
                nvme = self._telemetry_devices(dut)[1]
                groups[("nvme", dut.serial)] = [len(sources)]
                sources.append((f"slot {dut.slot} nvme", partial(_nvme_telemetry, dut.serial, nvme)))
        results: list[list[TelemetryRow] | InstrumentError | None] = [None] * len(sources)

        def read_group(indexes: list[int]) -> None:
            channels: dict[Any, Any] = {}  # (supply, channel) → readings, within this sample
            for i in indexes:
                source, read = sources[i]
                # A source that failed is left alone until the next stage iteration: a dead
                # instrument must not cost a timeout at every sample of a long soak.
                if source in self.telemetry_failing:
                    continue
                try:
                    results[i] = self._retrying(source, partial(read, channels))
                except InstrumentError as exc:
                    results[i] = exc

        work = list(groups.values())
        if len(work) > 1:
            for future in [self._pool.submit(read_group, g) for g in work]:
                future.result()
        elif work:
            read_group(work[0])
        for (source, _), got in zip(sources, results, strict=True):
            if isinstance(got, InstrumentError):
                self.telemetry_failing.add(source)
                self._event("warning", source, f"telemetry paused until the next stage: {got}", batch)
            elif got is not None:
                rows.extend(got)

    def _telemetry_devices(
        self, dut: BoundDut
    ) -> tuple[tuple[PowerSupply, int] | None, NvmeController | None]:
        """Return a DUT's supply channel and NVMe controller (looked up once: bindings are fixed)."""
        found = self._telemetry_cache.get(dut.serial)
        if found is None:
            psu = dut.capability(PowerSupply)  # type: ignore[type-abstract]
            supply = (psu, dut.supply_binding.channel) if psu is not None and dut.supply_binding else None
            found = (supply, dut.capability(NvmeController))  # type: ignore[type-abstract]
            self._telemetry_cache[dut.serial] = found
        return found

    def _try_sample(
        self,
        source: str,
        batch: Batch,
        rows: list[TelemetryRow],
        read: Callable[[], list[TelemetryRow]],
    ) -> None:
        # A source that failed is left alone until the next stage iteration: a dead
        # instrument must not cost a timeout at every sample of a long soak.
        if source in self.telemetry_failing:
            return
        try:
            rows.extend(self._retrying(source, read))
        except InstrumentError as exc:
            self.telemetry_failing.add(source)
            self._event("warning", source, f"telemetry paused until the next stage: {exc}", batch)

    # -- steps ----------------------------------------------------------------------------

    def _run_step(self, ref: ItemRef, batch: Batch) -> ItemOutcome:
        stage = self.plan.stages[ref.stage_index]
        step = stage.steps[ref.step_index]
        action = get_action(step.action)
        assert action is not None  # checked when the plan was loaded
        params = action.params.model_validate(step.params)
        outcome = ItemOutcome(ref)
        # Durations are device time from the step's start: on a real clock the time has passed
        # already, on a virtual one the engine moves it to the slowest DUT's end.
        t0 = self.clock.now()
        if action.scope == "station":
            call = self._call(action, None, params)
            status, message = self._record(ref, step, action, None, call, batch)
            duration = call.result.duration_s if call.result else 0.0
            self._advance_to(t0 + duration, batch)
            outcome.station_status, outcome.station_message = status, message
            return outcome
        calls: dict[str, Future[_Call] | _Call] = {}
        for dut in self.duts:
            t_now, now_at = self.clock.now(), utc_now()
            if dut.error:
                calls[dut.serial] = _Call("error", None, f"DUT not available: {dut.error}", t_now, now_at)
            elif dut.serial in self.env_blocked:
                calls[dut.serial] = _Call("error", None, self.env_blocked[dut.serial], t_now, now_at)
            elif dut.serial in self.dropped:
                calls[dut.serial] = _Call("error", None, self.dropped[dut.serial], t_now, now_at)
            elif dut.kind not in action.kinds:
                calls[dut.serial] = _Call(
                    "skipped", None, f"{action.name} does not apply to {dut.kind}", t_now, now_at
                )
            else:
                calls[dut.serial] = self._pool.submit(self._call, action, dut, params)
        results = {s: (c.result() if isinstance(c, Future) else c) for s, c in calls.items()}
        longest = 0.0
        for dut in self.duts:
            call = results[dut.serial]
            status, message = self._record(ref, step, action, dut, call, batch)
            outcome.duts.append(DutOutcome(dut.serial, status, message))
            flags = self.dut_flags.setdefault(dut.serial, [])
            if status not in flags:
                flags.append(status)
            if call.result is not None:
                longest = max(longest, call.result.duration_s)
        self._note_dropouts(results, batch)
        self._check_until(ref, step, results)
        self._advance_to(t0 + longest, batch)
        return outcome

    def _note_dropouts(self, results: dict[str, _Call], batch: Batch) -> None:
        """Mark DUTs whose own device stopped answering; they skip steps until powered on again.

        A drive that fell off the bus costs a timeout per command; after one, the rest of the
        run records its steps as error at once, and the other DUTs carry on. A timeout of a
        shared instrument (a supply) is not the DUT's fault and does not count.
        """
        instruments = {i.address for i in self.station.instruments.values()}
        for serial, call in results.items():
            if (
                call.timed_out is not None
                and call.timed_out not in instruments
                and serial not in self.dropped
            ):
                self.dropped[serial] = f"DUT dropped out at t = {call.t_start / 3600:.2f} h: {call.message}"
                self._event("error", serial, self.dropped[serial], batch)

    def _call(self, action: Action, dut: BoundDut | None, params: Any) -> _Call:
        t_start, started_at = self.clock.now(), utc_now()
        ctx = ActionContext(
            station=self.station,
            dut=dut,
            now_s=self.clock.now,
            seed=self.options.seed,
            history=partial(self._history, dut.serial if dut else None),
        )
        try:
            return _Call("ok", self._run_with_retries(action, ctx, params), None, t_start, started_at)
        except InstrumentTimeout as exc:
            message = self.station.describe_error(exc)
            return _Call("error", None, message, t_start, started_at, timed_out=exc.address)
        except InstrumentError as exc:
            return _Call("error", None, self.station.describe_error(exc), t_start, started_at)
        except CapabilityMissing as exc:
            return _Call("error", None, str(exc), t_start, started_at)
        except Exception as exc:  # a bug in an action must not stop the other DUTs
            log.error("action %s failed:\n%s", action.name, traceback.format_exc())
            return _Call(
                "error",
                None,
                f"harness error in {action.name}: {type(exc).__name__}: {exc}",
                t_start,
                started_at,
            )

    def _retrying(self, label: str, call: Callable[[], T]) -> T:
        """Call an idempotent instrument exchange, retrying transient faults with backoff."""
        for attempt in range(len(RETRY_BACKOFF_S) + 1):
            try:
                return call()
            except InstrumentError as exc:
                if attempt == len(RETRY_BACKOFF_S):
                    raise
                with self._retry_lock:
                    self.retries.append(f"{label}: {self.station.describe_error(exc)} (retry {attempt + 1})")
                time.sleep(RETRY_BACKOFF_S[attempt])
        raise AssertionError("unreachable")

    def _run_with_retries(self, action: Action, ctx: ActionContext, params: Any) -> ActionResult:
        """Run an action; retry a read-only one after a transient instrument fault, with backoff.

        A garbled reply or a dropped connection often clears on the next try; a persistent
        fault fails every try and ends the step as error, naming the instrument. Retries are
        real-time waits (an instrument recovers in wall time) and are logged for the record.
        """
        if not action.idempotent:
            return action.run(ctx, params)
        who = ctx.dut.label if ctx.dut else "station"
        return self._retrying(f"{action.name} on {who}", lambda: action.run(ctx, params))

    def _record(
        self,
        ref: ItemRef,
        step: Step,
        action: Action,
        dut: BoundDut | None,
        call: _Call,
        batch: Batch,
    ) -> tuple[str, str | None]:
        step_id = str(uuid.uuid4())
        status, message = call.status, call.message
        rows = []
        if call.result is not None:
            status = "pass"
            seen = set()
            violations = []
            for reading in call.result.readings:
                limit = step.limits.get(reading.name)
                verdict = judge(reading, limit)
                seen.add(reading.name)
                if verdict == "fail" and limit is not None:
                    violations.append(describe_violation(reading, limit))
                rows.append(
                    (
                        step_id,
                        reading.name,
                        reading.value,
                        reading.text,
                        reading.unit,
                        limit.low if limit else None,
                        limit.high if limit else None,
                        verdict,
                    )
                )
            missing = sorted(set(step.limits) - seen)
            if missing:
                status, message = (
                    "error",
                    f"{action.name} returned no reading for {', '.join(missing)}",
                )
            elif violations:
                status, message = "fail", "; ".join(violations)
            else:
                message = call.result.message
        duration = call.result.duration_s if call.result else 0.0
        self.seq += 1
        batch.steps.append(
            (
                step_id,
                self.run_id,
                dut.serial if dut else None,
                ref.stage,
                ref.name,
                ref.iteration,
                status,
                call.t_start,
                call.t_start + duration,
                call.started_at,
                utc_now(),
                message,
                action.name,
                self.seq,
            )
        )
        batch.measurements.extend(rows)
        return status, message

    def _record_station_step(
        self,
        ref: ItemRef,
        status: str,
        message: str | None,
        readings: list[Reading],
        t_start: float,
        started_at: str,
        batch: Batch,
    ) -> None:
        step_id = str(uuid.uuid4())
        self.seq += 1
        batch.steps.append(
            (
                step_id,
                self.run_id,
                None,
                ref.stage,
                ref.name,
                ref.iteration,
                status,
                t_start,
                self.clock.now(),
                started_at,
                utc_now(),
                message,
                "environment",
                self.seq,
            )
        )
        batch.measurements.extend(
            (step_id, r.name, r.value, r.text, r.unit, None, None, "pass") for r in readings
        )

    def _check_until(self, ref: ItemRef, step: Step, results: dict[str, _Call]) -> None:
        stage = self.plan.stages[ref.stage_index]
        until = stage.repeat.until if stage.repeat else None
        if until is None or until.step != step.name:
            return
        values = []
        for call in results.values():
            if call.result is None:
                continue
            reading = next((r for r in call.result.readings if r.name == until.measurement), None)
            values.append(
                None if reading is None else (reading.text if reading.text is not None else reading.value)
            )
        if values and all(in_window(v, until.low, until.high, until.eq) for v in values):
            self.until_met[ref.stage_index] = ref.iteration

    # -- pytest modules of custom tests ----------------------------------------------------

    def record_test(
        self,
        nodeid: str,
        name: str,
        dut: BoundDut | None,
        status: str,
        message: str | None,
        measured: list[tuple[Reading, Limit | None, str]],
        t_start: float,
        started_at: str,
    ) -> None:
        """Record one custom test (per DUT when it uses `dut`) like a plan step, with a checkpoint."""
        step_id = str(uuid.uuid4())
        self.seq += 1
        batch = Batch()
        batch.steps.append(
            (
                step_id,
                self.run_id,
                dut.serial if dut else None,
                self.plan.name,
                name,
                1,
                status,
                t_start,
                self.clock.now(),
                started_at,
                utc_now(),
                message,
                "pytest",
                self.seq,
            )
        )
        batch.measurements.extend(
            (
                step_id,
                r.name,
                r.value,
                r.text,
                r.unit,
                lim.low if lim else None,
                lim.high if lim else None,
                verdict,
            )
            for r, lim, verdict in measured
        )
        if dut is not None:
            flags = self.dut_flags.setdefault(dut.serial, [])
            if status not in flags:
                flags.append(status)
        self.done_tests.add(nodeid)
        try:
            self.store.write_batch(batch, self._checkpoint())
        except StoreWriteError as exc:
            self.done_tests.discard(nodeid)
            self.abort(self._store_failed(exc, f"results of the {len(self.done_tests)} tests before {name}"))

    # -- ending ---------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Mark the run aborted; finish() then puts the station in its safe state."""
        if not self.aborted:
            self.aborted = reason

    def finish(self, stopped: str | None = None) -> RunOutcome:
        """Put the station in its safe state, compute verdicts and criteria, and close the run.

        `stopped` says why the run ended early by choice (pytest -x): resumable, not aborted.
        """
        batch = Batch()
        problems: list[str] = []
        if self.duts_powered:
            # Even an aborted run lets the drives shut down cleanly before their power goes.
            answering = [d.serial for d in self.duts if not d.error and d.serial not in self.dropped]
            self._tell_duts("prepare_power_off", problems, only=answering)
        self._pool.shutdown(wait=True, cancel_futures=True)
        problems += self.station.safe_state()
        for problem in problems:
            self._event("error", "station", f"safe state: {problem}", batch)
        safe = "; ".join(problems) if problems else "supplies off, chamber to ambient"
        if not problems:
            self._event("info", "station", f"safe state: {safe}", batch)
        # The station is safe before anything is written: a database that refuses writes
        # (full file system) must not keep the supplies on.
        try:
            return self._record_finish(batch, stopped, safe)
        except StoreWriteError as exc:
            message = self._store_failed(exc, "the results of every item")
            verdicts = {d.serial: "aborted" for d in self.duts}
            return RunOutcome(self.run_id, "aborted", verdicts, EXIT_HARNESS, message, safe)

    def _record_finish(self, batch: Batch, stopped: str | None, safe: str) -> RunOutcome:
        """Record the end of the run: events, verdicts, criteria, status; return the outcome."""
        status = "aborted" if self.aborted else ("stopped" if stopped else "completed")
        if self.aborted:
            self._event("error", "engine", f"aborted: {self.aborted}", batch)
        self.store.write_batch(batch, None)
        verdicts = {d.serial: self._verdict(d.serial) for d in self.duts}
        self.store.set_verdicts(self.run_id, verdicts)
        self.store.replace_criteria(
            self.run_id,
            evaluate_criteria(self.plan.criteria, verdicts, self.options.lot, self._measurements),
        )
        station_errors = self.store.rows(
            "SELECT COUNT(*) AS n FROM steps WHERE run_id = ? AND dut_serial IS NULL "
            "AND status IN ('error', 'fail')",
            (self.run_id,),
        )[0]["n"]
        message = self.aborted or (f"stopped early: {stopped}" if stopped else None)
        self.store.update_run(self.run_id, status=status, ended_at=utc_now(), message=message)
        criteria = {
            r["verdict"]
            for r in self.store.rows("SELECT verdict FROM criteria WHERE run_id = ?", (self.run_id,))
        }
        if self.aborted:
            code = EXIT_HARNESS
        elif "fail" in verdicts.values() or "fail" in criteria:
            code = EXIT_DUT_FAILED  # a device failed, or the lot failed a criterion
        elif "error" in verdicts.values() or station_errors or "error" in criteria:
            code = EXIT_HARNESS
        else:
            code = EXIT_PASS
        return RunOutcome(self.run_id, status, verdicts, code, message, safe)

    def _history(self, serial: str | None, step: str, name: str) -> list[float]:
        """Return one DUT's earlier values of a step's measurement, in run order."""
        with self._history_lock:
            rows = (
                self._history_conn()
                .execute(
                    "SELECT m.value FROM measurements m JOIN steps s ON s.id = m.step_id "
                    "WHERE s.run_id = ? AND s.dut_serial IS ? AND s.name = ? AND m.name = ? "
                    "AND m.value IS NOT NULL ORDER BY s.seq",
                    (self.run_id, serial, step, name),
                )
                .fetchall()
            )
        return [float(r[0]) for r in rows]

    def _history_conn(self) -> sqlite3.Connection:
        # DUT threads read history on a connection of their own; the writer's stays single-threaded.
        if self._reader is None:
            self._reader = sqlite3.connect(str(self.store.path), check_same_thread=False)
        return self._reader

    def _measurements(self, step: str, name: str) -> dict[str, list[float]]:
        """Return every DUT's values of one step's measurement, over stages and iterations."""
        out: dict[str, list[float]] = {}
        for r in self.store.rows(
            "SELECT s.dut_serial AS serial, m.value AS value FROM measurements m "
            "JOIN steps s ON s.id = m.step_id WHERE s.run_id = ? AND s.name = ? AND m.name = ? "
            "AND s.dut_serial IS NOT NULL AND m.value IS NOT NULL ORDER BY s.seq",
            (self.run_id, step, name),
        ):
            out.setdefault(r["serial"], []).append(r["value"])
        return out

    def close(self) -> None:
        """Release the station and the database."""
        self.closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._reader is not None:
            self._reader.close()
        self.station.close()
        self.store.close()

    def _verdict(self, serial: str) -> str:
        flags = self.dut_flags.get(serial, [])
        if "fail" in flags:
            return "fail"
        if self.aborted:
            return "aborted"
        if "error" in flags:
            return "error"
        if "pass" in flags:
            return "pass"
        return "skipped"

    def _event(self, level: str, source: str, message: str, batch: Batch | None = None) -> None:
        row = (self.run_id, self.clock.now(), level, source, message)
        if batch is not None:
            batch.events.append(row)
        else:
            self.store.write_batch(Batch(events=[row]), None)


def _supply_telemetry(
    serial: str, supply: tuple[PowerSupply, int] | None, channels: dict[Any, Any]
) -> list[TelemetryRow]:
    if supply is None:
        return []
    psu, ch = supply
    key = (id(psu), ch)
    if key not in channels:  # DUTs that share a channel share its one measurement
        channels[key] = (psu.measure_voltage(ch), psu.measure_current(ch))
    volts, amps = channels[key]
    return [(serial, "supply_v", volts, "V"), (serial, "supply_a", amps, "A")]


def _nvme_telemetry(serial: str, nvme: NvmeController | None, channels: dict[Any, Any]) -> list[TelemetryRow]:
    if nvme is None:
        return []
    return [(serial, "temp_c", nvme.smart_log().temperature_c, "°C")]


def _refuse_changes(row: dict[str, Any], options: RunOptions) -> None:
    """Refuse to resume when the plan, the station or the software differ from the run's."""
    import hashlib

    for label, path, recorded in (
        ("plan", options.plan_path, row["plan_sha256"]),
        ("station", options.station_path, row["station_sha256"]),
    ):
        if not os.path.exists(path):
            raise InputError(f"cannot resume run {row['id']}: its {label} file {path} is gone")
        current = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if current != recorded:
            raise InputError(
                f"cannot resume run {row['id']}: the {label} file {path} changed since the run "
                f"started (sha256 {recorded[:12]} then, {current[:12]} now)"
            )
    if row["software_version"] != __version__:
        raise InputError(
            f"cannot resume run {row['id']}: it ran on qualify {row['software_version']}, "
            f"this is {__version__}"
        )
