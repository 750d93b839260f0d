"""Run command-line device and workload tools (fio, memtester, stressapptest) as child processes.

The only module in qualify that runs device tools through subprocess: an argument list, never a
shell; a timeout that ends the tool's whole process group; captured output; errors that name the
tool and, for a missing binary, the Debian package that provides it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from drivers.errors import InstrumentError, InstrumentTimeout

# Tool → Debian package, so a missing binary tells the operator what to install.
TOOL_PACKAGES: dict[str, str] = {
    "fio": "fio",
    "memtester": "memtester",
    "stressapptest": "stressapptest",
    "nvme": "nvme-cli",
    "edac-util": "edac-utils",
    "dmidecode": "dmidecode",
}

# How long a tool gets to exit after SIGTERM before it is killed outright.
_TERM_GRACE_S = 5.0


class ToolNotFound(InstrumentError):
    """A tool's binary is not on PATH (or not at the configured path)."""


class ToolTimeout(InstrumentTimeout):
    """A tool ran past its timeout and was stopped; the captured output so far is attached."""

    def __init__(self, address: str, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(address, message)
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class ToolResult:
    """One finished tool run: its argument list, exit status, output and how long it took."""

    tool: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def signalled(self) -> bool:
        """Return whether the tool was ended by a signal rather than exiting by itself."""
        return self.returncode < 0


@runtime_checkable
class ToolRunner(Protocol):
    """A link to one command-line tool: run it with arguments and get its result back.

    Contract: a tool that exits non-zero is returned, not raised (exit codes carry verdicts,
    memtester's bitmask for one); only failures to run it raise: `ToolNotFound`, `ToolTimeout`,
    `InstrumentError`.
    """

    tool: str
    address: str

    def run(
        self,
        args: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_after_s: float | None = None,
    ) -> ToolResult:
        """Run the tool with `args` and wait for it to finish.

        With `stop_after_s`, a tool that runs until stopped (memtester with 0 loops) is ended
        with SIGTERM after that long and its result returned as usual (`signalled` is true).
        """
        ...


def package_for(tool: str) -> str:
    """Return the Debian package that provides `tool` (the tool's own name when unknown)."""
    return TOOL_PACKAGES.get(Path(tool).name, Path(tool).name)


def find_tool(tool: str) -> str:
    """Return the full path of `tool`; raise ToolNotFound naming the package that provides it."""
    found = shutil.which(tool)
    if found is None:
        package = package_for(tool)
        raise ToolNotFound(
            tool,
            f"{tool} not found on PATH; install the '{package}' package (apt-get install {package})",
        )
    return found


class ProcessRunner:
    """A ToolRunner that starts the tool as a child process in its own process group."""

    def __init__(self, tool: str, *, prefix: Sequence[str] = ()) -> None:
        """Bind to `tool` (a name on PATH or a path); `prefix` goes before it (`sudo`, `taskset`)."""
        self.tool = Path(tool).name
        self.address = tool
        self._command = tool
        self._prefix = tuple(prefix)

    def run(
        self,
        args: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_after_s: float | None = None,
    ) -> ToolResult:
        """Run the tool with `args`; raise ToolTimeout (with partial output) past `timeout_s`.

        With `stop_after_s`, the tool is ended with SIGTERM after that long and its output
        returned as a normal result, for tools that run until they are stopped.
        """
        if timeout_s <= 0:
            raise ValueError(f"{self.tool}: timeout_s must be positive (got {timeout_s})")
        path = find_tool(self._command)
        prefix = [find_tool(self._prefix[0]), *self._prefix[1:]] if self._prefix else []
        argv = (*prefix, path, *(str(a) for a in args))
        child_env = None if env is None else {**os.environ, **env}
        start = time.monotonic()
        try:
            # A new session puts the tool and every child it forks (fio's job processes) in one
            # process group, so a timeout can stop all of them and nothing else.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=child_env,
                start_new_session=True,
            )
        except OSError as exc:
            raise InstrumentError(self.tool, f"cannot start {path}: {exc}") from exc
        stopping = stop_after_s is not None and stop_after_s < timeout_s
        try:
            out, err = proc.communicate(timeout=stop_after_s if stopping else timeout_s)
        except subprocess.TimeoutExpired:
            out, err = _stop_group(proc)
            if not stopping:
                raise ToolTimeout(
                    self.tool,
                    f"{self.tool} did not finish within {timeout_s:g} s and was stopped",
                    stdout=_text(out),
                    stderr=_text(err),
                ) from None
        except BaseException:
            # Ctrl-C or an abort in the harness must not leave the tool running on the device.
            _stop_group(proc)
            raise
        return ToolResult(
            tool=self.tool,
            argv=argv,
            returncode=proc.returncode,
            stdout=_text(out),
            stderr=_text(err),
            duration_s=time.monotonic() - start,
        )


def _stop_group(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Stop the process group led by `proc` (SIGTERM, then SIGKILL) and collect its output."""
    for sig, wait_s in ((signal.SIGTERM, _TERM_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return b"", b""


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")
