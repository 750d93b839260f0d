"""The child process of one station-service run: `qualify run` or `qualify resume`, tied to the service.

`python -m qualify.service.worker --parent PID -- run PLAN --station FILE ...` asks the kernel to
signal it when the service dies (so an orphaned run aborts to a safe state instead of running on
unsupervised), then runs the CLI exactly as an operator would.

The kernel sends the parent-death signal once per thread of the dying service, so it arrives as
SIGUSR1 and is relayed as one SIGTERM: a second SIGTERM would interrupt the run's own abort.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _relay_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGTERM)


def _die_with_parent(parent: int) -> None:
    signal.signal(signal.SIGUSR1, _relay_once)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the service's lock still guards the station
        return
    if os.getppid() != parent:  # the service died before prctl took effect
        os.kill(os.getpid(), signal.SIGUSR1)


def main(argv: list[str]) -> None:
    """Parse `--parent PID -- ARGS...` and run `qualify ARGS...`."""
    if len(argv) < 3 or argv[0] != "--parent" or argv[2] != "--":
        sys.stderr.write("usage: python -m qualify.service.worker --parent PID -- run|resume ...\n")
        raise SystemExit(2)
    _die_with_parent(int(argv[1]))
    from qualify.cli.app import app
    from qualify.files import keep_going_when_output_fails

    keep_going_when_output_fails()  # its log is on the database's file system, which may fill
    app(args=argv[3:], prog_name="qualify")


if __name__ == "__main__":
    main(sys.argv[1:])
