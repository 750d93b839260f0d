"""SCPI header parsing and command dispatch shared by the simulated SCPI instruments."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping


def canonical_header(header: str, long_to_short: Mapping[str, str], optional_nodes: Collection[str]) -> str:
    """Reduce a SCPI header to its short form without optional nodes (`MEAS:VOLT?`).

    Each instrument names its own long forms and its own optional nodes (`SOUR`, `IMM`, ...),
    as its programming guide lists them.
    """
    text = header.strip().lstrip(":").upper()
    is_query = text.endswith("?")
    text = text.rstrip("?")
    if text.startswith("*"):
        return text + ("?" if is_query else "")
    nodes = [long_to_short.get(node, node) for node in text.split(":")]
    kept = [node for node in nodes if node not in optional_nodes] or nodes[:1]
    return ":".join(kept) + ("?" if is_query else "")


class ScpiError(Exception):
    """A command error the instrument would queue for SYST:ERR?."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_TYPE = (-104, "Data type error")
ILLEGAL_VALUE = (-224, "Illegal parameter value")


def dispatch(
    line: str,
    commands: Mapping[str, Callable[[str], str | None]],
    canonical: Callable[[str], str],
    push_error: Callable[[int, str], None],
) -> str | None:
    """Execute one command line; return its reply, or None for settings and for errors.

    An unknown header or a refused command queues its error for SYST:ERR?, as instruments do.
    """
    text = line.strip()
    if not text:
        return None
    header, _, args = text.partition(" ")
    command = commands.get(canonical(header))
    if command is None:
        push_error(*UNDEFINED_HEADER)
        return None
    try:
        return command(args.strip())
    except ScpiError as exc:
        push_error(exc.code, exc.message)
        return None
