"""March memory tests as data: the one definition the simulated tester, the plans and the host engine share.

A leaf module (standard library only, imports nothing else of qualify). A march test is a sequence of
elements; each element applies its operations (r0, r1, w0, w1) to every cell in one address order
(⇑ ascending, ⇓ descending, ⇕ either) before the next element starts. A `Delay` element pauses for
retention: the memory interface decides what a pause means (a DIMM tester suspends refresh). The
algorithms below are van de Goor's notation as REFERENCE.md tabulates it ("Testing Semiconductor
Memories", 1991; March SS: Hamdioui, van de Goor and Rodgers, MTDT 2002), and `run_march` is the
reference executor every implementation is checked against.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Direction(enum.Enum):
    """Name the address order of a march element."""

    UP = "up"
    DOWN = "down"
    EITHER = "either"

    @property
    def arrow(self) -> str:
        """Get the notation's arrow: ⇑, ⇓ or ⇕."""
        return _ARROWS[self]


_ARROWS = {Direction.UP: "⇑", Direction.DOWN: "⇓", Direction.EITHER: "⇕"}
_ASCII = {Direction.UP: "up", Direction.DOWN: "down", Direction.EITHER: "any"}


@dataclass(frozen=True)
class Op:
    """Describe one operation on a cell: a read expecting `value` or a write of `value` (0 or 1)."""

    kind: str
    value: int

    def __post_init__(self) -> None:
        """Reject anything but r0, r1, w0 and w1."""
        if self.kind not in ("r", "w") or self.value not in (0, 1):
            raise ValueError(f"a march operation is r0, r1, w0 or w1, not {self.kind}{self.value}")

    @property
    def is_read(self) -> bool:
        """Get whether this operation reads."""
        return self.kind == "r"

    def __str__(self) -> str:
        return f"{self.kind}{self.value}"


R0, R1, W0, W1 = Op("r", 0), Op("r", 1), Op("w", 0), Op("w", 1)


@dataclass(frozen=True)
class MarchElement:
    """Describe one element: its address order and the operations applied to each cell in turn."""

    direction: Direction
    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        """Reject an element without operations."""
        if not self.ops:
            raise ValueError("a march element needs at least one operation")

    def notation(self, ascii_only: bool = False) -> str:
        """Return the element in march notation, `⇑(r0,w1)` or `up(r0,w1)`."""
        head = _ASCII[self.direction] if ascii_only else self.direction.arrow
        return f"{head}({','.join(str(op) for op in self.ops)})"


@dataclass(frozen=True)
class Delay:
    """Describe a pause of `ms` milliseconds with no access to any cell (a retention element)."""

    ms: float

    def __post_init__(self) -> None:
        """Reject a pause that is not positive."""
        if not self.ms > 0:
            raise ValueError(f"a delay element must last a positive time, not {self.ms} ms")

    def notation(self, ascii_only: bool = False) -> str:
        """Return the element in notation, `del(500)` (milliseconds)."""
        return f"del({self.ms:g})"


Element = MarchElement | Delay


@dataclass(frozen=True)
class MarchTest:
    """Describe a named march test: its elements in order."""

    name: str
    elements: tuple[Element, ...]

    def __post_init__(self) -> None:
        """Reject a test with no march element."""
        if not any(isinstance(element, MarchElement) for element in self.elements):
            raise ValueError(f"march test {self.name!r} has no march element")

    @property
    def ops_per_cell(self) -> int:
        """Get the operations applied to each cell: the test's complexity in n (5 for MATS+)."""
        return sum(len(e.ops) for e in self.elements if isinstance(e, MarchElement))

    @property
    def delay_ms(self) -> float:
        """Get the total pause of the delay elements, in milliseconds."""
        return sum(e.ms for e in self.elements if isinstance(e, Delay))

    @property
    def has_delay(self) -> bool:
        """Get whether the test pauses anywhere (and so can expose retention faults)."""
        return any(isinstance(e, Delay) for e in self.elements)

    def notation(self, ascii_only: bool = False) -> str:
        """Return the whole test in notation, elements separated by `; `."""
        return "; ".join(e.notation(ascii_only) for e in self.elements)


