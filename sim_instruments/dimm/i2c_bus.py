"""A simulated I2C bus: the sideband of one DIMM slot, with its SPD hub and PMIC as targets.

Implements drivers.transport.i2c.I2cTransport, so the same SpdHub and Pmic drivers that run on
/dev/i2c-N or a Bus Pirate run here. Targets see a transaction as a write (sets their pointer,
maybe stores bytes) followed, after a repeated START, by reads that continue from the pointer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.transport.i2c import I2cNack, check_target


class I2cTarget(Protocol):
    """Define a device on the bus: it takes the bytes written to it and answers reads."""

    def i2c_write(self, data: bytes) -> None:
        """Take a write phase (register pointer, then data); raise I2cNack to refuse a byte."""
        ...

    def i2c_read(self, n: int) -> bytes:
        """Return `n` bytes read from the current pointer, advancing it."""
        ...


@dataclass(frozen=True)
class I2cTransaction:
    """Record one transaction as the bus saw it: address, bytes written, bytes read."""

    addr: int
    written: bytes
    read: bytes = b""


class SimI2cBus:
    """Simulate one slot's I2C bus: targets by 7-bit address, answering only while `powered()`.

    A module's sideband devices are supplied from the module (VDDSPD comes from the PMIC, which
    runs from the slot's 12 V), so an unpowered slot NACKs every address, as a real one does.
    `prepare()` runs before each transaction without the lock (the module samples the lab there);
    `before_transaction()` runs inside it.
    `log` keeps the last `log_limit` transactions for tests that check a driver byte by byte.
    """

    def __init__(
        self,
        address: str,
        powered: Callable[[], bool] = lambda: True,
        lock: threading.RLock | None = None,
        log_limit: int = 10_000,
        prepare: Callable[[], object] = lambda: None,
    ) -> None:
        self.address = address
        self._powered = powered
        self.prepare = prepare
        self.lock = lock or threading.RLock()
        self._targets: dict[int, I2cTarget] = {}
        self.log: list[I2cTransaction] = []
        self._log_limit = log_limit
        self.closed = False
        self.hung = False
        self.before_transaction: Callable[[], None] = lambda: None

    def attach(self, addr: int, target: I2cTarget) -> None:
        """Put `target` on the bus at `addr`; raise ValueError if the address is taken."""
        check_target(addr)
        if addr in self._targets:
            raise ValueError(f"{self.address}: address 0x{addr:02X} is already taken")
        self._targets[addr] = target

    def targets(self) -> list[int]:
        """Return the addresses that answer, ascending (an empty list when unpowered)."""
        self.prepare()
        return sorted(self._targets) if self._powered() and not self.hung else []

    def write(self, addr: int, data: bytes) -> None:
        """Run a write transaction."""
        self.prepare()
        with self.lock:
            target = self.target(addr)
            try:
                target.i2c_write(bytes(data))
            finally:
                self._record(I2cTransaction(addr, bytes(data)))

    def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        """Run a write, then after a repeated START read `n` bytes."""
        if n < 1:
            raise ValueError(f"read length must be at least 1, got {n}")
        self.prepare()
        with self.lock:
            target = self.target(addr)
            if data:
                target.i2c_write(bytes(data))
            out = target.i2c_read(n)
            self._record(I2cTransaction(addr, bytes(data), out))
            return out

    def close(self) -> None:
        """Mark the link closed; the bus itself stays with its slot."""
        self.closed = True

    def target(self, addr: int) -> I2cTarget:
        """Return the target answering at `addr`; raise I2cNack as the bus would (hold `lock`)."""
        check_target(addr)
        self.before_transaction()
        if self.hung:
            raise I2cNack(self.address, f"no acknowledge from 0x{addr:02X}: the sideband is hung")
        if not self._powered():
            raise I2cNack(self.address, f"no acknowledge from 0x{addr:02X}: the slot is not powered")
        target = self._targets.get(addr)
        if target is None:
            raise I2cNack(self.address, f"no acknowledge from 0x{addr:02X}: no device at that address")
        return target

    def _record(self, transaction: I2cTransaction) -> None:
        self.log.append(transaction)
        if len(self.log) > self._log_limit:
            del self.log[: len(self.log) - self._log_limit]
