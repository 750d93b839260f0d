"""Plans as data: the `qualify.plan/1` schema, the loader and the shipped library."""

from qualify.plans.loader import LoadedPlan, load_plan, parse_plan
from qualify.plans.schema import Plan, Stage, Step

__all__ = ["LoadedPlan", "Plan", "Stage", "Step", "load_plan", "parse_plan"]
