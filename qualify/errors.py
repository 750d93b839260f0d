"""Errors that map to qualify's exit codes: 2 for bad input, 3 for harness or instrument trouble."""

from __future__ import annotations

EXIT_PASS = 0
EXIT_DUT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_HARNESS = 3


class QualifyError(Exception):
    """A failure the CLI reports as one clear message with an exit code, never a traceback."""

    exit_code = EXIT_HARNESS


class InputError(QualifyError):
    """Bad input: a plan, a station file or an argument; names the file, key path and line."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        more: list[InputError] | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        self.more = more or []
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Format as `file:line: key: message`, leaving out what is unknown."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, self.key) if p]
        return ": ".join([*parts, self.message])

    def all_lines(self) -> list[str]:
        """Return this error and every further one, one line each."""
        return [self.one_line(), *(e.one_line() for e in self.more)]


class HarnessError(QualifyError):
    """The harness, the station or an instrument failed; devices are not judged."""

    exit_code = EXIT_HARNESS
