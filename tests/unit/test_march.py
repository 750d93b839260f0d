"""Unit tests for qualify.march: the algorithms as REFERENCE.md tabulates them, the parser, the executor."""

from __future__ import annotations

import pytest

from qualify import march
from qualify.march import (
    ALGORITHMS,
    Delay,
    Direction,
    MarchElement,
    MarchMemory,
    Op,
    algorithm,
    parse_march,
    run_march,
    with_retention_delays,
)

# REFERENCE.md, "Memory test algorithms": elements and ops/cell, transcribed literally.
REFERENCE_TABLE = {
    "MATS+": ("⇕(w0); ⇑(r0,w1); ⇓(r1,w0)", 5),
    "March X": ("⇕(w0); ⇑(r0,w1); ⇓(r1,w0); ⇕(r0)", 6),
    "March C-": ("⇕(w0); ⇑(r0,w1); ⇑(r1,w0); ⇓(r0,w1); ⇓(r1,w0); ⇕(r0)", 10),
    "March B": ("⇕(w0); ⇑(r0,w1,r1,w0,r0,w1); ⇑(r1,w0,w1); ⇓(r1,w0,w1,w0); ⇓(r0,w1,w0)", 17),
    "March SS": (
        "⇕(w0); ⇑(r0,r0,w0,r0,w1); ⇑(r1,r1,w1,r1,w0); ⇓(r0,r0,w0,r0,w1); ⇓(r1,r1,w1,r1,w0); ⇕(r0)",
        22,
    ),
}


class ListMemory:
    """A perfect bit- or word-memory that records every access, for checking the executor."""

    def __init__(self, size: int, stuck: dict[int, int] | None = None) -> None:
        self.cells = [0] * size
        self.stuck = stuck or {}
        self.trace: list[tuple[str, int, int]] = []
        self.delays: list[float] = []

    def read(self, address: int) -> int:
        value = self.stuck.get(address, self.cells[address])
        self.trace.append(("r", address, value))
        return value

    def write(self, address: int, value: int) -> None:
        self.trace.append(("w", address, value))
        self.cells[address] = value

    def delay(self, ms: float) -> None:
        self.delays.append(ms)


@pytest.mark.parametrize("name", list(REFERENCE_TABLE))
def test_each_algorithm_is_the_reference_tables_elements_and_op_count(name: str) -> None:
    text, ops = REFERENCE_TABLE[name]
    test = ALGORITHMS[name]
    assert test.notation() == text
    assert test.ops_per_cell == ops
    assert not test.has_delay


def test_exactly_the_five_reference_algorithms_are_built_in() -> None:
    assert list(ALGORITHMS) == list(REFERENCE_TABLE)


@pytest.mark.parametrize("spelling", ["March C-", "march c-", "MARCH  C-", "marchc-"])
def test_algorithm_lookup_ignores_case_and_spaces(spelling: str) -> None:
    assert algorithm(spelling) is march.MARCH_C_MINUS


def test_an_unknown_algorithm_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="March SS"):
        algorithm("March Z")


@pytest.mark.parametrize("name", list(REFERENCE_TABLE))
def test_notation_round_trips_through_the_parser_in_both_spellings(name: str) -> None:
    test = ALGORITHMS[name]
    assert parse_march(test.notation(), name).elements == test.elements
    assert parse_march(test.notation(ascii_only=True), name).elements == test.elements


