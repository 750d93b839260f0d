"""Run time for the engine and the simulated lab: real seconds or virtual seconds.

A leaf module: drivers and sim_instruments may import it. Only the engine advances time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds of run time, starting at the run's t = 0."""

    def now(self) -> float:
        """Return seconds of run time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of run time pass."""
        ...


class RealClock:
    """Wall-clock run time; `offset_s` continues a resumed run where it stopped."""

    def __init__(self, offset_s: float = 0.0, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._t0 = time.monotonic()
        self._offset_s = offset_s
        self.speed = speed

    def now(self) -> float:
        """Return run seconds: offset plus scaled wall seconds since start."""
        return self._offset_s + (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of run time (wall time divided by speed)."""
        if seconds > 0:
            time.sleep(seconds / self.speed)


class VirtualClock:
    """Run time that moves only when the engine says so; a 1000-hour bake takes no wall time."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the current virtual second."""
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        """Advance virtual time by `seconds` at once."""
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        with self._lock:
            self._t += seconds

    def advance_to(self, t_s: float) -> None:
        """Move virtual time forward to `t_s`; never backwards."""
        with self._lock:
            if t_s > self._t:
                self._t = t_s
