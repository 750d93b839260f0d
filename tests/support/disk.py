"""A folder whose free space a test controls: a small tmpfs and a ballast file, or a file-size limit.

Tests run as root here and in CI, so they can mount a tmpfs; where mounting is refused they
fall back to RLIMIT_FSIZE in the child (SIGXFSZ ignored, so writes fail with EFBIG).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(folder: Path, size_bytes: int) -> Iterator[str | None]:
    """Mount a tmpfs of `size_bytes` on `folder` for the block; yield None, or why it could not."""
    if os.geteuid() != 0:
        yield "not root"
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes // 1024}k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        yield f"mount failed: {mounted.stderr.strip()}"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


@contextmanager
def tmpfs_or_skip(tmp_path: Path, size_bytes: int) -> Iterator[FullDisk]:
    """Yield a FullDisk on a new tmpfs in `tmp_path`; skip the test where none can be mounted."""
    folder = tmp_path / "small"
    folder.mkdir()
    with small_tmpfs(folder, size_bytes) as reason:
        if reason is not None:
            pytest.skip(f"needs a tmpfs to fill: {reason}")
        yield FullDisk(folder, "tmpfs")


@dataclass
class FullDisk:
    """A folder whose free space the test controls, by a tmpfs and a ballast or a file-size limit."""

    folder: Path
    how: str  # "tmpfs" or "rlimit"
    limit: int | None = None
    ballast: Path | None = None

    def fill(self, free_bytes: int) -> None:
        """Leave about `free_bytes` for new writes (by growing the ballast, or by shrinking it)."""
        if self.how == "rlimit":
            self.limit = free_bytes
            return
        st = os.statvfs(self.folder)
        ballast_bytes = st.f_bavail * st.f_frsize - free_bytes
        if ballast_bytes < 0 and self.ballast is not None:
            # Give back only the difference, in one truncate: freeing the whole ballast first
            # would show a watcher (the station service) a moment with plenty of room.
            os.truncate(self.ballast, max(0, self.ballast.stat().st_size + ballast_bytes))
            return
        assert ballast_bytes > 0
        self.ballast = self.folder / "ballast"
        # Unbuffered, real blocks (a sparse file would take no space). A run writing at the same
        # time may fill the rest first: then the file system is as full as wanted, or fuller.
        with self.ballast.open("ab", buffering=0) as fh:
            chunk = b"\0" * (64 << 10)
            try:
                while ballast_bytes > 0:
                    ballast_bytes -= fh.write(chunk[: min(len(chunk), ballast_bytes)])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise

    def free(self) -> None:
        """Give the space back."""
        self.limit = None
        if self.ballast is not None:
            self.ballast.unlink()
            self.ballast = None

    def preexec(self) -> Callable[[], None] | None:
        """Return what the child runs before exec: the file-size limit, when that is the means."""
        limit = self.limit
        if limit is None:
            return None

        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return apply