def test_parser_reads_ascii_words_braces_and_delays() -> None:
    test = parse_march("{ any(w0); up(R0, W1); del(250); delay(1.5ms); either(r1); down(r1,w0) }")
    assert test.elements == (
        MarchElement(Direction.EITHER, (Op("w", 0),)),
        MarchElement(Direction.UP, (Op("r", 0), Op("w", 1))),
        Delay(250.0),
        Delay(1.5),
        MarchElement(Direction.EITHER, (Op("r", 1),)),
        MarchElement(Direction.DOWN, (Op("r", 1), Op("w", 0))),
    )
    assert test.delay_ms == 251.5
    assert test.notation(ascii_only=True) == "any(w0); up(r0,w1); del(250); del(1.5); any(r1); down(r1,w0)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("⇑(r0,w2)", "bad operation 'w2'"),
        ("⇑(r0); ; ⇓(r1)", "element 1 is empty"),
        ("sideways(r0)", "no direction"),
        ("⇑ r0,w1", "cannot parse element 0"),
        ("⇑(r0); del(-5)", "element 1"),
        ("del(10)", "has no march element"),
        ("⇑()", "bad operation"),
    ],
)
def test_parser_errors_name_the_element(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_march(text)


def test_retention_delays_go_before_every_element_that_starts_by_reading() -> None:
    test = with_retention_delays(march.MARCH_C_MINUS, 500)
    kinds = ["D" if isinstance(e, Delay) else e.notation() for e in test.elements]
    assert kinds == [
        "⇕(w0)",
        "D",
        "⇑(r0,w1)",
        "D",
        "⇑(r1,w0)",
        "D",
        "⇓(r0,w1)",
        "D",
        "⇓(r1,w0)",
        "D",
        "⇕(r0)",
    ]
    assert test.delay_ms == 2500
    assert test.ops_per_cell == 10
    assert test.has_delay
    assert test.name == "March C- +del(500)"


def test_executor_walks_up_and_down_and_counts_ops_on_a_perfect_memory() -> None:
    memory = ListMemory(4)
    assert isinstance(memory, MarchMemory)
    result = run_march(march.MATS_PLUS, memory, 4)
    assert result.passed and result.failing_addresses == []
    assert result.ops == 5 * 4
    assert [(kind, address) for kind, address, _ in memory.trace] == [
        *[("w", a) for a in range(4)],
        *[x for a in range(4) for x in (("r", a), ("w", a))],
        *[x for a in (3, 2, 1, 0) for x in (("r", a), ("w", a))],
    ]


def test_executor_reports_the_element_and_op_that_first_caught_each_address() -> None:
    # A stuck-at-0 cell at address 2: MATS+ first reads a 1 there in element 2 (⇓(r1,w0)), op 0.
    memory = ListMemory(4, stuck={2: 0})
    result = run_march(march.MATS_PLUS, memory, [0, 1, 2, 3])
    assert result.failing_addresses == [2]
    assert result.caught_by(2) == (2, 0)
    assert result.caught_by(1) is None
    (failure,) = result.failures
    assert (failure.expected, failure.actual, failure.mask) == (1, 0, 1)


def test_every_failing_read_is_kept_not_only_the_first() -> None:
    # Stuck at 1 fails every read of a 0: March C- reads 0 in elements 1, 3 and 5.
    result = run_march(march.MARCH_C_MINUS, ListMemory(3, stuck={0: 1}), 3)
    assert [(f.element, f.op) for f in result.failures] == [(1, 0), (3, 0), (5, 0)]
    assert result.caught_by(0) == (1, 0)


def test_word_memories_run_the_test_under_a_data_background() -> None:
    memory = ListMemory(2)
    result = run_march(march.MATS_PLUS, memory, 2, background=0x5A, width_bits=8)
    assert result.passed
    written = [value for kind, _, value in memory.trace if kind == "w"]
    assert set(written) == {0x5A, 0xA5}
    stuck = run_march(march.MATS_PLUS, ListMemory(2, stuck={1: 0x5A}), 2, background=0x5A, width_bits=8)
    assert stuck.failing_addresses == [1]
    assert stuck.failures[0].mask == 0xFF


def test_background_wider_than_the_word_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        run_march(march.MATS_PLUS, ListMemory(2), 2, background=0x100, width_bits=8)


def test_delay_elements_reach_the_memory_and_elements_are_announced() -> None:
    memory = ListMemory(2)
    seen: list[int] = []
    test = with_retention_delays(march.MARCH_X, 100)
    run_march(test, memory, 2, on_element=lambda index, element: seen.append(index))
    assert memory.delays == [100.0, 100.0, 100.0]
    assert seen == list(range(len(test.elements)))


def test_either_direction_runs_ascending() -> None:
    memory = ListMemory(3)
    run_march(parse_march("⇕(w1)"), memory, [2, 0, 1])
    assert [address for _, address, _ in memory.trace] == [2, 0, 1]
