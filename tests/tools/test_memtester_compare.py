"""Our host engine's memtester list against the real memtester: same tests, same order, both pass."""

from __future__ import annotations

import shutil

import pytest

from drivers.memtest.host_engine import MEMTESTER_TESTS, HostMemoryEngine
from drivers.memtest.memtester import Memtester, memtester_args, parse_memtester
from drivers.transport.process import ProcessRunner

needs_memtester = pytest.mark.skipif(
    shutil.which("memtester") is None, reason="memtester not installed (apt-get install memtester)"
)
SIZE = 2 << 20


@needs_memtester
def test_our_list_is_memtesters_list_in_its_order() -> None:
    done = ProcessRunner("memtester").run(memtester_args(SIZE, 1), timeout_s=120)
    outcome = parse_memtester(done.stdout, done.stderr, done.returncode)
    assert outcome.passed
    assert list(outcome.tests) == list(MEMTESTER_TESTS)  # the names it prints, in its order
    with HostMemoryEngine(SIZE, chunk_bytes=64 * 1024) as engine:
        ours = engine.run_memtester()
    assert [t.name for t in ours.tests] == list(outcome.tests)
    assert ours.passed and all(t.passes == MEMTESTER_TESTS[t.name] for t in ours.tests)


@needs_memtester
def test_both_judge_the_same_good_host_memory_as_passing() -> None:
    result = Memtester().run(SIZE, loops=1)
    with HostMemoryEngine(SIZE) as engine:
        ours = engine.run_memtester()
    assert result.passed == ours.passed is True
    assert result.miscompares == ours.failed_reads == 0
