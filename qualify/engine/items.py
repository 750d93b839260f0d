"""The items of a plan: one per step (and per environment) of every stage iteration."""

from __future__ import annotations

from dataclasses import dataclass

from qualify.plans.schema import Plan

ENVIRONMENT = "environment"


@dataclass(frozen=True)
class ItemRef:
    """One unit of work across all DUTs: a step, or the environment, of a stage iteration."""

    index: int
    stage_index: int
    stage: str
    iteration: int
    step_index: int  # -1: the stage's environment
    name: str
    first_of_iteration: bool

    @property
    def key(self) -> str:
        """Return `stage[iteration]::name`, the item's stable name."""
        return f"{self.stage}[{self.iteration}]::{self.name}"

    @property
    def is_environment(self) -> bool:
        """Return whether this item establishes the stage environment."""
        return self.step_index < 0


def plan_items(plan: Plan) -> list[ItemRef]:
    """List every item a plan can run, in order, up to each stage's maximum iterations."""
    items: list[ItemRef] = []
    for si, stage in enumerate(plan.stages):
        for iteration in range(1, stage.iterations + 1):
            first = True
            if stage.environment is not None:
                items.append(ItemRef(len(items), si, stage.name, iteration, -1, ENVIRONMENT, first))
                first = False
            for pi, step in enumerate(stage.steps):
                items.append(ItemRef(len(items), si, stage.name, iteration, pi, step.name, first))
                first = False
    return items
