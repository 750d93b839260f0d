"""A pytest plugin for crash tests: SIGKILLs the qualify run at a chosen point.

QUALIFY_KILL_BEFORE_ITEM=N kills before the N-th plan item starts (after N-1 commits);
QUALIFY_KILL_IN_COMMIT=N kills inside the N-th batch write, before it commits;
QUALIFY_TERM_BEFORE_ITEM=N sends SIGTERM instead (a clean stop: the run must abort safely);
QUALIFY_BREAK_INTERRUPT_HOOK=1 makes pytest's own interrupt handling fail, as it did in a real
service run when rendering the traceback of a frame with no line number raised a TypeError.
It is loaded by the tests through `qualify run ... -- -p tests.support.killer`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from qualify.store import db

_started = 0
_commits = 0


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    global _started
    _started += 1
    if _started == int(os.environ.get("QUALIFY_KILL_BEFORE_ITEM", "0")):
        _kill()
    if _started == int(os.environ.get("QUALIFY_TERM_BEFORE_ITEM", "0")):
        os.kill(os.getpid(), signal.SIGTERM)


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    if os.environ.get("QUALIFY_BREAK_INTERRUPT_HOOK"):
        raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'")


def pytest_configure(config: Any) -> None:
    target = int(os.environ.get("QUALIFY_KILL_IN_COMMIT", "0"))
    if not target:
        return
    original = db.Store.write_batch

    def write_batch(self: db.Store, batch: db.Batch, checkpoint: Any) -> None:
        global _commits
        if batch.steps:
            _commits += 1
            if _commits == target:
                _kill()
        original(self, batch, checkpoint)

    db.Store.write_batch = write_batch  # type: ignore[method-assign]
