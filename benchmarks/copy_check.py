"""Copy-and-check bandwidth: our engine against what stressapptest reports on the same size.

stressapptest's "Memory Copy" figure (its default two copy threads, -M 1024) counts each page
copied once, with the source page's pattern checked as it goes; its MB are MiB. Ours copies
pages between the buffer's halves and checks each copy against the pattern while it is in
the cache (so every byte read from memory is checked, and read once), on as many threads as
the host has cores, and counts each copied byte once.
"""

from __future__ import annotations

import os
import shutil

from common import Figure

from drivers.memtest.host_engine import HostMemoryEngine
from drivers.memtest.stressapptest import StressAppTest


def measure(size_mb: int = 1024, seconds: float = 8.0) -> list[Figure]:
    """Return our copied-and-checked bytes per second against stressapptest's."""
    threads = os.cpu_count() or 1
    # 512 KiB pages: a page and its pattern stay in a core's 1 MiB L2 between the copy and its
    # check, with few calls per byte (measured here: 256 KiB 19.0, 512 KiB 20.1, 1 MiB 16.6 GB/s).
    with HostMemoryEngine(size_mb << 20, threads=threads, chunk_bytes=512 << 10) as engine:
        result = engine.copy_and_check(seconds=seconds)
    if not result.passed:
        raise RuntimeError(f"copy-and-check failed: {result.failed_reads} reads")
    anchor, notes = (
        None,
        [f"ours: {threads} threads, 512 KiB pages, {size_mb} MiB, {result.duration_s:.1f} s"],
    )
    if shutil.which("stressapptest") is None:
        notes.append("stressapptest not installed (apt-get install stressapptest): no anchor")
    else:
        sat = StressAppTest().run(size_mb << 20, seconds)
        if not sat.passed or sat.bw_bytes_s is None:
            raise RuntimeError(f"stressapptest did not pass: {sat.status}")
        anchor = sat.bw_bytes_s / 1e9
        notes.append(f"stressapptest -M {size_mb} -s {seconds:g}: {sat.status}")
    return [
        Figure(
            "copy-and-check vs stressapptest",
            result.copied_bytes_per_s / 1e9,
            anchor,
            "GB/s",
            0.5,
            target_text=">= 0.5x",
            notes=notes,
        )
    ]
