"""Transport contracts that drivers receive; concrete transports live beside this module."""

from __future__ import annotations

from typing import Protocol


class MessageTransport(Protocol):
    """A line-oriented instrument link (VISA or serial): write a command, read a reply."""

    address: str

    def write(self, command: str) -> None:
        """Send one command line."""
        ...

    def query(self, command: str) -> str:
        """Send one command line and return the reply line, stripped of its terminator."""
        ...

    def close(self) -> None:
        """Release the link."""
        ...
