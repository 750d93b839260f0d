"""Bulk memory primitives for the host memory-test engine: fill, compare and copy word ranges.

The C library's memset, memcpy and memcmp through ctypes: vectorised, using non-temporal or
`rep stosb` stores for large fills, and called with the GIL released, so worker threads overlap.
Where no C library can be loaded the same operations run on numpy (slower, same results).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
from typing import Any

import numpy as np
import numpy.typing as npt

Words = npt.NDArray[np.uint64]
WORD_BYTES = 8


def _load_libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)  # CDLL (not PyDLL): every call releases the GIL
    except OSError:
        return None
    size, ptr = ctypes.c_size_t, ctypes.c_void_p
    libc.memcmp.argtypes, libc.memcmp.restype = [ptr, ptr, size], ctypes.c_int
    libc.memcpy.argtypes, libc.memcpy.restype = [ptr, ptr, size], ptr
    libc.memset.argtypes, libc.memset.restype = [ptr, ctypes.c_int, size], ptr
    libc.mlock.argtypes, libc.mlock.restype = [ptr, size], ctypes.c_int
    libc.munlock.argtypes, libc.munlock.restype = [ptr, size], ctypes.c_int
    return libc


_LIBC = _load_libc()


def has_libc() -> bool:
    """Return whether the C library's primitives are in use (otherwise numpy's)."""
    return _LIBC is not None


def address_of(words: Words) -> int:
    """Return the virtual address of the first word of a contiguous array."""
    return int(words.ctypes.data)


def equal(a: Words, b: Words) -> bool:
    """Return whether two equally long contiguous word ranges hold the same bytes."""
    if _LIBC is not None:
        return int(_LIBC.memcmp(a.ctypes.data, b.ctypes.data, a.nbytes)) == 0
    return bool(np.array_equal(a, b))


def copy(dst: Words, src: Words) -> None:
    """Copy `src` into the equally long `dst` (no overlap)."""
    if _LIBC is not None:
        _LIBC.memcpy(dst.ctypes.data, src.ctypes.data, dst.nbytes)
    else:
        np.copyto(dst, src)


# The hot loops work on raw addresses: an ndarray's `.ctypes` costs microseconds a call, as much
# as moving a few KiB. These need the C library (check has_libc() first).


def equal_at(a: int, b: int, nbytes: int) -> bool:
    """Return whether `nbytes` at addresses `a` and `b` are the same."""
    assert _LIBC is not None
    return int(_LIBC.memcmp(a, b, nbytes)) == 0


def copy_at(dst: int, src: int, nbytes: int) -> None:
    """Copy `nbytes` from address `src` to `dst` (no overlap)."""
    assert _LIBC is not None
    _LIBC.memcpy(dst, src, nbytes)


def fill_at(dst: int, byte: int, nbytes: int) -> None:
    """Set `nbytes` from address `dst` to `byte`."""
    assert _LIBC is not None
    _LIBC.memset(dst, byte & 0xFF, nbytes)


def copy_equal_at(dst: int, src: int, expected: int, nbytes: int) -> bool:
    """Copy `nbytes` from address `src` to `dst`, then return whether the copy equals `expected`.

    The copy is compared while it is still in the cache, so the source is read from memory once.
    """
    copy_at(dst, src, nbytes)
    return equal_at(dst, expected, nbytes)


def fill_byte(dst: Words, byte: int) -> None:
    """Set every byte of `dst` to `byte`."""
    if _LIBC is not None:
        _LIBC.memset(dst.ctypes.data, byte & 0xFF, dst.nbytes)
    else:
        dst.view(np.uint8).fill(byte & 0xFF)


def mismatches(actual: Words, expected: Words) -> npt.NDArray[np.intp]:
    """Return the indices where `actual` differs from `expected` (after `equal` said they do)."""
    return np.flatnonzero(actual != expected)


class PageBuffer:
    """A page-aligned anonymous mapping seen as 64-bit words, locked in RAM where allowed."""

    def __init__(self, size_bytes: int, *, lock: bool = True) -> None:
        """Map `size_bytes` (a positive multiple of 8) and try to lock it, as memtester does."""
        if size_bytes <= 0 or size_bytes % WORD_BYTES:
            raise ValueError(f"a test buffer is a positive number of 64-bit words (got {size_bytes} bytes)")
        self._map = mmap.mmap(-1, size_bytes)
        self.words: Words = np.frombuffer(self._map, dtype=np.uint64)
        self.size_bytes = size_bytes
        self.base_address = address_of(self.words)
        self.locked = False
        if lock and _LIBC is not None:
            # Locked pages stay in RAM: a swapped-out page would test the disk, not the DIMMs.
            self.locked = int(_LIBC.mlock(self.base_address, size_bytes)) == 0

    def close(self) -> None:
        """Unlock and unmap the buffer."""
        if self.locked and _LIBC is not None:
            _LIBC.munlock(self.base_address, self.size_bytes)
            self.locked = False
        del self.words
        self._map.close()
