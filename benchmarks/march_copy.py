"""March C- throughput on 1 GiB (bytes read + written per second) against a numpy copy's.

March C- applies 10 operations per word (5 reads, 5 writes); its figure counts each as 8 bytes
moved. The anchor is numpy.copyto of 1 GiB into another 1 GiB: bytes read plus bytes written
per second, best of three, in the same run.
"""

from __future__ import annotations

import numpy as np
from common import Figure, best_of

from drivers.memtest.host_engine import HostMemoryEngine


def measure(size_mb: int = 1024) -> list[Figure]:
    """Return March C-'s bytes per second against numpy copy's."""
    size = size_mb << 20
    arrays = [np.ones(size // 8, dtype=np.uint64), np.zeros(size // 8, dtype=np.uint64)]
    copy_s, _ = best_of(3, lambda: np.copyto(arrays[1], arrays[0]))
    arrays.clear()
    with HostMemoryEngine(size) as engine:
        best = max((engine.run_march("March C-") for _ in range(2)), key=lambda r: r.bytes_per_s)
    if not best.passed:
        raise RuntimeError(f"March C- failed on host memory: {best.failed_reads} reads")
    return [
        Figure(
            "March C- vs numpy copy (r+w)",
            best.bytes_per_s / 1e9,
            2 * size / copy_s / 1e9,
            "GB/s",
            0.3,
            target_text=">= 0.3x",
            notes=[f"March C-: 10 ops/word on {size_mb} MiB in {best.duration_s:.2f} s"],
        )
    ]
