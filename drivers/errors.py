"""Errors raised by transports and drivers; the engine turns them into `error` verdicts."""

from __future__ import annotations


class InstrumentError(Exception):
    """An instrument or device failed to answer as its protocol says; not a device verdict."""

    def __init__(self, address: str, message: str) -> None:
        super().__init__(f"{address}: {message}")
        self.address = address
        self.message = message


class InstrumentTimeout(InstrumentError):
    """An instrument or device did not answer within its timeout."""


class ProtocolError(InstrumentError):
    """A reply that does not parse: garbled, partial, or the wrong identity."""


class DeviceCommandError(InstrumentError):
    """A device completed a command with an error status (e.g. an NVMe status code)."""

    def __init__(self, address: str, message: str, status: int = 0) -> None:
        super().__init__(address, message)
        self.status = status
