"""A scripted transport for protocol tests: the exact conversation a driver must hold."""

from __future__ import annotations

import pytest


class ScriptedTransport:
    """A MessageTransport that plays a script of (command, reply) pairs.

    A pair with reply None is a write (the command has no reply); any other pair is a query.
    The test fails at once if the driver sends anything but the next scripted command, or
    writes where the script expects a query and vice versa; `assert_done()` fails if pairs are
    left over.
    """

    def __init__(self, pairs: list[tuple[str, str | None]], address: str = "scripted") -> None:
        self.address = address
        self._pairs = list(pairs)
        self._position = 0
        self.closed = False

    def write(self, command: str) -> None:
        """Accept `command` if the script expects it next, as a write."""
        reply = self._expect(command, "write")
        if reply is not None:
            pytest.fail(f"driver wrote {command!r} but the script expects a query answered {reply!r}")

    def query(self, command: str) -> str:
        """Return the scripted reply if the script expects `command` next, as a query."""
        reply = self._expect(command, "query")
        if reply is None:
            pytest.fail(f"driver queried {command!r} but the script expects a write")
        return reply

    def close(self) -> None:
        """Record that the driver released the transport."""
        self.closed = True

    def assert_done(self) -> None:
        """Fail if the driver did not send every scripted command."""
        left = self._pairs[self._position :]
        if left:
            pytest.fail(f"{len(left)} scripted pair(s) not sent, next: {left[0]!r}")

    def _expect(self, command: str, how: str) -> str | None:
        """Consume the next pair if it matches `command`; fail the test otherwise."""
        if self._position >= len(self._pairs):
            pytest.fail(f"driver sent unexpected {how} {command!r} after the script ended")
        expected, reply = self._pairs[self._position]
        if command != expected:
            pytest.fail(f"driver sent {how} {command!r}, script expects {expected!r} (pair {self._position})")
        self._position += 1
        return reply
