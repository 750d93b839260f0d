"""The shipped plan library under test_plans/: list, find by name, JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qualify.errors import InputError
from qualify.plans.loader import load_plan
from qualify.plans.schema import Plan
from qualify.resources import plans_dir


@dataclass(frozen=True)
class PlanEntry:
    """One plan of the library: its name, version, kind, description and file."""

    name: str
    version: str
    applies_to: str
    description: str
    path: Path


def list_plans(root: Path | None = None) -> list[PlanEntry]:
    """Return every plan under the library folder, sorted by name."""
    base = root or plans_dir()
    entries = []
    for path in sorted(base.rglob("*.yaml")):
        loaded = load_plan(path)
        plan = loaded.plan
        entries.append(PlanEntry(plan.name, plan.version, plan.applies_to, plan.description or "", path))
    return sorted(entries, key=lambda e: e.name)


def find_plan(name_or_path: str, root: Path | None = None) -> Path:
    """Resolve a plan argument: an existing file path, else a library plan name."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    for entry in list_plans(root):
        if entry.name == name_or_path or entry.path.stem == name_or_path:
            return entry.path
    raise InputError(f"no plan file or library plan named {name_or_path!r}")


def plan_schema() -> str:
    """Return the JSON Schema of the plan format, indented."""
    return json.dumps(Plan.model_json_schema(), indent=2)
