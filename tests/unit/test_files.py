"""Output that a full disk or a closed pipe refuses is dropped, counted and noted; other errors raise."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator

import pytest

from qualify.files import _DroppingWriter, keep_going_when_output_fails


@pytest.fixture
def dev_full() -> Iterator[int]:
    """Yield a descriptor of /dev/full, which refuses every write with ENOSPC."""
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd
    os.close(fd)


def test_refused_output_is_counted_then_noted_once_writing_works(dev_full: int) -> None:
    writer = _DroppingWriter(dev_full)
    assert writer.write(b"lost line\n") == 10 and writer.write(b"12345") == 5
    assert writer.lost_bytes == 15 and writer.lost_reason == "the file system is full"
    read_end, write_end = os.pipe()
    try:
        writer.fd = write_end  # the disk has room again
        assert writer.write(b"next\n") == 5
        assert (
            os.read(read_end, 4096) == b"[qualify: 15 bytes of output lost: the file system is full]\nnext\n"
        )
        assert writer.lost_bytes == 0
        writer.write(b"more\n")
        assert os.read(read_end, 4096) == b"more\n"  # noted once, not again
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_closed_pipe_is_dropped_too() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        writer = _DroppingWriter(write_end)
        assert writer.write(b"nobody reads this\n") == 18 and writer.lost_bytes == 18
    finally:
        os.close(write_end)


def test_other_errors_still_raise() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)  # not open for writing: EBADF is a bug, not a full disk
    try:
        with pytest.raises(OSError):
            _DroppingWriter(fd).write(b"x")
    finally:
        os.close(fd)


def test_text_output_through_a_full_device_never_raises(
    dev_full: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.FileIO(dev_full, "w", closefd=False)))
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # no descriptor (a test's capture): left as it is
    captured = sys.stderr
    keep_going_when_output_fails()
    assert sys.stderr is captured
    print("a long line " * 10_000)
    sys.stdout.flush()
    with pytest.raises(OSError):  # what the run's prints did before
        print("x", file=io.TextIOWrapper(io.FileIO(dev_full, "w", closefd=False), write_through=True))
