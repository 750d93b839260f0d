"""Write output files whole or not at all, and say in one line why a write failed."""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qualify.errors import HarnessError, InputError, QualifyError

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

FILE_SYSTEM_FULL = "the file system is full"
_NO_SPACE = {
    errno.ENOSPC: FILE_SYSTEM_FULL,
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file-size limit is reached",
}
# Errors after which output to a terminal, log or pipe is dropped rather than ending the run:
# the results are in the database; the log is the operator's copy of what was said.
_OUTPUT_LOSABLE = {*_NO_SPACE, errno.EPIPE, errno.EIO}
# Errors of the path the user gave (exit 2) rather than of the machine (exit 3).
_BAD_PATH = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


def free_bytes(path: Path) -> int | None:
    """Return the bytes an unprivileged writer may still use on `path`'s file system (None if unknown)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def file_error(path: Path, exc: OSError, doing: str = "write") -> QualifyError:
    """Return the error to report for an OSError met on `path`: what, where and why, in one line."""
    reason = _NO_SPACE.get(exc.errno or 0)
    if reason is not None:
        return HarnessError(f"cannot {doing} {path}: {reason} ({exc.strerror}); nothing was written")
    detail = exc.strerror or str(exc)
    if exc.errno in _BAD_PATH:
        return InputError(f"cannot {doing} {path}: {detail}")
    return HarnessError(f"cannot {doing} {path}: {detail}")


class FileSet:
    """Files written as one set: each to a temporary file beside it, all moved into place at the end."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary, target)

    @contextmanager
    def path(self, target: Path) -> Iterator[Path]:
        """Yield the temporary path for `target`; an OSError in the block names `target` and why."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        self.staged.append((tmp, target))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
        except OSError as exc:
            raise file_error(target, exc) from None


@contextmanager
def file_set() -> Iterator[FileSet]:
    """Yield a FileSet whose files appear only if the whole block succeeds, and then all of them.

    A full file system part-way through an export's tables then leaves none of the new tables
    and an earlier export's set whole, instead of a mix of two runs or a half set.
    """
    files = FileSet()
    try:
        yield files
        for tmp, target in files.staged:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise file_error(target, exc) from None
    finally:
        for tmp, _ in files.staged:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` and move it into place only when the block succeeds.

    A sink watching the folder then never picks up a half-written file, and a full file
    system leaves no file behind, only a QualifyError naming `path` and the reason.
    """
    with file_set() as files, files.path(path) as tmp:
        yield tmp


class _DroppingWriter(io.RawIOBase):
    """Write to a file descriptor; drop what the file system or reader refuses, and say so after."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.lost_bytes = 0
        self.lost_reason = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def fileno(self) -> int:
        return self.fd

    def write(self, data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        try:
            if self.lost_bytes:
                # Room again: say what is missing before going on, so a gap is never silent.
                os.write(
                    self.fd,
                    f"[qualify: {self.lost_bytes} bytes of output lost: {self.lost_reason}]\n".encode(),
                )
                self.lost_bytes = 0
            return os.write(self.fd, data)
        except OSError as exc:
            if exc.errno not in _OUTPUT_LOSABLE:
                raise
            self.lost_bytes += size
            self.lost_reason = _NO_SPACE.get(exc.errno or 0) or exc.strerror or str(exc)
            return size


def _dropping(stream: TextIO) -> TextIO:
    """Return a text stream over `stream`'s descriptor that drops refused output (or `stream` itself)."""
    try:
        fd = stream.fileno()
        stream.flush()
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): leave it
        return stream
    raw = _DroppingWriter(fd)
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors=getattr(stream, "errors", None) or "backslashreplace",
        line_buffering=bool(getattr(stream, "line_buffering", False)) or raw.isatty(),
    )


def keep_going_when_output_fails() -> None:
    """Make stdout and stderr drop what a full disk or a closed pipe refuses, instead of raising.

    A run under the station service writes its log on the database's file system: when that
    fills, the run must still end with its own exit code (3, resumable), not a traceback from a
    print. What could not be written is counted and noted in the output once writing works again.
    """
    sys.stdout = _dropping(sys.stdout)
    sys.stderr = _dropping(sys.stderr)
