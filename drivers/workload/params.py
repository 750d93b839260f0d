"""Plan parameters → WorkloadSpec, and WorkloadResult → flat readings, for `run_workload`.

A plan step gives a job as a mapping: either WorkloadSpec's own fields (with `bs` as a shorthand
for one transfer size) or `profile:` naming a standard workload plus that builder's arguments.
Both the fio driver and the simulated SSD read jobs through here, so they agree on every key.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from drivers.workload import jobs
from drivers.workload.spec import DirectionResult, WorkloadResult, WorkloadSpec

VERIFY_CLASSES: tuple[str, ...] = ("unwritten", "misdirected", "stale", "corrupted")

PROFILES: dict[str, Callable[..., WorkloadSpec]] = {
    "jesd219_enterprise": jobs.jesd219_enterprise,
    "sequential_precondition": jobs.sequential_precondition,
    "pts_preconditioning": jobs.pts_preconditioning,
    "ai_checkpoint_burst": jobs.ai_checkpoint_burst,
    "ai_dataset_read": jobs.ai_dataset_read,
}

_SPEC_FIELDS = {f.name for f in dataclasses.fields(WorkloadSpec)}
_PAIR_FIELDS = ("bs_split", "zones")


def spec_from_params(job: Mapping[str, object]) -> WorkloadSpec:
    """Return the WorkloadSpec a plan's job mapping describes; raise ValueError naming bad keys."""
    params = dict(job)
    profile = params.pop("profile", None)
    if profile is not None:
        builder = PROFILES.get(str(profile))
        if builder is None:
            raise ValueError(f"unknown workload profile {profile!r} (known: {', '.join(sorted(PROFILES))})")
        accepted = set(inspect.signature(builder).parameters)
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(f"profile {profile}: unknown parameters {', '.join(unknown)}")
        return builder(**params)
    if "bs" in params:
        if "bs_split" in params:
            raise ValueError("give bs or bs_split, not both")
        params["bs_split"] = ((_as_int(params.pop("bs"), "bs"), 1.0),)
    unknown = sorted(set(params) - _SPEC_FIELDS)
    if unknown:
        raise ValueError(f"unknown workload parameters: {', '.join(unknown)}")
    for key in _PAIR_FIELDS:
        if key in params:
            params[key] = _pairs(params[key], key)
    params.setdefault("name", "workload")
    return WorkloadSpec(**params)  # type: ignore[arg-type]


def _as_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{key} must be a whole number of bytes (got {value!r})")
    return int(value)


def _pairs(value: object, key: str) -> tuple[tuple[Any, Any], ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in value
    ):
        raise ValueError(f"{key} must be a list of pairs (got {value!r})")
    return tuple((p[0], p[1]) for p in value)


def result_to_readings(result: WorkloadResult) -> dict[str, float]:
    """Return a result as flat readings (`write_bw_bytes_s`, `read_lat_p99_us`, `verify_stale`, ...).

    Latencies fio did not measure (a direction with no I/O) are left out, not reported as 0.
    """
    out: dict[str, float] = {}
    for direction in ("read", "write", "trim"):
        figures: DirectionResult = getattr(result, direction)
        for f in dataclasses.fields(DirectionResult):
            value = getattr(figures, f.name)
            if value is not None:
                out[f"{direction}_{f.name}"] = float(value)
    out["runtime_s"] = float(result.runtime_s)
    out["errors"] = float(result.errors)
    out["verify_failures"] = float(len(result.verify_failures))
    for cls in VERIFY_CLASSES:
        out[f"verify_{cls}"] = float(sum(1 for _, c in result.verify_failures if c == cls))
    return out