def _march(name: str, text: str) -> MarchTest:
    return MarchTest(name, parse_elements(text))


def parse_elements(text: str) -> tuple[Element, ...]:
    """Parse march notation into elements; raise ValueError naming the offending element.

    Accepts `⇑ ⇓ ⇕` or the words `up`, `down`, `any`/`either` before a parenthesised operation
    list, `del(500)` / `delay(500ms)` for pauses in milliseconds, `;` between elements and optional
    surrounding braces: `{⇕(w0); ⇑(r0,w1); del(100); ⇓(r1,w0)}` or `any(w0); up(r0,w1)`.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    elements: list[Element] = []
    for position, raw in enumerate(part.strip() for part in body.split(";")):
        if not raw:
            raise ValueError(f"march notation {text!r}: element {position} is empty")
        match = _ELEMENT_RE.fullmatch(raw)
        if match is None:
            raise ValueError(f"march notation {text!r}: cannot parse element {position} {raw!r}")
        head, args = match.group(1).lower(), match.group(2).strip()
        if head in ("del", "delay"):
            number = args[:-2].strip() if args.lower().endswith("ms") else args
            try:
                elements.append(Delay(float(number)))
            except ValueError as exc:
                raise ValueError(f"march notation {text!r}: element {position} {raw!r}: {exc}") from None
            continue
        direction = _HEADS.get(head)
        if direction is None:
            raise ValueError(f"march notation {text!r}: element {position} has no direction {raw!r}")
        ops = []
        for token in (t.strip().lower() for t in args.split(",")):
            if len(token) != 2 or token[0] not in "rw" or token[1] not in "01":
                raise ValueError(f"march notation {text!r}: element {position}: bad operation {token!r}")
            ops.append(Op(token[0], int(token[1])))
        elements.append(MarchElement(direction, tuple(ops)))
    return tuple(elements)


_ELEMENT_RE = re.compile(r"\s*(⇑|⇓|⇕|[A-Za-z]+)\s*\(([^()]*)\)\s*")
_HEADS = {
    "⇑": Direction.UP,
    "up": Direction.UP,
    "⇓": Direction.DOWN,
    "down": Direction.DOWN,
    "⇕": Direction.EITHER,
    "any": Direction.EITHER,
    "either": Direction.EITHER,
}


def parse_march(text: str, name: str = "custom") -> MarchTest:
    """Parse march notation into a named test (see parse_elements for the syntax)."""
    return MarchTest(name, parse_elements(text))


MATS_PLUS = _march("MATS+", "⇕(w0); ⇑(r0,w1); ⇓(r1,w0)")
MARCH_X = _march("March X", "⇕(w0); ⇑(r0,w1); ⇓(r1,w0); ⇕(r0)")
MARCH_C_MINUS = _march("March C-", "⇕(w0); ⇑(r0,w1); ⇑(r1,w0); ⇓(r0,w1); ⇓(r1,w0); ⇕(r0)")
MARCH_B = _march("March B", "⇕(w0); ⇑(r0,w1,r1,w0,r0,w1); ⇑(r1,w0,w1); ⇓(r1,w0,w1,w0); ⇓(r0,w1,w0)")
MARCH_SS = _march(
    "March SS",
    "⇕(w0); ⇑(r0,r0,w0,r0,w1); ⇑(r1,r1,w1,r1,w0); ⇓(r0,r0,w0,r0,w1); ⇓(r1,r1,w1,r1,w0); ⇕(r0)",
)

ALGORITHMS: dict[str, MarchTest] = {t.name: t for t in (MATS_PLUS, MARCH_X, MARCH_C_MINUS, MARCH_B, MARCH_SS)}


def algorithm(name: str) -> MarchTest:
    """Return the built-in march test called `name` (case and spaces ignored: `march c-` works)."""
    wanted = _key(name)
    for test in ALGORITHMS.values():
        if _key(test.name) == wanted:
            return test
    raise KeyError(f"unknown march algorithm {name!r} (known: {', '.join(ALGORITHMS)})")


def _key(name: str) -> str:
    return "".join(name.split()).lower()


def with_retention_delays(test: MarchTest, delay_ms: float) -> MarchTest:
    """Return `test` with a pause of `delay_ms` before every element that starts by reading.

    Each such element reads the background the previous element left in every cell, so the pause
    holds both backgrounds (all 0 and all 1) for `delay_ms`: the usual way to turn a march into a
    data-retention test (van de Goor 1991, section on DRFs).
    """
    out: list[Element] = []
    for index, element in enumerate(test.elements):
        if index and isinstance(element, MarchElement) and element.ops[0].is_read:
            out.append(Delay(delay_ms))
        out.append(element)
    return MarchTest(f"{test.name} +del({delay_ms:g})", tuple(out))


@runtime_checkable
class MarchMemory(Protocol):
    """Describe a memory a march runs on: word reads and writes by address, and pauses."""

    def read(self, address: int) -> int:
        """Return the word stored at `address`."""
        ...

    def write(self, address: int, value: int) -> None:
        """Store the word `value` at `address`."""
        ...

    def delay(self, ms: float) -> None:
        """Pause `ms` milliseconds without touching any cell."""
        ...


@dataclass(frozen=True)
class MarchFailure:
    """Record one read that did not return what the march expected."""

    address: int
    element: int
    op: int
    expected: int
    actual: int

    @property
    def mask(self) -> int:
        """Get the failing bits: expected XOR actual."""
        return self.expected ^ self.actual


@dataclass(frozen=True)
class MarchResult:
    """Hold the outcome of one march run: every failing read, in the order they happened."""

    test: MarchTest
    failures: tuple[MarchFailure, ...]
    ops: int
    addresses: int = 0
    first_by_address: dict[int, MarchFailure] = field(default_factory=dict, compare=False)

    @property
    def passed(self) -> bool:
        """Get whether every read matched."""
        return not self.failures

    @property
    def failing_addresses(self) -> list[int]:
        """Get the failing addresses, ascending, each once."""
        return sorted(self.first_by_address)

    def caught_by(self, address: int) -> tuple[int, int] | None:
        """Return (element index, op index) of the first read that failed at `address`, if any."""
        first = self.first_by_address.get(address)
        return None if first is None else (first.element, first.op)


def run_march(
    test: MarchTest,
    memory: MarchMemory,
    addresses: Sequence[int] | int,
    *,
    background: int = 0,
    width_bits: int = 1,
    on_element: Callable[[int, Element], None] | None = None,
) -> MarchResult:
    """Run `test` on `memory` over `addresses` and report every read that failed.

    `addresses` is the address order of ⇑ (an int n means 0..n-1); ⇓ walks it backwards and ⇕
    runs as ⇑. A `0` in the notation is the `background` word and a `1` its complement within
    `width_bits`, so a word-wide memory runs the same test under any data background.
    `on_element(index, element)` is called as each element starts, for memories whose behaviour
    depends on when an access happens (a DRAM's refresh, a tester's clock).
    """
    if width_bits < 1:
        raise ValueError(f"width_bits must be at least 1, got {width_bits}")
    mask = (1 << width_bits) - 1
    if background & ~mask:
        raise ValueError(f"background 0x{background:X} does not fit in {width_bits} bits")
    words = (background, background ^ mask)
    order = list(range(addresses)) if isinstance(addresses, int) else list(addresses)
    failures: list[MarchFailure] = []
    first: dict[int, MarchFailure] = {}
    ops = 0
    for index, element in enumerate(test.elements):
        if on_element is not None:
            on_element(index, element)
        if isinstance(element, Delay):
            memory.delay(element.ms)
            continue
        walk: Iterable[int] = reversed(order) if element.direction is Direction.DOWN else order
        for address in walk:
            for op_index, op in enumerate(element.ops):
                ops += 1
                if not op.is_read:
                    memory.write(address, words[op.value])
                    continue
                actual = memory.read(address) & mask
                expected = words[op.value]
                if actual != expected:
                    failure = MarchFailure(address, index, op_index, expected, actual)
                    failures.append(failure)
                    first.setdefault(address, failure)
    return MarchResult(test, tuple(failures), ops, len(order), first)
