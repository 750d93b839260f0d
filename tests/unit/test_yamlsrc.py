"""YAML loading keeps line marks, refuses object tags and duplicate keys, names lines in errors."""

from __future__ import annotations

import pytest

from qualify.errors import InputError
from qualify.yamlsrc import format_path, parse_yaml


def test_lines_of_nested_keys() -> None:
    doc = parse_yaml("a: 1\nb:\n  - x: 2\n    y: [1, 2]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}]}
    assert doc.lines[("a",)] == 1
    assert doc.lines[("b", 0, "x")] == 3
    assert doc.lines[("b", 0, "y")] == 4
    assert doc.line_of(("b", 0, "y", 1, "missing")) == 4


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",
        "a: !!python/name:os.system\n",
        "a: !custom {x: 1}\n",
    ],
)
def test_object_tags_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="not allowed: files are plain data") as err:
        parse_yaml(text, "evil.yaml")
    assert err.value.file == "evil.yaml"
    assert err.value.line == 1


def test_duplicate_key_names_its_line() -> None:
    with pytest.raises(InputError, match="duplicate key 'a'") as err:
        parse_yaml("a: 1\nb: 2\na: 3\n", "d.yaml")
    assert err.value.line == 3
    assert err.value.one_line().startswith("d.yaml:3: a: duplicate key")


def test_syntax_error_names_line() -> None:
    with pytest.raises(InputError, match="YAML syntax") as err:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "s.yaml")
    assert err.value.line is not None and err.value.line >= 2


def test_empty_file_is_an_error() -> None:
    with pytest.raises(InputError, match="empty"):
        parse_yaml("", "e.yaml")


def test_aliases_expand_to_plain_data() -> None:
    doc = parse_yaml("a: &x {k: 1}\nb: *x\n", "a.yaml")
    assert doc.data == {"a": {"k": 1}, "b": {"k": 1}}


def test_format_path() -> None:
    assert format_path(("stages", 1, "steps", 0, "limits")) == "stages[1].steps[0].limits"
    assert format_path(()) == ""
