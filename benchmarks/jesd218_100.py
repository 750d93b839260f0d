"""The JESD218 enterprise plan on 100 simulated SSDs, virtual time: wall seconds of `qualify run`.

A 100-drive variant of the shipped 34-drive sim lot (same model and wiring, seventeen
supplies) is written to a temporary directory; `qualify run jesd218_enterprise --station ...`
runs end to end in a child process (pytest, records, checkpoints, criteria and the HTML
report), as a user would run it. The anchor is the issue's limit of 60 s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, Figure, ssd_station

LIMIT_S = 60.0


def measure(duts: int = 100) -> list[Figure]:
    """Return the plan's wall seconds on `duts` simulated SSDs against the 60 s limit."""
    tmp = Path(tempfile.mkdtemp(prefix="qualify-jesd218-"))
    station = ssd_station(duts, tmp / "station.yaml")
    plan = REPO / "test_plans" / "ssd" / "jesd218_enterprise.yaml"
    args = [sys.executable, "-m", "qualify", "run", str(plan), "--station", str(station)]
    args += ["--db", str(tmp / "q.db"), "--report", str(tmp / "report.html"), "--seed", "1"]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp)
    wall_s = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: a drive or a lot criterion failed, still a full run
        raise RuntimeError(
            f"qualify run exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    summary = next((line for line in reversed(done.stdout.splitlines()) if " passed" in line), "")
    return [
        Figure(
            f"JESD218 enterprise, {duts} sim SSDs (wall s)",
            wall_s,
            LIMIT_S,
            "s",
            1.0,
            higher_is_better=False,
            target_text="< 60 s",
            notes=[f"qualify run, exit {done.returncode}: {summary.strip('= ')}"],
        )
    ]
