"""Write output files whole or not at all, and say in one line why a write failed."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qualify.errors import HarnessError, InputError, QualifyError

FILE_SYSTEM_FULL = "the file system is full"
_NO_SPACE = {
    errno.ENOSPC: FILE_SYSTEM_FULL,
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file-size limit is reached",
}
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


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` and move it into place only when the block succeeds.

    A sink watching the folder then never picks up a half-written file, and a full file
    system leaves no file behind, only a QualifyError naming `path` and the reason.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise file_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
