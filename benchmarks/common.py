"""What every figure module shares: the Figure record, best-of timing, and temporary stations.

A figure is one line of the runner's table: what we measured, what the anchor measured on the
same machine in the same run, their ratio (higher is better for us), and the issue's target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SSD_LOT = REPO / "fixtures" / "stations" / "sim-ssd-lot.yaml"


@dataclass
class Figure:
    """One measured figure against its anchor."""

    name: str
    ours: float | None
    anchor: float | None
    unit: str
    target: float  # the ratio the issue asks for (ratio = ours / anchor, or anchor / ours)
    higher_is_better: bool = True
    target_text: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Get how many times better ours is than the anchor (>1 is better)."""
        if self.ours is None or self.anchor is None or self.ours <= 0 or self.anchor <= 0:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours

    @property
    def met(self) -> bool | None:
        """Get whether the target is met (None when a side could not be measured)."""
        return None if self.ratio is None else self.ratio >= self.target


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Return the shortest wall time of `repeats` calls of `fn`, and the last call's value."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def ssd_station(duts: int, path: Path) -> Path:
    """Write a variant of the shipped 34-drive sim lot with `duts` drives to `path`.

    Same chamber, drive model and wiring: three drives per 12 V channel, two channels per
    E36313A supply, as many supplies as the drives need.
    """
    src = yaml.safe_load(SSD_LOT.read_text())
    lab = src["simulation"]["lab"]
    model = lab["duts"][0]["model"]
    dut0 = src["duts"][0]
    psu0 = next(i for i in src["instruments"] if i["name"] == "psu1")
    per_supply = 6
    supplies = -(-duts // per_supply)
    lab["supplies"] = [{"name": f"psu{i + 1}", "model": "E36313A"} for i in range(supplies)]
    src["instruments"] = [i for i in src["instruments"] if not i["name"].startswith("psu")] + [
        dict(psu0, name=f"psu{i + 1}", address=f"${{sim:psu{i + 1}}}") for i in range(supplies)
    ]
    lab["duts"], src["duts"] = [], []
    for slot in range(1, duts + 1):
        supply, channel = f"psu{(slot - 1) // per_supply + 1}", 2 + ((slot - 1) // 3) % 2
        lab["duts"].append(
            {
                "slot": slot,
                "kind": "ssd",
                "serial": f"QLOT{slot:04d}",
                "supply": supply,
                "channel": channel,
                "model": model,
            }
        )
        entry = dict(dut0, slot=slot, address=f"sim-nvme://slot{slot}")
        entry["supply"] = dict(dut0["supply"], instrument=supply, channel=channel)
        src["duts"].append(entry)
    src["name"] = f"sim-ssd-lot-{duts}"
    src["description"] = f"{duts} simulated enterprise NVMe SSDs (benchmark variant of sim-ssd-lot)"
    path.write_text(yaml.safe_dump(src, sort_keys=False))
    return path
