"""Read plan files: YAML with line marks, `${parameter}` substitution, schema validation."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualify.errors import InputError
from qualify.plans.schema import PLAN_SPEC, Plan
from qualify.yamlsrc import KeyPath, YamlDoc, load_yaml, parse_yaml, validate_doc

_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_INNER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class LoadedPlan:
    """A validated plan with where it came from: path, text hash and line marks."""

    plan: Plan
    path: Path
    sha256: str
    doc: YamlDoc


def load_plan(path: str | Path) -> LoadedPlan:
    """Load and validate a plan file; raise InputError naming file, key path and line."""
    p = Path(path)
    doc = load_yaml(p)
    return _finish(doc, p, _sha256(p.read_bytes()))


def parse_plan(text: str, name: str = "<plan>") -> LoadedPlan:
    """Validate plan text (for tests and tools); the path is the given name."""
    doc = parse_yaml(text, name)
    return _finish(doc, Path(name), _sha256(text.encode()))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finish(doc: YamlDoc, path: Path, sha256: str) -> LoadedPlan:
    if not isinstance(doc.data, dict):
        raise doc.error((), "a plan is a mapping with spec, name, version, applies_to and stages")
    spec = doc.data.get("spec")
    if spec != PLAN_SPEC:
        raise doc.error(("spec",), f"spec must be {PLAN_SPEC!r} (found {spec!r})")
    params = doc.data.get("parameters") or {}
    if not isinstance(params, dict):
        raise doc.error(("parameters",), "parameters must be a mapping of name to value")
    substituted = {
        k: (v if k == "parameters" else _substitute(v, (k,), params, doc)) for k, v in doc.data.items()
    }
    located = YamlDoc(data=substituted, file=doc.file, lines=doc.lines)
    plan = validate_doc(located, Plan)
    return LoadedPlan(plan=plan, path=path, sha256=sha256, doc=located)


def _substitute(value: Any, path: KeyPath, params: dict[str, Any], doc: YamlDoc) -> Any:
    """Replace `${name}` with the plan parameter's value; plain lookup, never evaluation."""
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), params, doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), params, doc) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _WHOLE.match(value)
    if whole:
        return _lookup(whole.group(1), path, params, doc)
    return _INNER.sub(lambda m: str(_lookup(m.group(1), path, params, doc)), value)


def _lookup(name: str, path: KeyPath, params: dict[str, Any], doc: YamlDoc) -> Any:
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise doc.error(path, f"unknown parameter ${{{name}}} (plan parameters: {known})")
    return params[name]


def load_module_plan(path: str | Path) -> LoadedPlan:
    """Describe a pytest module of custom tests as a plan: its name, hash and no stages of data.

    An engineer's module next to the plans is code, run deliberately; the engine records its
    tests like plan steps, with the module's file name as plan and stage name.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from None
    stem = p.stem
    plan = Plan.model_validate(
        {
            "spec": PLAN_SPEC,
            "name": stem.replace(" ", "_") or "module",
            "version": "module",
            "applies_to": "station",
            "description": f"pytest module {p.name}",
            "stages": [{"name": "module", "environment": {}}],
        }
    )
    return LoadedPlan(plan=plan, path=p, sha256=_sha256(data), doc=YamlDoc(data={}, file=str(p)))


def load_any_plan(path: str | Path) -> LoadedPlan:
    """Load a YAML plan, or describe a pytest module (`.py`) as one."""
    return load_module_plan(path) if Path(path).suffix == ".py" else load_plan(path)
