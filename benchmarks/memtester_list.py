"""memtester's whole test list: our host engine on 1 GiB against memtester itself.

memtester 4.6 runs its 18 tests single-threaded over the size given. At 1 GiB it takes about
two minutes on this machine (REFERENCE.md measured ten), and that is what the runner measures
by default. `--memtester-mb` runs it on a smaller size for a quick look; its time is then
scaled linearly to our size and the output says so (128 MiB scaled gave 99 s where the real
1 GiB run took 110 s: the smaller buffer flatters memtester). Ours runs
the same tests, patterns and passes on the full size; a run that made fewer passes than
memtester's list (MEMTESTER_TESTS) is refused, and so is a memtester run that skipped a test.
"""

from __future__ import annotations

import shutil
import time

from common import Figure

from drivers.memtest.host_engine import MEMTESTER_TESTS, HostMemoryEngine
from drivers.memtest.memtester import memtester_args, parse_memtester
from drivers.transport.process import ProcessRunner


def measure(size_mb: int = 1024, memtester_mb: int = 1024) -> list[Figure]:
    """Return our list's wall time on `size_mb` against memtester's (scaled if `memtester_mb` differs)."""
    with HostMemoryEngine(size_mb << 20) as engine:
        start = time.perf_counter()
        result = engine.run_memtester()
        ours_s = time.perf_counter() - start
        locked = engine.buffer.locked
        layout = f"{engine.threads} threads, {engine.chunk_words * 8 >> 10} KiB chunks"
    dropped = {t.name: t.passes for t in result.tests if t.passes != MEMTESTER_TESTS[t.name]}
    if dropped or len(result.tests) != len(MEMTESTER_TESTS) or not result.passed:
        raise RuntimeError(f"our memtester list dropped passes or failed: {dropped} {result.failed_reads}")
    notes = [
        f"ours: all {len(MEMTESTER_TESTS)} tests, {sum(MEMTESTER_TESTS.values())} passes, "
        f"{size_mb} MiB, {layout}, mlock {'on' if locked else 'refused'}, "
        f"{result.bytes_per_s / 1e9:.1f} GB/s r+w"
    ]
    anchor = None
    if shutil.which("memtester") is None:
        notes.append("memtester not installed (apt-get install memtester): no anchor")
    else:
        done = ProcessRunner("memtester").run(memtester_args(memtester_mb << 20, 1), timeout_s=3600)
        outcome = parse_memtester(done.stdout, done.stderr, done.returncode)
        if not outcome.passed or len(outcome.tests) != len(MEMTESTER_TESTS):
            raise RuntimeError(f"memtester did not pass its whole list: {outcome.tests}")
        anchor = done.duration_s * size_mb / memtester_mb
        if memtester_mb == size_mb:
            notes.append(f"memtester ran the same {size_mb} MiB in {done.duration_s:.1f} s")
        else:
            notes.append(
                f"memtester ran {memtester_mb} MiB in {done.duration_s:.1f} s, SCALED linearly "
                f"x{size_mb / memtester_mb:g} to {size_mb} MiB"
            )
    return [
        Figure(
            "memtester list, 1 GiB (wall s)",
            ours_s,
            anchor,
            "s",
            3.0,
            higher_is_better=False,
            target_text=">= 3x faster",
            notes=notes,
        )
    ]
