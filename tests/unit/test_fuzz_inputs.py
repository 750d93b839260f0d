"""Fuzzed plan and station files: each is accepted or refused with an InputError, never a crash.

Two generators: structured mutations of the shipped files (keys dropped, renamed, retyped,
values swapped for odd scalars), and raw text mutations (bytes flipped, lines cut or doubled),
which reach the YAML parser's error paths.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualify.engine.checks import check_actions, check_safe_limits
from qualify.errors import InputError
from qualify.plans.loader import parse_plan
from qualify.station.binding import load_station

REPO = Path(__file__).resolve().parents[2]
PLAN_TEXT = (REPO / "test_plans" / "common" / "station_smoke.yaml").read_text()
STATION_TEXT = (REPO / "fixtures" / "stations" / "sim-lab.yaml").read_text()
PLAN_DATA = yaml.safe_load(PLAN_TEXT)
STATION_DATA = yaml.safe_load(STATION_TEXT)

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["${hot_c}", "${nope}", "nan", "-.inf", "!!python/object:os.system", "0x10", "1e400"]),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, data: Any) -> Any:
    doc = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "duplicate"]))
        if action == "replace":
            parent[key] = draw(ODD)
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(key)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc


@st.composite
def text_mutated(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["cut", "double", "indent", "garble", "truncate"]))
        if action == "cut":
            lines.pop(i)
        elif action == "double":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        elif action == "garble":
            chars = list(lines[i]) or [" "]
            j = draw(st.integers(0, len(chars) - 1))
            chars[j] = draw(st.sampled_from(list(":{}[]-&*!%@`'\"#|>\t\x00é")))
            lines[i] = "".join(chars)
        else:
            lines = lines[: i + 1]
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def _plan_ok_or_input_error(text: str) -> None:
    try:
        loaded = parse_plan(text, "fuzz.yaml")
        check_actions(loaded)
    except InputError as exc:
        assert exc.all_lines() and all(line.startswith("fuzz.yaml") for line in exc.all_lines())


def _station_ok_or_input_error(text: str, tmp: Path) -> None:
    path = tmp / "station.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        station, _ = load_station(path)
        check_safe_limits(parse_plan(PLAN_TEXT, "plan.yaml"), station, str(path))
    except InputError as exc:
        assert exc.all_lines() and all(
            str(path) in line or line.startswith("plan.yaml") for line in exc.all_lines()
        )


FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated(PLAN_DATA))
def test_fuzzed_plan_structures(data: Any) -> None:
    _plan_ok_or_input_error(yaml.safe_dump(data, sort_keys=False))


@FUZZ
@given(text_mutated(PLAN_TEXT))
def test_fuzzed_plan_text(text: str) -> None:
    _plan_ok_or_input_error(text)


@FUZZ
@given(mutated(STATION_DATA))
def test_fuzzed_station_structures(tmp_path_factory: Any, data: Any) -> None:
    _station_ok_or_input_error(yaml.safe_dump(data, sort_keys=False), tmp_path_factory.mktemp("s"))


@FUZZ
@given(text_mutated(STATION_TEXT))
def test_fuzzed_station_text(tmp_path_factory: Any, text: str) -> None:
    _station_ok_or_input_error(text, tmp_path_factory.mktemp("s"))
