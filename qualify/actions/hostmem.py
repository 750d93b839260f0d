"""The host memory-test engine as a DIMM action, on a host that holds the DUT modules.

`dimm.host_march` runs a March algorithm (qualify.march) or memtester's whole test list over a
locked host buffer with drivers.memtest.host_engine. The host's memory is shared by every DIMM
in it, so the runs of a step take turns (one buffer at a time) rather than competing for the
same DRAM bandwidth; each DUT's step records its own run. Without an address map the host
cannot tell which module a failing word sits on: failing words count against each DUT tested.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drivers.memtest.host_engine import MEMTESTER_TESTS, HostMemoryEngine
from qualify.actions.base import Action, ActionContext, ActionResult, MeasurementSpec, Reading
from qualify.actions.registry import register
from qualify.march import algorithm as march_algorithm

MEMTESTER = "memtester"
_HOST_LOCK = threading.Lock()


class HostMarchParams(BaseModel):
    """Which algorithm (a March name, or `memtester` for its test list), over how much memory."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str = "March C-"
    size_mb: int = Field(default=1024, ge=1, le=1 << 22)
    passes: int = Field(default=1, ge=1, le=1000)
    background: int = Field(default=0, ge=0, le=(1 << 64) - 1)

    def model_post_init(self, context: Any) -> None:
        """Check the algorithm is memtester or one qualify.march defines."""
        if self.algorithm.strip().lower() != MEMTESTER:
            march_algorithm(self.algorithm)


def _host_march(ctx: ActionContext, params: HostMarchParams) -> ActionResult:
    ctx.require_dut()
    with _HOST_LOCK, HostMemoryEngine(params.size_mb << 20, seed=ctx.seed) as engine:
        if params.algorithm.strip().lower() == MEMTESTER:
            result = engine.run_memtester(loops=params.passes)
        else:
            result = engine.run_march(params.algorithm, background=params.background, passes=params.passes)
        locked = engine.buffer.locked
    readings = [
        Reading("failing_words", float(result.failing_words)),
        Reading("failed_reads", float(result.failed_reads)),
        Reading("bytes_per_s", result.bytes_per_s, unit="B/s"),
        Reading("run_s", result.duration_s, unit="s"),
        Reading("tests_failed", float(sum(1 for t in result.tests if not t.passed))),
    ]
    first = ", ".join(f"0x{f.address:X}" for f in result.failures[:8])
    if first:
        readings.append(Reading("first_failing_addresses", text=first))
    message = None if locked else "buffer not locked in RAM (no mlock permission): pages could swap"
    return ActionResult(readings, duration_s=result.duration_s, message=message)


register(
    Action(
        "dimm.host_march",
        "dut",
        frozenset({"dimm"}),
        HostMarchParams,
        (
            MeasurementSpec("failing_words", None, "Count distinct host words that read back wrong"),
            MeasurementSpec("failed_reads", None, "Count every read that did not match"),
            MeasurementSpec("bytes_per_s", "B/s", "Measure bytes read plus written per second"),
            MeasurementSpec("run_s", "s", "Measure the run's wall time"),
            MeasurementSpec(
                "tests_failed", None, f"Count failed tests (memtester has {len(MEMTESTER_TESTS)})"
            ),
        ),
        _host_march,
        "Run a March algorithm or memtester's test list on host memory holding the DUT modules.",
    )
)
