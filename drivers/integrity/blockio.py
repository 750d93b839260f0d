"""Read and write byte ranges and pattern blocks on a file or block device.

O_DIRECT with page-aligned buffers where the target and the range allow it, so a verify reads
the medium and not the host's page cache; otherwise buffered I/O, with fsync after writes and
the range dropped from the cache before reads. Pattern writes and verifies run on worker
threads, each with its own reused buffer, so I/O overlaps the pattern work.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from drivers.integrity.pattern import CHECKS, Check, Finding, default_threads, generate_into, verify

A = TypeVar("A")
T = TypeVar("T")

# O_DIRECT needs offsets and lengths in whole logical blocks; 4 KiB is safe on every device.
DIRECT_ALIGN_BYTES = 4096
# One read or write per chunk and worker: large enough for a device's queue, small enough that
# a chunk read into memory is still in the cache when it is checked.
DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024
# check="crc" does little work per byte, so numpy's per-call cost counts: read in larger chunks
# (two workers' chunks still fit a 32 MiB L3).
CRC_CHUNK_BYTES = 4 * 1024 * 1024


def _aligned(offset_bytes: int, length: int) -> bool:
    return offset_bytes % DIRECT_ALIGN_BYTES == 0 and length % DIRECT_ALIGN_BYTES == 0


@contextlib.contextmanager
def open_target(path: str | Path, *, write: bool, direct: bool = True) -> Iterator[tuple[int, bool]]:
    """Open `path` and yield (fd, whether O_DIRECT is on); fall back to buffered if refused."""
    flags = (os.O_RDWR | os.O_CREAT) if write else os.O_RDONLY
    use_direct = direct and hasattr(os, "O_DIRECT")
    fd = -1
    if use_direct:
        try:
            fd = os.open(path, flags | os.O_DIRECT, 0o644)
        except OSError as exc:
            # tmpfs and some network filesystems refuse O_DIRECT with EINVAL.
            if exc.errno != errno.EINVAL:
                raise
            use_direct = False
    if fd < 0:
        fd = os.open(path, flags, 0o644)
    try:
        yield fd, use_direct
    finally:
        os.close(fd)


def _full_pwrite(fd: int, view: memoryview, offset_bytes: int) -> None:
    done = 0
    while done < len(view):
        written = os.pwrite(fd, view[done:], offset_bytes + done)
        if written <= 0:
            raise OSError(errno.EIO, f"short write at byte {offset_bytes + done}")
        done += written


def _full_pread(fd: int, view: memoryview, offset_bytes: int) -> int:
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset_bytes + done)
        if got == 0:
            break  # end of file: the rest stays zero, which reads as unwritten
        done += got
    return done


def _write_at(fd: int, is_direct: bool, offset_bytes: int, data: bytes) -> None:
    if is_direct:
        with mmap.mmap(-1, len(data)) as buf:  # page-aligned, as O_DIRECT needs
            buf[:] = data
            _full_pwrite(fd, memoryview(buf), offset_bytes)
    else:
        _full_pwrite(fd, memoryview(data), offset_bytes)


def _read_at(fd: int, is_direct: bool, offset_bytes: int, length: int) -> bytes:
    if not is_direct and hasattr(os, "posix_fadvise"):
        # Without O_DIRECT, drop cached pages so the read goes to the device.
        os.posix_fadvise(fd, offset_bytes, length, os.POSIX_FADV_DONTNEED)
    with mmap.mmap(-1, max(length, 1)) as buf:
        view = memoryview(buf)[:length]
        _full_pread(fd, view, offset_bytes)
        data = bytes(view)
        view.release()
    return data


def write_range(path: str | Path, offset_bytes: int, data: bytes, *, direct: bool = True) -> None:
    """Write `data` at `offset_bytes` and make it durable (fsync) before returning."""
    with open_target(path, write=True, direct=direct and _aligned(offset_bytes, len(data))) as (fd, d):
        _write_at(fd, d, offset_bytes, data)
        os.fsync(fd)


def read_range(path: str | Path, offset_bytes: int, length: int, *, direct: bool = True) -> bytes:
    """Return `length` bytes from `offset_bytes` (zeros past the end of a file)."""
    with open_target(path, write=False, direct=direct and _aligned(offset_bytes, length)) as (fd, d):
        return _read_at(fd, d, offset_bytes, length)


def _chunks(lba_start: int, count: int, block_bytes: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    per_chunk = max(1, chunk_bytes // block_bytes)
    for first in range(lba_start, lba_start + count, per_chunk):
        yield first, min(per_chunk, lba_start + count - first)


def _runs(chunks: list[tuple[int, int]], threads: int | None) -> list[list[tuple[int, int]]]:
    """Split the chunks into contiguous runs, one per worker thread, in LBA order."""
    wanted = default_threads() if threads is None else max(1, threads)
    if wanted <= 1 or len(chunks) < 2:
        return [chunks]
    per = -(-len(chunks) // wanted)
    return [chunks[i : i + per] for i in range(0, len(chunks), per)]


def _in_workers(items: list[A], work: Callable[[A], T]) -> list[T]:
    """Return work(item) for every item, each on its own thread when there are several."""
    if len(items) == 1:
        return [work(items[0])]
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="blockio") as pool:
        return list(pool.map(work, items))


def write_pattern(
    path: str | Path,
    lba_start: int,
    count: int,
    generation: int,
    seed: int,
    block_bytes: int,
    *,
    direct: bool = True,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    threads: int | None = None,
) -> int:
    """Write pattern blocks for LBAs `lba_start` .. +count; return the bytes written.

    Each worker thread fills its own page-aligned buffer in place and writes it, so generating
    the next chunk overlaps writing the last (pwrite and the pattern kernels release the GIL).
    """
    direct = direct and block_bytes % DIRECT_ALIGN_BYTES == 0
    chunks = list(_chunks(lba_start, count, block_bytes, chunk_bytes))
    # The buffers are page-aligned mmaps, so one write path serves O_DIRECT and buffered I/O.
    with open_target(path, write=True, direct=direct) as (fd, _):

        def work(run: list[tuple[int, int]]) -> int:
            longest = max(n for _, n in run) * block_bytes
            written = 0
            with mmap.mmap(-1, longest) as buf:  # page-aligned, as O_DIRECT needs
                for first, n in run:
                    view = memoryview(buf)[: n * block_bytes]
                    generate_into(view, first, generation, seed, block_bytes, threads=1)
                    _full_pwrite(fd, view, first * block_bytes)
                    view.release()
                    written += n * block_bytes
            return written

        total = sum(_in_workers(_runs(chunks, threads), work))
        # Acknowledged means durable: a power cut after this call must not lose these blocks.
        os.fsync(fd)
    return total


def verify_pattern(
    path: str | Path,
    lba_start: int,
    count: int,
    generation: int,
    seed: int,
    block_bytes: int,
    *,
    direct: bool = True,
    chunk_bytes: int | None = None,
    check: Check = "full",
    threads: int | None = None,
) -> list[Finding]:
    """Read LBAs `lba_start` .. +count back and return every block that is not as written.

    Worker threads take the chunks (`chunk_bytes`, by default 2 MiB, 4 MiB with check="crc")
    in turn, each reading into one reused page-aligned buffer and verifying there (`check` as in
    `pattern.verify`), so reading one chunk overlaps checking another; findings come back in
    LBA order.
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)} (got {check!r})")
    if chunk_bytes is None:
        chunk_bytes = CRC_CHUNK_BYTES if check == "crc" else DEFAULT_CHUNK_BYTES
    direct = direct and block_bytes % DIRECT_ALIGN_BYTES == 0
    chunks = list(_chunks(lba_start, count, block_bytes, chunk_bytes))
    if not chunks:
        return []
    workers = min(len(chunks), default_threads() if threads is None else max(1, threads))
    longest = max(n for _, n in chunks) * block_bytes
    # Workers take the next chunk when they are free, not a fixed share: on a shared host a
    # worker whose core is busy with other work then holds the others up by one chunk at most.
    pending = iter(chunks)
    pending_lock = threading.Lock()

    def next_chunk() -> tuple[int, int] | None:
        with pending_lock:
            return next(pending, None)

    with open_target(path, write=False, direct=direct) as (fd, is_direct):

        def work(_: int) -> list[tuple[int, list[Finding]]]:
            done: list[tuple[int, list[Finding]]] = []
            with mmap.mmap(-1, longest) as buf:
                while (chunk := next_chunk()) is not None:
                    first, n = chunk
                    length = n * block_bytes
                    view = memoryview(buf)[:length]
                    if not is_direct and hasattr(os, "posix_fadvise"):
                        # Without O_DIRECT, drop cached pages so the read goes to the device.
                        os.posix_fadvise(fd, first * block_bytes, length, os.POSIX_FADV_DONTNEED)
                    got = _full_pread(fd, view, first * block_bytes)
                    if got < length:
                        view[got:] = bytes(length - got)  # past the end: reads as never written
                    done.append(
                        (first, verify(view, first, generation, seed, block_bytes, check=check, threads=1))
                    )
                    view.release()
            return done

        parts = sorted(part for done in _in_workers(list(range(workers)), work) for part in done)
    return [f for _, findings in parts for f in findings]
