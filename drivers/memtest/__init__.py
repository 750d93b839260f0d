"""Host memory stress through stressapptest and memtester, with errors attributed to DUT slots."""

from drivers.memtest.memtester import Memtester, MemtesterOutcome, memtester_args, parse_memtester
from drivers.memtest.result import MemStressResult, Miscompare, SlotErrors
from drivers.memtest.stressapptest import SatOutcome, StressAppTest, parse_stressapptest, stressapptest_args

__all__ = [
    "MemStressResult",
    "Memtester",
    "MemtesterOutcome",
    "Miscompare",
    "SatOutcome",
    "SlotErrors",
    "StressAppTest",
    "memtester_args",
    "parse_memtester",
    "parse_stressapptest",
    "stressapptest_args",
]
