"""The station queue file `qualify.queue/1`: runs to take once, recurring schedules, service settings.

```yaml
spec: qualify.queue/1
service: {http_host: 127.0.0.1, checkpoint_every_s: 300, retention: {raw_days: 14}}
runs:
  - {id: lot-a, plan: jesd218_enterprise, lot: A, slots: 8, seed: 1, priority: 10}
  - {plan: station_smoke, duts: [QSIM0001, QSIM0002]}
schedules:
  - {name: daily-smoke, cron: "0 6 * * *", plan: station_smoke}
```

An entry without an `id` is named by a hash of its content (and its rank among identical
entries), so editing the file never runs an entry a second time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qualify.errors import InputError
from qualify.service.cron import Cron, parse_cron
from qualify.yamlsrc import load_yaml, validate_doc

QUEUE_SPEC = "qualify.queue/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRequest(_Strict):
    """What to run: a plan on some DUTs of the station, with lot, seed and priority."""

    plan: str
    lot: str | None = None
    duts: list[str] | None = None
    slots: int | Literal["all"] | None = Field(default=None)
    seed: int = 0
    priority: int = 0
    operator: str | None = None

    @field_validator("slots")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("slots is a count of at least 1, or 'all'")
        return value

    @model_validator(mode="after")
    def _one_selection(self) -> RunRequest:
        if self.duts is not None and self.slots is not None:
            raise ValueError("give duts (serials) or slots (a count), not both")
        if self.duts is not None and (not self.duts or len(set(self.duts)) != len(self.duts)):
            raise ValueError("duts lists distinct serials, at least one")
        return self


class QueueEntry(RunRequest):
    """A run to take once."""

    id: str | None = Field(default=None, min_length=1, max_length=200)


class Schedule(RunRequest):
    """A recurring run, fired by a cron expression (UTC)."""

    name: str = Field(min_length=1, max_length=200)
    cron: str

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            parse_cron(value)
        except InputError as exc:
            raise ValueError(exc.message) from None
        return value


class Retention(_Strict):
    """Keep raw telemetry for `raw_days` of run time, then min/max/mean per `window_s`."""

    raw_days: float = Field(gt=0)
    window_s: float = Field(default=600.0, gt=0)


class SyncSettings(_Strict):
    """Ship runs to the fleet database every `every_s` seconds."""

    to: str = Field(pattern=r"^postgres(ql)?://")
    every_s: float = Field(default=300.0, ge=1)


class ServiceSettings(_Strict):
    """How the service behaves: status page address, housekeeping intervals."""

    http_host: str = "127.0.0.1"
    poll_s: float = Field(default=0.5, gt=0, le=60)
    checkpoint_every_s: float = Field(default=300.0, gt=0)
    stop_timeout_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    min_free_mb: float = Field(default=64.0, ge=0)  # below this, no run starts or resumes
    retention: Retention | None = None
    sync: SyncSettings | None = None


class QueueFile(_Strict):
    """A station's queue file."""

    spec: Literal["qualify.queue/1"]
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    runs: list[QueueEntry] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """A request with the id it runs under once."""

    id: str
    source: str  # queue | schedule
    request: RunRequest

    def request_json(self) -> str:
        """Serialise the request for the service's table."""
        return self.request.model_dump_json(exclude={"id", "name", "cron"})


def load_queue(path: str | Path) -> QueueFile:
    """Read and validate a queue file; errors name the file, the key and the line."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a queue file is a mapping with spec, runs and schedules")
    queue = validate_doc(doc, QueueFile)
    names = [s.name for s in queue.schedules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise doc.error(("schedules", i, "name"), f"schedule name {name!r} repeats")
    ids = [e.id for e in queue.runs if e.id is not None]
    for i, entry in enumerate(queue.runs):
        if entry.id is not None and ids.count(entry.id) > 1:
            raise doc.error(("runs", i, "id"), f"run id {entry.id!r} repeats")
    return queue


def queue_jobs(queue: QueueFile) -> list[Job]:
    """Return one job per queue entry, each with a stable id."""
    jobs = []
    seen: dict[str, int] = {}
    for entry in queue.runs:
        if entry.id is not None:
            jobs.append(Job(f"queue:{entry.id}", "queue", entry))
            continue
        digest = hashlib.sha256(
            json.dumps(entry.model_dump(exclude={"id"}), sort_keys=True).encode()
        ).hexdigest()[:16]
        rank = seen.get(digest, 0)
        seen[digest] = rank + 1
        jobs.append(Job(f"queue:{digest}-{rank}", "queue", entry))
    return jobs


def schedule_cron(schedule: Schedule) -> Cron:
    """Return the parsed cron of a schedule."""
    return parse_cron(schedule.cron)
