"""Load YAML as plain data while keeping the line of every key, for errors that name lines.

Documents are composed into nodes and built by hand from standard tags only, so a file can
never construct a Python object; duplicate keys are errors rather than silent overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from qualify.errors import InputError

KeyPath = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass
class YamlDoc:
    """A YAML document as plain data, with the 1-based line of each key path."""

    data: Any
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """Return the line of `path` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def error(self, path: KeyPath, message: str) -> InputError:
        """Build an InputError naming this file, the key path and its line."""
        return InputError(message, file=self.file, line=self.line_of(path), key=format_path(path))


def format_path(path: KeyPath) -> str:
    """Format a key path as `stages[1].steps[0].limits`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(path: str | Path) -> YamlDoc:
    """Read and parse a YAML file; raise InputError naming the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse YAML text into plain data with line marks; raise InputError on syntax errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"YAML syntax: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML: {exc}", file=file) from None
    doc = YamlDoc(data=None, file=file)
    if node is None:
        raise InputError("the file is empty", file=file, line=1)
    doc.data = _build(node, (), doc)
    return doc


def _build(node: yaml.Node, path: KeyPath, doc: YamlDoc) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP_TAG:
            raise doc.error(path, f"tag {node.tag!r} is not allowed: files are plain data")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise doc.error(path, "keys must be plain scalars (no merge keys or complex keys)")
            key = str(_scalar(key_node, path, doc))
            if key in out:
                raise InputError(
                    f"duplicate key {key!r}",
                    file=doc.file,
                    line=key_node.start_mark.line + 1,
                    key=format_path((*path, key)),
                )
            child = (*path, key)
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            raise doc.error(path, f"tag {node.tag!r} is not allowed: files are plain data")
        return [_build(item, (*path, i), doc) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, path, doc)


def _scalar(node: yaml.ScalarNode, path: KeyPath, doc: YamlDoc) -> Any:
    if node.tag not in _SCALAR_TAGS:
        raise doc.error(path, f"tag {node.tag!r} is not allowed: files are plain data")
    constructor = yaml.SafeLoader("")
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise doc.error(path, f"bad value: {exc}") from None
    if node.tag == "tag:yaml.org,2002:timestamp":
        # Dates stay text: plans and stations have no date-typed fields.
        return str(node.value)
    return value


def validate_doc(doc: YamlDoc, model: type[M], *, context: dict[str, Any] | None = None) -> M:
    """Validate a document against a pydantic model; raise one InputError listing every problem."""
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        # A value that fits no member of a union fails once per member: report it once.
        seen: set[tuple[str | None, int | None]] = set()
        errors = []
        for err in exc.errors():
            error = _to_input_error(doc, err)
            if (error.key, error.line) not in seen:
                seen.add((error.key, error.line))
                errors.append(error)
        raise_if_errors(errors)
    raise AssertionError("unreachable: a ValidationError has at least one error")


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Keep the parts of a pydantic location that walk the data (drop union/type tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == loc[-1]:
            path.append(part)  # a missing key: name it, the line is its parent's
            break
    return tuple(path)


def _to_input_error(doc: YamlDoc, err: Any) -> InputError:
    loc = tuple(err.get("loc", ()))
    path = _data_path(doc.data, loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        message = f"unknown key {path[-1]!r}" if path else "unknown key"
    elif kind == "missing":
        message = f"missing required key {path[-1]!r}" if path else "missing required key"
    else:
        message = str(err.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
    return doc.error(path, message)


def raise_if_errors(errors: list[InputError]) -> None:
    """Raise the first error carrying the others, if any."""
    if errors:
        first, *rest = errors
        first.more = [*first.more, *rest]
        raise first
